"""Loading never unpickles: folders that should hold only safetensors and JSON are checked first."""

from __future__ import annotations

from pathlib import Path

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".npy", ".npz")
"""File endings of formats that unpickle on load (torch.save, pickle, numpy object arrays)."""

_PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05", b"PK\x03\x04")
"""Pickle protocol 2-5 headers, and the zip header of ``torch.save``'s archive format."""


class UntrustedCheckpointError(ValueError):
    """A checkpoint asks for something only its user may grant: running a model folder's own Python
    code, or a starting model outside the checkpoint and the cache folder."""


def refuse_untrusted_code(asks: bool, granted: bool, source: str, flag: str) -> None:
    """Raise :class:`UntrustedCheckpointError` when a checkpoint's ``run.json`` ``asks`` to run the
    starting model's own Python code (``trust_remote_code``) and the user did not grant it with
    ``flag``: a checkpoint can never turn that on by itself."""
    if asks and not granted:
        raise UntrustedCheckpointError(
            f"{source}: its run.json asks to run the starting model's own Python code "
            "(trust_remote_code), which a checkpoint cannot turn on; if you trust the "
            f"checkpoint and its starting model, run again with {flag}"
        )


class PickleRefusedError(ValueError):
    """A folder that should hold only safetensors and JSON holds a file that would unpickle."""


def refuse_pickles(folder: str | Path) -> None:
    """Raise :class:`PickleRefusedError` if any file in ``folder`` is (or is named like) a pickle.

    Checked before anything in the folder is loaded: loading never unpickles.
    """
    folder = Path(folder)
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        if path.name.endswith(".safetensors"):
            continue  # parsed by safetensors, which reads only a JSON header and raw bytes
        with path.open("rb") as handle:
            head = handle.read(4)
        if path.name.endswith(PICKLE_SUFFIXES) or head.startswith(_PICKLE_MAGIC):
            raise PickleRefusedError(
                f"refusing to load {folder}: {path.relative_to(folder)} is a pickled payload "
                "(torch.save/pickle). Checkpoints hold only safetensors and JSON; remove the file "
                "if you trust it, or re-create the checkpoint."
            )
