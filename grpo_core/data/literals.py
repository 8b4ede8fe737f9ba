"""Python-literal cells of the GlobalOpinionQA hub layout, parsed without ``eval``.

The hub file stores ``options`` as a Python list literal (``"['Yes', 'No']"``) and ``selections``
as ``"defaultdict(<class 'list'>, {'Nigeria': [0.1, 0.9], ...})"``. :func:`safe_literal` walks the
syntax tree and accepts only literals (and the names ``nan``, ``inf``, ``None``, ``True``,
``False``).
"""

from __future__ import annotations

import ast
import json
import math
import re
from typing import Any

_NAMES: dict[str, Any] = {
    "nan": math.nan,
    "inf": math.inf,
    "None": None,
    "True": True,
    "False": False,
}
_DEFAULTDICT = re.compile(r"^\s*defaultdict\(\s*<class '[A-Za-z_.]+'>\s*,\s*(.*)\)\s*$", re.DOTALL)


def safe_literal(text: str) -> Any:
    """Parse a Python literal: numbers, strings, lists, tuples (as lists), dicts.

    Raises:
        ValueError: the text is not such a literal.
    """
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, RecursionError, MemoryError) as error:
        raise ValueError(f"not a Python literal ({type(error).__name__})") from None
    try:
        return _convert(tree.body)
    except (TypeError, RecursionError) as error:
        raise ValueError(f"not a plain literal ({error})") from None


def parse_list_cell(value: Any) -> Any:
    """A list stored as a string (JSON or Python literal) becomes a list; other values pass."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return safe_literal(value)


def parse_selections(value: Any) -> dict[Any, Any]:
    """The hub ``selections`` cell: a ``defaultdict(...)`` string, a dict literal, or a dict.

    Raises:
        ValueError: the value is none of these.
    """
    if isinstance(value, dict):
        return value
    if not isinstance(value, str):
        raise ValueError(
            f"expected a dict or a defaultdict(...) string, got {type(value).__name__}"
        )
    match = _DEFAULTDICT.match(value)
    parsed = safe_literal(match.group(1) if match else value)
    if not isinstance(parsed, dict):
        raise ValueError(
            f"expected a mapping from group to distribution, got {type(parsed).__name__}"
        )
    return parsed


def _convert(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant) and isinstance(
        node.value, (str, int, float, bool, type(None))
    ):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _convert(node.operand)
        if isinstance(operand, (int, float)) and not isinstance(operand, bool):
            return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_convert(item) for item in node.elts]
    if isinstance(node, ast.Dict) and all(key is not None for key in node.keys):
        return {_convert(k): _convert(v) for k, v in zip(node.keys, node.values, strict=True)}
    if isinstance(node, ast.Name) and node.id in _NAMES:
        return _NAMES[node.id]
    raise ValueError(
        f"not a plain literal: {type(node).__name__} at column {getattr(node, 'col_offset', '?')}"
    )
