"""The sweep's one frozen configuration: a run config, the grid of overrides, the task runner.

A sweep trains every point of the grid (the product of its axes) for every method and seed of the
run config, sharing the run's prepared data and starting model: only sections that act after the
starting model (``loss``, ``group_weights``, ``optim``, ``method_learning_rates``,
``checkpoint_every``) can be swept. Children whose effective recipe
(:func:`grpo_core.lm.recipe.effective_recipe`), method and seed are the same share one training: IPO
trains once in a sweep over ``group_weights.step_size``, which only GR-IPO and GR-DPO read.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from grpo_core.config import Section
from grpo_core.hashing import hash_json
from grpo_core.lm.recipe import effective_recipe
from grpo_core.methods import Method, is_group_robust
from tasks.run_config import RunConfig, demo_config

SWEEPABLE = ("loss", "group_weights", "optim", "method_learning_rates", "checkpoint_every")
"""Top-level run-config fields a grid may override: those read after the starting model."""

PARETO_CHIS = (0.0, 0.25, 0.5, 0.75, 1.0)
"""The Pareto preset's values of ``group_weights.robust_mix``: chi, the mix of uniform and robust
group weights, (1 - chi)/K + chi * alpha (Ramesh et al. 2024, arXiv:2405.20304)."""

GridValue = bool | int | float | str


class RunnerConfig(Section):
    """Where the sweep's child trainings run (a Prefect task runner); each still trains in its own
    worker process."""

    kind: Literal["local", "dask"] = Field(
        "local",
        description="'local': in this process's threads, one training per GPU at a time (one at a "
        "time on a CPU); 'dask': on a Dask cluster through prefect-dask.",
    )
    dask_address: str | None = Field(
        None,
        description="Address of an existing Dask scheduler (tcp://host:8786); none: start a "
        "LocalCluster on this machine.",
    )
    dask_workers: int = Field(
        2, ge=1, description="Worker processes of the LocalCluster (one training each at a time)."
    )

    @model_validator(mode="after")
    def _check(self) -> RunnerConfig:
        if self.dask_address is not None and self.kind != "dask":
            raise ValueError("runner.dask_address is set but runner.kind is not 'dask'")
        if self.dask_address is not None and not DASK_ADDRESS.fullmatch(self.dask_address):
            raise ValueError(
                f"runner.dask_address {self.dask_address!r}: give a scheduler's address, "
                "e.g. tcp://10.0.0.5:8786"
            )
        return self

    def describe(self) -> str:
        if self.kind == "local":
            return "local"
        where = self.dask_address or f"LocalCluster of {self.dask_workers} workers"
        return f"dask ({where})"


DASK_ADDRESS = re.compile(r"((tcp|tls|ws|wss|ucx)://)?(\[[0-9a-fA-F:]+\]|[^\s:/\[\]]+):\d{1,5}")
"""A Dask scheduler's address: an optional protocol, a host and a port."""


@dataclass(frozen=True)
class SweepPoint:
    """One point of the grid: its overrides in the grid's key order."""

    overrides: tuple[tuple[str, GridValue], ...]

    @property
    def label(self) -> str:
        """``group_weights.robust_mix=0.5, loss.beta=0.1`` (``defaults`` for an empty grid): the
        child runs' ``grpo.sweep_point`` tag."""
        return (
            ", ".join(f"{k}={v:g}" if _is_number(v) else f"{k}={v}" for k, v in self.overrides)
            or "defaults"
        )

    @property
    def slug(self) -> str:
        """A folder name for the point: the label's characters that are safe in a path."""
        text = self.label.replace(", ", "_").replace("=", "-")
        return "".join(c if c.isalnum() or c in "._-" else "_" for c in text)


@dataclass(frozen=True)
class SweepChild:
    """One child of a sweep: a grid point, a method and a seed, and the point whose training it
    reports (``trained_at``: itself, or an earlier point whose effective recipe is the same)."""

    point: SweepPoint
    method: Method
    seed: int
    trained_at: SweepPoint

    @property
    def trains(self) -> bool:
        """Whether this child trains (else it reuses the training of ``trained_at``)."""
        return self.trained_at == self.point


def training_key(config: RunConfig, method: Method, seed: int) -> str:
    """What one training of ``config`` depends on: the method, the seed, the data and the
    effective recipe (the starting model follows from the data, model and SFT sections, all in
    it). Two children with the same key train to the same numbers."""
    return hash_json(
        {
            "method": method,
            "seed": seed,
            "data": config.data.model_dump(mode="json"),
            "recipe": effective_recipe(config.recipe(method), method).model_dump(mode="json"),
        }
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def with_overrides(config: RunConfig, overrides: tuple[tuple[str, GridValue], ...]) -> RunConfig:
    """``config`` with each dotted key set to its value, validated (a ``ValueError`` names the key)."""
    data = config.model_dump()
    for key, value in overrides:
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            if not isinstance(node.get(part), dict):
                raise ValueError(f"grid key {key}: {part} is not a section of the run config")
            node = node[part]
        if leaf not in node and parents != ["method_learning_rates"]:
            raise ValueError(f"grid key {key}: the run config has no field {leaf!r} there")
        node[leaf] = value
    try:
        return RunConfig.model_validate(data)
    except ValidationError as error:
        problem = error.errors()[0]
        where = ".".join(str(p) for p in problem["loc"])
        message = problem["msg"].removeprefix("Value error, ")
        shown = ", ".join(f"{k}={v}" for k, v in overrides)
        raise ValueError(f"grid point {shown}: {where}: {message}") from None


class SweepConfig(Section):
    """A sweep: every point of ``grid`` x every method x every seed of ``run``."""

    run: RunConfig = Field(
        default_factory=lambda: pareto_demo_run(),
        description="The run config every child starts from (its data, model and SFT are shared).",
    )
    grid: dict[str, tuple[GridValue, ...]] = Field(
        default_factory=lambda: {"group_weights.robust_mix": PARETO_CHIS},
        description="Dotted run-config keys and the values each takes (the product of all axes). "
        f"Keys under: {', '.join(SWEEPABLE)}.",
    )
    runner: RunnerConfig = Field(
        default_factory=RunnerConfig, description="Where the child trainings run."
    )
    pareto_split: Literal["validation", "test"] = Field(
        "validation",
        description="The split on which the worst group is set against the average (choosing a "
        "setting is a selection: validation by default).",
    )
    pareto_metric: Literal["loss", "reward_accuracy"] = Field(
        "loss", description="The metric of the Pareto figure and front."
    )

    @model_validator(mode="after")
    def _check(self) -> SweepConfig:
        for key, values in self.grid.items():
            root = key.split(".", 1)[0]
            if root not in SWEEPABLE:
                raise ValueError(
                    f"grid key {key}: only {', '.join(SWEEPABLE)} can be swept (the children share "
                    "the data, model and starting model; methods and seeds are run.methods and "
                    "run.seeds)"
                )
            if not values:
                raise ValueError(f"grid key {key} has no values")
            if len(set(map(repr, values))) != len(values):
                raise ValueError(f"grid key {key}: values repeat: {list(values)}")
        for point in self.points():
            with_overrides(self.run, point.overrides)
        return self

    @property
    def name(self) -> str:
        """The MLflow experiment: the run config's."""
        return self.run.name

    def points(self) -> list[SweepPoint]:
        """The grid's points, the last key varying fastest."""
        keys = list(self.grid)
        return [
            SweepPoint(tuple(zip(keys, values, strict=True)))
            for values in itertools.product(*(self.grid[k] for k in keys))
        ]

    def child_config(self, point: SweepPoint) -> RunConfig:
        return with_overrides(self.run, point.overrides)

    def children(self) -> list[SweepChild]:
        """Every point x seed x method, in that order; a child trains unless an earlier one has
        the same :func:`training_key`, whose training it then reports."""
        first: dict[str, SweepPoint] = {}
        children = []
        for point in self.points():
            child = self.child_config(point)
            for seed in child.seeds:
                for method in child.methods:
                    trained_at = first.setdefault(training_key(child, method, seed), point)
                    children.append(SweepChild(point, method, seed, trained_at))
        return children

    @property
    def size(self) -> int:
        """The children: grid points x methods x seeds."""
        return len(self.points()) * len(self.run.methods) * len(self.run.seeds)


def pareto_demo_run() -> RunConfig:
    """The ``sweep`` deployment's default run: the demo's data, tiny model, seeds and steps, GR-IPO
    only (the Pareto preset sweeps its chi), no model registration."""
    demo = demo_config()
    return demo.model_copy(
        update={
            "name": "grpo-sweep",
            "methods": ("gr_ipo",),
            "tracking": demo.tracking.model_copy(update={"register_models": False}),
        }
    )


def pareto_grid(run: RunConfig) -> dict[str, tuple[GridValue, ...]]:
    """The Pareto preset: chi in {0, 0.25, 0.5, 0.75, 1}; needs a group-robust method in ``run``."""
    if not any(is_group_robust(m) for m in run.methods):
        raise ValueError(
            f"the Pareto sweep varies chi (group_weights.robust_mix) of a group-robust method; "
            f"run.methods has none ({', '.join(run.methods)}): add gr_dpo or gr_ipo"
        )
    return {"group_weights.robust_mix": PARETO_CHIS}
