"""The headroom of a group-blind policy: the best worst-group reward accuracy the data allow.

Group Robust Preference Optimization (Ramesh et al. 2024, "Group Robust Preference Optimization
in Reward-free RLHF", arXiv:2405.20304; docs/ALGORITHM.md#the-objective) trains one
policy for the worst group: min_theta max_{alpha in simplex} sum_g alpha_g L_g(theta). When the
prompt does not name the group, several groups' pairs share a prompt, and a policy that cannot
see the group must rank that prompt's responses once for all of them. Where groups disagree on a
prompt, no such policy satisfies every pair, so the data alone cap the worst-group reward accuracy
(the share of a group's pairs whose chosen response is ranked above the rejected one, h > 0) that
any policy can reach, however it is trained. This bound and its computation are this project's,
not the paper's.

The computation, per split:

1. Per prompt, the pairs form a directed graph over the prompt's distinct responses (an edge
   chosen -> rejected per pair, counted per group). A policy's choice for the prompt is a strict
   total order of its responses; it satisfies the pairs whose chosen response it ranks higher.
   Responses linked by no cycle can always be ordered to satisfy every pair between them, so only
   the strongly connected components (the responses linked by a cycle) hold a real choice, and
   the components are chosen independently. Within a component of at most
   ``max_exact_responses`` responses, every ordering is enumerated (k! of them) and the vectors of
   satisfied pairs per group are kept, deduplicated and Pareto-maximal (a dominated vector never
   helps). A larger component is relaxed: each unordered pair of its responses is oriented on its
   own (a tournament, which need not be transitive). Every total order is such a tournament, so
   the relaxation only adds choices: the upper bounds stay upper bounds, only looser, and
   :attr:`Headroom.exact` says whether any relaxation happened.
2. Worst group: a linear programme (HiGHS) over a distribution of choices per component,
   x_{b,c} >= 0 with sum_c x_{b,c} = 1, maximises t subject to acc_g >= t for every group, where
   acc_g = (pairs always satisfied + sum_{b,c} x_{b,c} sat_{b,c,g}) / n_g. Its value is an upper
   bound on the worst-group accuracy of every deterministic group-blind policy. Rounding (per
   component, the choice with the largest x), then a greedy pass that changes one component at a
   time while the sorted group accuracies improve (leximin), gives a policy that reaches the lower
   bound; its orderings are returned. A relaxed component is rounded to an actual ordering (net
   wins of the rounded tournament), and the greedy pass also tries, per group, the ordering by that
   group's net wins, so the lower bound is always achieved by real orderings.
3. Average over groups (the unweighted mean of the group accuracies): the objective is linear and
   separable over components, so the linear programme is integral: the best choice per component
   is optimal, and the upper and lower bounds are equal whenever no component was relaxed.
4. Two groups: the whole upper frontier of (accuracy of the first group, accuracy of the second).
   The achievable set of the linear programme is the Minkowski sum of the components' convex
   hulls, so its upper-right boundary is exact and piecewise linear: it starts at the sum of each
   component's best point for the first group and follows every component's hull edges sorted by
   slope. Without a relaxed component, every vertex is reached by a deterministic policy; points
   between vertices need a randomised one (or are upper bounds only).
5. Conflicts: per pair of groups, among the prompts holding pairs of both, the share whose pairs
   (both groups' together) no single ordering satisfies (the relation chosen > rejected has a
   cycle). A group's own pairs can form a cycle too (e.g. raters who disagree); such prompts count
   as conflicts, and :attr:`Headroom.cyclic_within_group` counts them per group.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from scipy import optimize, sparse
from scipy.sparse import csgraph

from grpo_core.data.schema import SPLITS
from grpo_core.data.storage import load_groups, load_split

MAX_EXACT_RESPONSES = 7
"""Largest component (responses linked by a cycle) whose orderings are all enumerated (7! = 5040)."""

_IMPROVEMENT = 1e-12
"""A greedy step must raise a sorted group accuracy by more than this (float noise is no gain)."""

_MAX_PASSES = 100


@dataclass(frozen=True)
class ConflictRate:
    """How often two groups' pairs on a shared prompt fit no single ordering."""

    shared: int
    """Prompts that hold pairs of both groups."""
    conflicting: int
    """Of those, the prompts whose pairs (both groups' together) no ordering satisfies."""

    @property
    def rate(self) -> float:
        """``conflicting / shared``; 0.0 when the groups share no prompt."""
        return self.conflicting / self.shared if self.shared else 0.0


@dataclass(frozen=True)
class Headroom:
    """What a group-blind policy can reach on one split (see the module docstring).

    Accuracies are reward accuracies: the share of a group's pairs whose chosen response the policy
    ranks above the rejected one.
    """

    groups: tuple[str, ...]
    """Groups with at least one pair, in the order given (or of first appearance)."""
    n_pairs: Mapping[str, int]
    """Pairs per group."""
    prompts: int
    """Distinct prompts."""
    shared_prompts: int
    """Prompts holding pairs of two or more groups."""
    conflicting_prompts: int
    """Prompts whose pairs, all groups' together, no single ordering satisfies."""
    cyclic_within_group: Mapping[str, int]
    """Per group, the prompts on which the group's own pairs form a cycle."""
    worst_group_upper: float
    """The linear programme's value: no deterministic group-blind policy does better."""
    worst_group_lower: float
    """The worst-group accuracy of :attr:`orderings`, a policy that exists."""
    average_upper: float
    """Best mean of the group accuracies in the linear programme (integral: equal to
    :attr:`average_lower`, up to float rounding, when :attr:`exact`)."""
    average_lower: float
    """The mean of the group accuracies of the best policy found for the average."""
    group_accuracy_upper: Mapping[str, float]
    """Group accuracies at the linear programme's optimum (one optimum; it may not be unique)."""
    group_accuracy_lower: Mapping[str, float]
    """Group accuracies of :attr:`orderings`."""
    frontier: tuple[tuple[float, float], ...]
    """Two groups only (else empty): vertices of the upper frontier of (accuracy of groups[0],
    accuracy of groups[1]), the first increasing; between vertices it is linear."""
    conflict_rates: Mapping[tuple[str, str], ConflictRate]
    """Per pair of groups (in group order), the conflicts on the prompts they share."""
    exact: bool
    """False when a component was relaxed (upper bounds looser, still upper bounds)."""
    relaxed_prompts: int
    """Prompts with a component larger than the enumeration limit."""
    reason: str
    """Why the bound is what it is, in one sentence."""
    orderings: Mapping[str, tuple[str, ...]] = field(repr=False)
    """The policy of :attr:`worst_group_lower`: per prompt, its responses best first."""

    def summary(self) -> dict[str, Any]:
        """The numbers as a JSON-ready document (without :attr:`orderings`)."""
        return {
            "groups": list(self.groups),
            "n_pairs": dict(self.n_pairs),
            "prompts": self.prompts,
            "shared_prompts": self.shared_prompts,
            "conflicting_prompts": self.conflicting_prompts,
            "cyclic_within_group": dict(self.cyclic_within_group),
            "worst_group": {"lower": self.worst_group_lower, "upper": self.worst_group_upper},
            "average": {"lower": self.average_lower, "upper": self.average_upper},
            "group_accuracy": {
                "upper": dict(self.group_accuracy_upper),
                "lower": dict(self.group_accuracy_lower),
            },
            "frontier": [list(point) for point in self.frontier],
            "conflict_rates": [
                {
                    "groups": list(pair),
                    "shared": rate.shared,
                    "conflicting": rate.conflicting,
                    "rate": rate.rate,
                }
                for pair, rate in self.conflict_rates.items()
            ],
            "exact": self.exact,
            "relaxed_prompts": self.relaxed_prompts,
            "reason": self.reason,
        }


@dataclass
class _Block:
    """One independent choice: a component's Pareto-maximal vectors of satisfied pairs.

    ``options`` is (n_options, K) int; ``orderings[c]`` is the component's responses (prompt-local
    ids) best first for option ``c``. (The linear programme's blocks are bare option arrays: for a
    relaxed component, one orientation of a pair of responses is not an ordering.)
    """

    options: np.ndarray
    orderings: list[tuple[int, ...]]


@dataclass
class _Relaxed:
    """A component too large to enumerate: its tournament blocks and its edges, for rounding."""

    policy_block: int
    members: list[int]
    pair_blocks: list[tuple[int, int, int]]
    """``(lp block, u, v)``: option 0 ranks u over v, option 1 v over u."""
    edges: list[tuple[int, int, np.ndarray]]
    """``(chosen, rejected, counts per group)`` inside the component."""


@dataclass
class _Prompt:
    text: str
    responses: list[str]
    components: list[tuple[list[int], int | None]]
    """In topological order: the component's responses and its policy block (None: one response)."""


@dataclass
class _Problem:
    """All blocks of a split; ``lp_*`` bound from above, ``policy_*`` are real orderings."""

    n: np.ndarray
    lp_base: np.ndarray
    policy_base: np.ndarray
    lp_blocks: list[np.ndarray] = field(default_factory=list)
    policy_blocks: list[_Block] = field(default_factory=list)
    lp_of_policy: list[int | None] = field(default_factory=list)
    relaxed: list[_Relaxed] = field(default_factory=list)
    prompts: list[_Prompt] = field(default_factory=list)


def prepared_headroom(
    directory: str | Path, *, max_exact_responses: int = MAX_EXACT_RESPONSES
) -> dict[str, Headroom]:
    """The headroom of every split of a prepared folder that holds pairs, ``{split: Headroom}``
    (groups in group-id order; see :mod:`grpo_core.data.storage` for the layout)."""
    groups = load_groups(directory).names
    headroom = {}
    for split in SPLITS:
        frame = load_split(directory, split)
        if len(frame):
            headroom[split] = split_headroom(
                frame, groups=groups, max_exact_responses=max_exact_responses
            )
    return headroom


def split_headroom(
    frame: Any,
    *,
    groups: Sequence[str] | None = None,
    max_exact_responses: int = MAX_EXACT_RESPONSES,
) -> Headroom:
    """The headroom of a prepared split (a DataFrame with columns prompt, chosen, rejected, group).

    Args:
        frame: one split as :func:`grpo_core.data.storage.load_split` returns it (other columns
            are ignored).
        groups: group order (e.g. ``load_groups(folder).names``); groups without pairs in this
            split are left out. None: the order of first appearance.
        max_exact_responses: see :func:`group_blind_headroom`.
    """
    missing = [c for c in ("prompt", "chosen", "rejected", "group") if c not in frame.columns]
    if missing:
        raise ValueError(f"the split has no column(s) {missing}")
    return group_blind_headroom(
        frame["prompt"].tolist(),
        frame["chosen"].tolist(),
        frame["rejected"].tolist(),
        frame["group"].tolist(),
        group_order=groups,
        max_exact_responses=max_exact_responses,
    )


def group_blind_headroom(
    prompts: Sequence[str],
    chosen: Sequence[str],
    rejected: Sequence[str],
    groups: Sequence[str],
    *,
    group_order: Sequence[str] | None = None,
    max_exact_responses: int = MAX_EXACT_RESPONSES,
) -> Headroom:
    """Bounds on what a policy that does not see the group can reach (module docstring).

    Args:
        prompts, chosen, rejected, groups: one pair per index, all of length N. A pair whose
            chosen and rejected responses are the same is never satisfied.
        group_order: order of the groups in the result; every group of ``groups`` must be in it
            (those without pairs are left out). None: the order of first appearance.
        max_exact_responses: components (responses linked by a cycle) up to this size have all
            their orderings enumerated; larger ones are relaxed (upper bounds stay upper bounds).
    Returns:
        :class:`Headroom`.
    Raises:
        ValueError: no pair, sequences of different lengths, a group missing from
            ``group_order``, or ``max_exact_responses`` below 2.
    """
    if max_exact_responses < 2:
        raise ValueError(f"max_exact_responses must be 2 or more, not {max_exact_responses}")
    lengths = {len(prompts), len(chosen), len(rejected), len(groups)}
    if len(lengths) != 1:
        raise ValueError(f"prompts, chosen, rejected and groups differ in length: {lengths}")
    if not prompts:
        raise ValueError("no pairs: the headroom of an empty split is undefined")
    names = _group_names(groups, group_order)
    edges = _edges_per_prompt(prompts, chosen, rejected, groups, names)
    n = np.zeros(len(names), dtype=np.int64)
    for counts in edges.values():
        n += sum(counts.values())

    problem = _Problem(n=n, lp_base=np.zeros_like(n), policy_base=np.zeros_like(n))
    conflicts = _Conflicts(names)
    for text, prompt_edges in edges.items():
        _add_prompt(problem, conflicts, text, prompt_edges, max_exact_responses)

    upper, x, lp_accuracy = _max_min(problem.lp_blocks, problem.lp_base, n)
    choice = _rounded_choice(problem, x)
    choice = _improve(problem.policy_blocks, choice, problem.policy_base, n)
    lower_accuracy = _accuracy(problem.policy_blocks, choice, problem.policy_base, n)
    exact = not problem.relaxed
    average_lower = _best_average(problem.policy_blocks, problem.policy_base, n)
    average_upper = _best_lp_average(problem.lp_blocks, problem.lp_base, n)
    return Headroom(
        groups=names,
        n_pairs={g: int(c) for g, c in zip(names, n, strict=True)},
        prompts=len(edges),
        shared_prompts=conflicts.shared_prompts,
        conflicting_prompts=conflicts.cyclic_prompts,
        cyclic_within_group=dict(zip(names, conflicts.within, strict=True)),
        worst_group_upper=upper,
        worst_group_lower=float(lower_accuracy.min()),
        average_upper=average_upper,
        average_lower=average_lower,
        group_accuracy_upper={g: float(a) for g, a in zip(names, lp_accuracy, strict=True)},
        group_accuracy_lower={g: float(a) for g, a in zip(names, lower_accuracy, strict=True)},
        frontier=_frontier(problem.lp_blocks, problem.lp_base, n) if len(names) == 2 else (),
        conflict_rates=conflicts.rates(),
        exact=exact,
        relaxed_prompts=_relaxed_prompts(problem),
        reason=conflicts.reason(len(edges)),
        orderings=_orderings(problem, choice),
    )


def _group_names(groups: Sequence[str], order: Sequence[str] | None) -> tuple[str, ...]:
    present = dict.fromkeys(str(g) for g in groups)
    if order is None:
        return tuple(present)
    order = [str(g) for g in order]
    unknown = sorted(set(present) - set(order))
    if unknown:
        raise ValueError(f"groups {unknown} are not in the group order {order}")
    return tuple(g for g in order if g in present)


def _edges_per_prompt(
    prompts: Sequence[str],
    chosen: Sequence[str],
    rejected: Sequence[str],
    groups: Sequence[str],
    names: tuple[str, ...],
) -> dict[str, dict[tuple[str, str], np.ndarray]]:
    """``{prompt: {(chosen, rejected): pairs per group}}``, prompts in order of first appearance."""
    group_id = {g: i for i, g in enumerate(names)}
    edges: dict[str, dict[tuple[str, str], np.ndarray]] = {}
    for p, c, r, g in zip(prompts, chosen, rejected, groups, strict=True):
        counts = edges.setdefault(str(p), {}).setdefault(
            (str(c), str(r)), np.zeros(len(names), dtype=np.int64)
        )
        counts[group_id[str(g)]] += 1
    return edges


class _Conflicts:
    """Counts shared prompts and cycles, per prompt, per group and per pair of groups."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names
        self.shared_prompts = 0
        self.cyclic_prompts = 0
        self.cyclic_across_only = 0
        self.within = [0] * len(names)
        self.pairs = {pair: [0, 0] for pair in itertools.combinations(range(len(names)), 2)}

    def add(self, a: np.ndarray, b: np.ndarray, counts: np.ndarray, cyclic: bool) -> None:
        """One prompt: edges ``a[e] -> b[e]`` with ``counts[e, g]`` pairs."""
        present = np.flatnonzero(counts.sum(axis=0))
        if len(present) > 1:
            self.shared_prompts += 1
        for pair in itertools.combinations(present.tolist(), 2):
            self.pairs[pair][0] += 1
        if not cyclic:
            return
        self.cyclic_prompts += 1
        own = {g: _has_cycle(a, b, counts[:, g] > 0) for g in present.tolist()}
        for g, cycle in own.items():
            self.within[g] += cycle
        if not any(own.values()):
            self.cyclic_across_only += 1
        for g, h in itertools.combinations(present.tolist(), 2):
            if own[g] or own[h] or _has_cycle(a, b, (counts[:, g] + counts[:, h]) > 0):
                self.pairs[(g, h)][1] += 1

    def rates(self) -> dict[tuple[str, str], ConflictRate]:
        return {
            (self.names[g], self.names[h]): ConflictRate(shared=s, conflicting=c)
            for (g, h), (s, c) in self.pairs.items()
        }

    def reason(self, prompts: int) -> str:
        within = self.cyclic_prompts - self.cyclic_across_only
        if self.shared_prompts == 0 and within == 0:
            return (
                "no prompt is shared by two groups: a policy can order each prompt for its own "
                "group"
            )
        if self.cyclic_prompts == 0:
            return (
                f"{self.shared_prompts} prompts are shared by two or more groups, but on every "
                "prompt the pairs of all groups fit one ordering: one policy can satisfy every pair"
            )
        return (
            f"{self.cyclic_prompts} of {prompts} prompts hold pairs that no single ordering "
            f"satisfies: {self.cyclic_across_only} where groups disagree, {within} where a "
            "group's own pairs form a cycle (e.g. raters who disagree)"
        )


def _has_cycle(a: np.ndarray, b: np.ndarray, keep: np.ndarray) -> bool:
    """Whether the edges ``a[e] -> b[e]`` with ``keep[e]`` form a cycle (Kahn's algorithm)."""
    out: dict[int, set[int]] = {}
    indegree: dict[int, int] = {}
    for u, v in zip(a[keep].tolist(), b[keep].tolist(), strict=True):
        if u == v:
            return True
        if v not in out.setdefault(u, set()):
            out[u].add(v)
            indegree[v] = indegree.get(v, 0) + 1
        indegree.setdefault(u, 0)
    ready = [u for u, d in indegree.items() if d == 0]
    seen = 0
    while ready:
        u = ready.pop()
        seen += 1
        for v in out.get(u, ()):
            indegree[v] -= 1
            if indegree[v] == 0:
                ready.append(v)
    return seen < len(indegree)


def _add_prompt(
    problem: _Problem,
    conflicts: _Conflicts,
    text: str,
    prompt_edges: dict[tuple[str, str], np.ndarray],
    max_exact: int,
) -> None:
    """Split one prompt into components: fixed pairs go to the bases, choices become blocks."""
    responses = list(dict.fromkeys(r for edge in prompt_edges for r in edge))
    index = {r: i for i, r in enumerate(responses)}
    a = np.array([index[c] for c, _ in prompt_edges], dtype=np.int64)
    b = np.array([index[r] for _, r in prompt_edges], dtype=np.int64)
    counts = np.stack(list(prompt_edges.values()))
    m = len(responses)

    # Components of the preference graph; a pair preferring a response to itself has no order.
    proper = a != b
    graph = sparse.csr_matrix((np.ones(int(proper.sum())), (a[proper], b[proper])), shape=(m, m))
    _, label = csgraph.connected_components(graph, directed=True, connection="strong")
    sizes = np.bincount(label, minlength=m)
    conflicts.add(a, b, counts, cyclic=bool((~proper).any() or (sizes > 1).any()))

    # Pairs between components are satisfied by ordering the components topologically.
    across = proper & (label[a] != label[b])
    fixed = counts[across].sum(axis=0)
    problem.lp_base += fixed
    problem.policy_base += fixed

    components = []
    for members in _topological_components(label, a[across], b[across]):
        if len(members) == 1:
            components.append((members, None))
            continue
        inside = proper & ~across & (label[a] == label[members[0]])
        if len(members) <= max_exact:
            block = _enumerated_block(members, a[inside], b[inside], counts[inside])
            problem.lp_of_policy.append(_add_lp_block(problem, block.options))
        else:
            block = _relaxed_component(problem, members, a[inside], b[inside], counts[inside])
            problem.lp_of_policy.append(None)
        problem.policy_blocks.append(block)
        components.append((members, len(problem.policy_blocks) - 1))
    problem.prompts.append(_Prompt(text=text, responses=responses, components=components))


def _topological_components(label: np.ndarray, a: np.ndarray, b: np.ndarray) -> list[list[int]]:
    """The components' members, sources first (Kahn's algorithm, smallest label first on ties)."""
    count = int(label.max()) + 1
    members: list[list[int]] = [[] for _ in range(count)]
    for node, component in enumerate(label.tolist()):
        members[component].append(node)
    out: list[set[int]] = [set() for _ in range(count)]
    indegree = [0] * count
    for u, v in set(zip(label[a].tolist(), label[b].tolist(), strict=True)):
        out[u].add(v)
        indegree[v] += 1
    ready = [c for c in range(count) if indegree[c] == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        c = heapq.heappop(ready)
        order.append(members[c])
        for v in out[c]:
            indegree[v] -= 1
            if indegree[v] == 0:
                heapq.heappush(ready, v)
    return order


def _add_lp_block(problem: _Problem, options: np.ndarray) -> int | None:
    """Add a choice to the linear programme; a single option is no choice and joins the base."""
    if len(options) == 1:
        problem.lp_base += options[0]
        return None
    problem.lp_blocks.append(options)
    return len(problem.lp_blocks) - 1


@lru_cache(maxsize=16)
def _permutations(k: int) -> tuple[np.ndarray, np.ndarray]:
    """All orderings of ``k`` items, (k!, k), and each item's rank in each ordering."""
    orders = np.array(list(itertools.permutations(range(k))), dtype=np.int8)
    ranks = np.argsort(orders, axis=1).astype(np.int8)
    orders.flags.writeable = False
    ranks.flags.writeable = False
    return orders, ranks


def _enumerated_block(
    members: list[int], a: np.ndarray, b: np.ndarray, counts: np.ndarray
) -> _Block:
    """Every ordering of a component: its Pareto-maximal vectors of satisfied pairs per group."""
    local = {node: i for i, node in enumerate(members)}
    orders, ranks = _permutations(len(members))
    ea = np.array([local[u] for u in a.tolist()], dtype=np.int64)
    eb = np.array([local[v] for v in b.tolist()], dtype=np.int64)
    satisfied = (ranks[:, ea] < ranks[:, eb]).astype(np.int64) @ counts
    vectors, first = np.unique(satisfied, axis=0, return_index=True)
    keep = _pareto_maximal(vectors)
    return _Block(
        options=vectors[keep],
        orderings=[tuple(members[i] for i in orders[first[k]].tolist()) for k in keep],
    )


def _pareto_maximal(vectors: np.ndarray) -> list[int]:
    """Indices of the distinct rows no other row dominates (a dominating row has a larger sum)."""
    order = np.argsort(-vectors.sum(axis=1), kind="stable")
    kept: list[int] = []
    for i in order.tolist():
        if not kept or not (vectors[kept] >= vectors[i]).all(axis=1).any():
            kept.append(i)
    return sorted(kept)


def _relaxed_component(
    problem: _Problem, members: list[int], a: np.ndarray, b: np.ndarray, counts: np.ndarray
) -> _Block:
    """A component too large to enumerate: tournament blocks above, net-wins orderings below."""
    edges = list(zip(a.tolist(), b.tolist(), counts, strict=True))
    by_pair: dict[tuple[int, int], list[np.ndarray]] = {}
    for u, v, c in edges:
        key = (min(u, v), max(u, v))
        by_pair.setdefault(key, [np.zeros_like(c), np.zeros_like(c)])[0 if u < v else 1] += c
    pair_blocks = []
    for (u, v), (forward, backward) in by_pair.items():
        if not backward.any():
            problem.lp_base += forward
        elif not forward.any():
            problem.lp_base += backward
        else:
            problem.lp_blocks.append(np.stack([forward, backward]))
            pair_blocks.append((len(problem.lp_blocks) - 1, u, v))
    # Candidate orderings: by each group's net wins, and by all groups' (each pair as 1 / n_g).
    weights = [counts[:, g] for g in range(counts.shape[1])]
    weights.append((counts / np.maximum(problem.n, 1)).sum(axis=1))
    block = _Block(options=np.zeros((0, counts.shape[1]), dtype=np.int64), orderings=[])
    for weight in weights:
        _add_ordering(block, _net_wins_order(members, edges, weight), edges)
    problem.relaxed.append(
        _Relaxed(
            policy_block=len(problem.policy_blocks),
            members=members,
            pair_blocks=pair_blocks,
            edges=edges,
        )
    )
    return block


def _net_wins_order(
    members: list[int], edges: list[tuple[int, int, np.ndarray]], weight: np.ndarray
) -> tuple[int, ...]:
    """Members by net weighted wins (``weight[e]`` for edge e), ties in member order."""
    score = dict.fromkeys(members, 0.0)
    for (u, v, _), w in zip(edges, weight.tolist(), strict=True):
        score[u] += w
        score[v] -= w
    return tuple(sorted(members, key=lambda node: -score[node]))


def _add_ordering(
    block: _Block, ordering: tuple[int, ...], edges: list[tuple[int, int, np.ndarray]]
) -> int:
    """Add an ordering's satisfied pairs as an option of ``block`` (once); its option index."""
    if ordering in block.orderings:
        return block.orderings.index(ordering)
    rank = {node: i for i, node in enumerate(ordering)}
    vector = np.zeros(block.options.shape[1], dtype=np.int64)
    for u, v, c in edges:
        if rank[u] < rank[v]:
            vector += c
    block.options = np.vstack([block.options, vector[None, :]])
    block.orderings.append(ordering)
    return len(block.orderings) - 1


def _max_min(
    blocks: list[np.ndarray], base: np.ndarray, n: np.ndarray
) -> tuple[float, list[np.ndarray], np.ndarray]:
    """The worst-group linear programme: (value, x per block, group accuracies at the optimum)."""
    if not blocks:
        accuracy = base / n
        return float(accuracy.min()), [], accuracy
    sizes = [len(options) for options in blocks]
    total = sum(sizes)
    contribution = np.vstack(blocks) / n  # (options, K): accuracy each option adds per group
    k = len(n)
    # Variables: every option's x, then t. Maximise t: minimise -t.
    cost = np.zeros(total + 1)
    cost[-1] = -1.0
    # t - sum_{b,c} x_{b,c} contribution_{b,c,g} <= base_g / n_g for every group g.
    a_ub = sparse.hstack([sparse.csr_matrix(-contribution.T), sparse.csr_matrix(np.ones((k, 1)))])
    # sum_c x_{b,c} = 1 for every block b.
    rows = np.repeat(np.arange(len(blocks)), sizes)
    a_eq = sparse.csr_matrix(
        (np.ones(total), (rows, np.arange(total))), shape=(len(blocks), total + 1)
    )
    result = optimize.linprog(
        cost,
        A_ub=a_ub.tocsr(),
        b_ub=base / n,
        A_eq=a_eq,
        b_eq=np.ones(len(blocks)),
        bounds=[(0, None)] * total + [(None, None)],
        method="highs",
    )
    if result.status != 0:
        raise RuntimeError(f"the worst-group linear programme failed: {result.message}")
    x = result.x[:-1]
    accuracy = base / n + x @ contribution
    return float(-result.fun), np.split(x, np.cumsum(sizes)[:-1]), accuracy


def _rounded_choice(problem: _Problem, x: list[np.ndarray]) -> list[int]:
    """Per policy block, the option the linear programme weighs most (an ordering for relaxed)."""
    choice = [0 if lp is None else int(np.argmax(x[lp])) for lp in problem.lp_of_policy]
    for relaxed in problem.relaxed:
        block = problem.policy_blocks[relaxed.policy_block]
        # Orient each pair of responses as rounded, then order by net wins of that tournament.
        forward = {(u, v): bool(x[lp][0] >= x[lp][1]) for lp, u, v in relaxed.pair_blocks}
        weight = []
        for u, v, c in relaxed.edges:
            key = (min(u, v), max(u, v))
            kept = key not in forward or forward[key] == (u < v)
            weight.append(float((c / np.maximum(problem.n, 1)).sum()) if kept else 0.0)
        order = _net_wins_order(relaxed.members, relaxed.edges, np.array(weight))
        choice[relaxed.policy_block] = _add_ordering(block, order, relaxed.edges)
    return choice


def _accuracy(
    blocks: list[_Block], choice: list[int], base: np.ndarray, n: np.ndarray
) -> np.ndarray:
    total = base + sum((block.options[c] for block, c in zip(blocks, choice, strict=True)), 0)
    return total / n


def _improve(blocks: list[_Block], choice: list[int], base: np.ndarray, n: np.ndarray) -> list[int]:
    """Change one block at a time while the sorted group accuracies rise (leximin), to a local
    optimum."""
    choice = list(choice)
    total = base + sum((block.options[c] for block, c in zip(blocks, choice, strict=True)), 0)
    key = np.sort(total / n)
    for _ in range(_MAX_PASSES):
        improved = False
        for i, block in enumerate(blocks):
            if len(block.options) < 2:
                continue
            rest = total - block.options[choice[i]]
            candidates = np.sort((rest + block.options) / n, axis=1)
            best = int(np.lexsort(candidates.T[::-1])[-1])
            if _leximin_better(candidates[best], key):
                choice[i] = best
                total = rest + block.options[best]
                key = candidates[best]
                improved = True
        if not improved:
            break
    return choice


def _leximin_better(candidate: np.ndarray, current: np.ndarray) -> bool:
    differs = np.flatnonzero(np.abs(candidate - current) > _IMPROVEMENT)
    return bool(len(differs)) and candidate[differs[0]] > current[differs[0]]


def _best_average(blocks: list[_Block], base: np.ndarray, n: np.ndarray) -> float:
    """Best mean group accuracy over real orderings: the best option per block (separable)."""
    choice = [int(np.argmax((block.options / n).sum(axis=1))) for block in blocks]
    return float(_accuracy(blocks, choice, base, n).mean())


def _best_lp_average(blocks: list[np.ndarray], base: np.ndarray, n: np.ndarray) -> float:
    """The same over the (relaxed) blocks of the linear programme: an upper bound."""
    total = base / n
    for options in blocks:
        total = total + options[int(np.argmax((options / n).sum(axis=1)))] / n
    return float(total.mean())


def _frontier(
    blocks: list[np.ndarray], base: np.ndarray, n: np.ndarray
) -> tuple[tuple[float, float], ...]:
    """Vertices of the upper frontier of the Minkowski sum of the blocks' hulls (two groups)."""
    start = base.copy()
    slopes: dict[Fraction, np.ndarray] = {}
    for options in blocks:
        chain = _upper_right_chain(options)
        start = start + chain[0]
        for p, q in itertools.pairwise(chain):
            step = q - p  # first group loses, second gains
            slope = Fraction(int(step[1]), int(-step[0]))
            slopes[slope] = slopes.get(slope, 0) + step
    points = [start]
    for slope in sorted(slopes, reverse=True):
        points.append(points[-1] + slopes[slope])
    return tuple((float(p[0] / n[0]), float(p[1] / n[1])) for p in reversed(points))


def _upper_right_chain(options: np.ndarray) -> list[np.ndarray]:
    """The block's hull vertices that maximise some lambda*A + (1-lambda)*B, lambda in [0, 1],
    from the best for A to the best for B (integer counts, so the test of concavity is exact)."""
    order = sorted(range(len(options)), key=lambda i: (-options[i][0], -options[i][1]))
    pareto: list[np.ndarray] = []
    for i in order:
        if not pareto or options[i][1] > pareto[-1][1]:
            pareto.append(options[i])
    chain: list[np.ndarray] = []
    for w in pareto:
        while len(chain) >= 2:
            u, v = chain[-2], chain[-1]
            # v stays only if the slope u->v is steeper than v->w.
            if (v[1] - u[1]) * (v[0] - w[0]) > (w[1] - v[1]) * (u[0] - v[0]):
                break
            chain.pop()
        chain.append(w)
    return chain


def _orderings(problem: _Problem, choice: list[int]) -> dict[str, tuple[str, ...]]:
    """Per prompt, the responses best first: components in topological order, each as chosen."""
    orderings = {}
    for prompt in problem.prompts:
        ranked: list[int] = []
        for members, block in prompt.components:
            if block is None:
                ranked.extend(members)
            else:
                ranked.extend(problem.policy_blocks[block].orderings[choice[block]])
        orderings[prompt.text] = tuple(prompt.responses[i] for i in ranked)
    return orderings


def _relaxed_prompts(problem: _Problem) -> int:
    relaxed = {r.policy_block for r in problem.relaxed}
    return sum(
        any(block in relaxed for _, block in prompt.components) for prompt in problem.prompts
    )
