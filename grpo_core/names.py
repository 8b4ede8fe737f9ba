"""Every metric key and run tag the project writes or reads: built, parsed and given a direction here.

Torch-free and dependency-free: the core, the tasks, the dashboards and the CLI all import it, and no
metric key or tag is spelled anywhere else (``tests/test_architecture.py`` looks for strays).

Metric keys use ``[a-z0-9_./-]`` and group by their first segment, the section the MLflow UI shows:

- ``eval/<split>/group/<slug>/<metric>``: one group's mean over its pairs (and ``.../count``);
- ``eval/<split>/worst_group/<metric>``: the worst group, by the metric's direction;
- ``eval/<split>/average/<metric>``: the unweighted mean over the groups present;
- ``eval/<split>/imbalance/loss`` (max - min) and ``eval/<split>/gap/<accuracy>`` (best - worst);
- ``drift/...``: the same layout under ``drift/``, the change since the model's training-time value;
- ``train/<quantity>`` per optimizer step, ``train/<per-group quantity>/<slug>``;
- ``sft/<quantity>`` per SFT step; ``synthetic/...`` for the synthetic benchmark;
- ``headroom/<split>/...`` on a flow's parent run: what a group-blind policy can reach on its data.

``<slug>`` is a group's slug; the slug-to-name map is logged with every run (``grpo.group_slugs``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal, get_args

# Per-group metrics (docs/ALGORITHM.md#evaluation-metrics) -----------------------------------------

HIGHER_IS_BETTER: dict[str, bool] = {
    "loss": False,
    "reward_accuracy": True,
    "logprob_accuracy": True,
    "reward_margin": True,
}
"""Direction of every metric that has a worst group (a property of the metric, never guessed)."""

DESCRIPTIVE_METRICS = ("chosen_reward", "rejected_reward")
"""Reported per group and averaged, but without a worst group: neither direction is "better"."""

ACCURACIES = ("reward_accuracy", "logprob_accuracy")
"""The metrics whose best-minus-worst ``gap`` is reported."""

COUNT = "count"
GROUP_METRICS = (*HIGHER_IS_BETTER, *DESCRIPTIVE_METRICS, COUNT)
"""Everything reported per group, in display order."""

Split = Literal["train", "validation", "test"]
SPLITS: tuple[str, ...] = get_args(Split)

Scope = Literal["group", "worst_group", "average", "imbalance", "gap"]
SPREAD_SCOPES = ("imbalance", "gap")
"""Spreads between groups: better small, whatever the metric's own direction."""

EVAL, DRIFT = "eval", "drift"


def direction(scope: str, metric: str) -> bool | None:
    """Whether higher is better for ``<scope>/<metric>``; None where no direction is meaningful
    (descriptive metrics, counts)."""
    if scope in SPREAD_SCOPES:
        return False
    return HIGHER_IS_BETTER.get(metric)


@dataclass(frozen=True)
class EvalKey:
    """One evaluation metric key, e.g. ``eval/test/group/japan/loss`` or ``eval/test/worst_group/loss``.

    ``group`` is the slug for ``scope == "group"`` and empty otherwise; ``root`` is ``eval`` or
    ``drift``.
    """

    split: str
    scope: Scope
    metric: str
    group: str = ""
    root: str = EVAL

    def __str__(self) -> str:
        middle = f"group/{self.group}" if self.scope == "group" else self.scope
        return f"{self.root}/{self.split}/{middle}/{self.metric}"

    @property
    def aggregate(self) -> str:
        """``<scope>/<metric>`` (``group/<slug>/<metric>`` for a group): the key without its split."""
        return str(self).split("/", 2)[2]

    @property
    def higher_is_better(self) -> bool | None:
        return direction(self.scope, self.metric)

    def as_drift(self) -> EvalKey:
        return replace(self, root=DRIFT)

    @staticmethod
    def parse(key: str) -> EvalKey | None:
        """The parts of an ``eval/...`` or ``drift/...`` key; None for any other key."""
        parts = key.split("/")
        if len(parts) < 4 or parts[0] not in (EVAL, DRIFT):
            return None
        if parts[2] == "group":
            if len(parts) != 5:
                return None
            return EvalKey(parts[1], "group", parts[4], parts[3], parts[0])
        if len(parts) != 4 or parts[2] not in get_args(Scope):
            return None
        return EvalKey(parts[1], parts[2], parts[3], "", parts[0])  # type: ignore[arg-type]


def eval_key(split: str, scope: Scope, metric: str, group: str = "") -> str:
    """``eval/<split>/<scope>/<metric>``, or ``eval/<split>/group/<group>/<metric>``."""
    return str(EvalKey(split, scope, metric, group))


def aggregate(scope: Scope, metric: str, group: str = "") -> str:
    """``<scope>/<metric>`` (``group/<group>/<metric>``): a key without its split, as comparison
    tables name their columns."""
    return EvalKey("", scope, metric, group).aggregate


def split_aggregate(text: str) -> tuple[str, str]:
    """``worst_group/loss`` -> ``("worst_group", "loss")``."""
    scope, _, metric = text.partition("/")
    return scope, metric


HEADLINE_METRICS = ("loss", "reward_accuracy")
"""The metrics that headline tables show per group."""

SUMMARY: tuple[str, ...] = tuple(
    aggregate(scope, metric)
    for metric, spread in (("loss", "imbalance"), ("reward_accuracy", "gap"))
    for scope in ("worst_group", "average", spread)
)
"""``<scope>/<metric>`` compared across methods and seeds: worst group, average and spread of the
headline metrics."""

HEADLINE: tuple[str, ...] = tuple(k for k in SUMMARY if split_aggregate(k)[0] not in SPREAD_SCOPES)
"""The four numbers every printed comparison shows: worst-group and average loss and reward accuracy."""

METRIC_LABELS = {
    "loss": "loss",
    "reward_accuracy": "reward accuracy",
    "logprob_accuracy": "log-prob accuracy",
    "reward_margin": "reward margin",
    "chosen_reward": "chosen reward",
    "rejected_reward": "rejected reward",
    COUNT: "pairs",
}
SCOPE_LABELS = {
    "worst_group": "worst-group",
    "average": "average",
    "imbalance": "imbalance (max-min)",
    "gap": "gap (best-worst)",
}


def metric_label(metric: str) -> str:
    """``reward_accuracy`` -> ``reward accuracy``."""
    return METRIC_LABELS.get(metric, metric.replace("_", " "))


def label(text: str) -> str:
    """A ``<scope>/<metric>`` aggregate for people: ``worst_group/loss`` -> ``worst-group loss``."""
    scope, metric = split_aggregate(text)
    return f"{SCOPE_LABELS.get(scope, scope)} {metric_label(metric)}"


CHAMPION_METRICS: tuple[str, ...] = tuple(
    eval_key("validation", "worst_group", m)
    for m in ("reward_accuracy", "loss", "logprob_accuracy")
)
"""Keys the champion may be chosen on: validation worst-group metrics (never the test split)."""


# A flow run's parent run: each method's headline metrics over its seeds ----------------------------

SUMMARY_ROOT = "summary"
SeedStat = Literal["mean", "lo", "hi"]
SEED_STATS: tuple[str, ...] = get_args(SeedStat)
"""The mean over seeds and the bounds of its 95% Student-t interval (``lo``/``hi`` need two seeds)."""


@dataclass(frozen=True)
class SummaryKey:
    """A parent run's metric over the seeds of one method, e.g.
    ``summary/gr_ipo/validation/worst_group/reward_accuracy/mean``: the same name in every flow
    run, so MLflow's compare view lines two flow runs up on their parent runs."""

    method: str
    split: str
    scope: Scope
    metric: str
    stat: SeedStat

    def __str__(self) -> str:
        return "/".join((SUMMARY_ROOT, self.method, self.split, self.scope, self.metric, self.stat))

    @staticmethod
    def parse(key: str) -> SummaryKey | None:
        """The parts of a ``summary/...`` key; None for any other key."""
        parts = key.split("/")
        if (
            len(parts) != 6
            or parts[0] != SUMMARY_ROOT
            or parts[3] not in get_args(Scope)
            or parts[3] == "group"
            or parts[5] not in SEED_STATS
            or not all(parts)
        ):
            return None
        return SummaryKey(parts[1], parts[2], parts[3], parts[4], parts[5])  # type: ignore[arg-type]


def summary_key(method: str, split: str, aggregate: str, stat: SeedStat) -> str:
    """``summary/<method>/<split>/<aggregate>/<stat>`` for an aggregate such as ``worst_group/loss``."""
    scope, metric = split_aggregate(aggregate)
    return str(SummaryKey(method, split, scope, metric, stat))  # type: ignore[arg-type]


PER_GROUP_SUMMARY = "per-group-summary.csv"
"""The parent run's per-group table over seeds: method, split, group, metric, mean, lo, hi, seeds."""

EXPERIMENT_KIND = "mlflow.experimentKind"
MODEL_TRAINING_KIND = "custom_model_development"
"""The experiment tag and value that open an experiment on its training runs in MLflow 3's UI
(without it the UI may open on its GenAI traces page)."""


def pairs_artifact(split: str) -> str:
    """The run artifact holding one split's per-pair evaluation values (the promotion evidence)."""
    return f"evaluation-pairs-{split}.json"


# The data's headroom: what a group-blind policy can reach (grpo_core.data.headroom) --------------

HEADROOM = "headroom"
HeadroomScope = Literal["worst_group", "average", "group", "data"]
HEADROOM_SCOPES: tuple[str, ...] = get_args(HeadroomScope)
HEADROOM_BOUNDS = ("reward_accuracy_upper", "reward_accuracy_lower")
"""``worst_group`` and ``average``: no group-blind policy does better than ``upper``; one reaches
``lower``."""
HEADROOM_GROUP_METRIC = "reward_accuracy"
"""``group/<slug>``: the group's accuracy under the policy that reaches the worst-group ``lower``."""
HEADROOM_COUNTS = ("prompts", "shared_prompts", "conflicting_prompts")
"""``data``: distinct prompts, those shared by two or more groups, those no ordering satisfies."""


@dataclass(frozen=True)
class HeadroomKey:
    """A parent run's headroom metric of one split, e.g.
    ``headroom/test/worst_group/reward_accuracy_upper``, ``headroom/test/group/japan/reward_accuracy``
    or ``headroom/test/data/shared_prompts``."""

    split: str
    scope: HeadroomScope
    metric: str
    group: str = ""

    def __str__(self) -> str:
        middle = f"group/{self.group}" if self.scope == "group" else self.scope
        return f"{HEADROOM}/{self.split}/{middle}/{self.metric}"

    @staticmethod
    def parse(key: str) -> HeadroomKey | None:
        """The parts of a ``headroom/...`` key; None for any other key."""
        parts = key.split("/")
        if len(parts) < 4 or parts[0] != HEADROOM or not all(parts):
            return None
        if parts[2] == "group":
            if len(parts) != 5 or parts[4] != HEADROOM_GROUP_METRIC:
                return None
            return HeadroomKey(parts[1], "group", parts[4], parts[3])
        allowed = HEADROOM_COUNTS if parts[2] == "data" else HEADROOM_BOUNDS
        if len(parts) != 4 or parts[2] not in HEADROOM_SCOPES or parts[3] not in allowed:
            return None
        return HeadroomKey(parts[1], parts[2], parts[3])  # type: ignore[arg-type]


def headroom_key(split: str, scope: HeadroomScope, metric: str, group: str = "") -> str:
    """``headroom/<split>/<scope>/<metric>``, or ``headroom/<split>/group/<group>/<metric>``."""
    return str(HeadroomKey(split, scope, metric, group))


HEADROOM_ARTIFACT = "headroom.json"
"""The parent run's ``{split: Headroom.summary()}`` of the data it trained on."""


# Training ---------------------------------------------------------------------------------------

TRAIN, SFT, SYNTHETIC = "train", "sft", "synthetic"

TRAIN_LOSS = "train/loss"
TRAIN_LEARNING_RATE = "train/learning_rate"
"""eta_theta in force (``optim.learning_rate`` after plateau cuts)."""
TRAIN_STEP_SIZE = "train/step_size"
"""eta_alpha in force (``group_weights.step_size``, halved on learning-rate cuts if configured)."""
TRAIN_GRAD_NORM = "train/grad_norm"
TRAIN_STEPS = "train/steps"
TRAIN_LR_CUTS = "train/lr_cuts"
TRAIN_STOPPED_EARLY = "train/stopped_early"
TRAIN_OUTCOME = (TRAIN_STEPS, TRAIN_LR_CUTS, TRAIN_STOPPED_EARLY)
"""Keys known only once training ends."""
TIMING_KEYS = ("seconds_per_step", "pairs_per_second", "peak_rss_gb", "peak_cuda_gb")
"""What a run's ``timing.json`` reports, logged as ``train/<key>`` (wall time per optimizer step,
validation included; peak memory of the training process)."""


def timing_key(field: str) -> str:
    """``train/<field>`` for a :data:`TIMING_KEYS` field."""
    return f"{TRAIN}/{field}"


GroupQuantity = Literal["group_loss", "group_weight", "group_coefficient"]
GROUP_QUANTITIES: tuple[str, ...] = get_args(GroupQuantity)
"""Per-group step quantities: Lhat_g, alpha_g, and the c_g of the theta loss."""


def train_group_key(quantity: GroupQuantity, slug: str) -> str:
    """``train/<quantity>/<slug>``, e.g. ``train/group_weight/japan``."""
    return f"{train_group_prefix(quantity)}{slug}"


def train_group_prefix(quantity: GroupQuantity) -> str:
    return f"{TRAIN}/{quantity}/"


def parse_train_group_key(key: str) -> tuple[str, str] | None:
    """``train/group_weight/japan`` -> ``("group_weight", "japan")``; None for other keys."""
    parts = key.split("/")
    if len(parts) == 3 and parts[0] == TRAIN and parts[1] in GROUP_QUANTITIES:
        return parts[1], parts[2]
    return None


SFT_LOSS = "sft/loss"
"""Mean negative log-likelihood per token of the chosen responses."""
SFT_LEARNING_RATE = "sft/learning_rate"
SFT_GRAD_NORM = "sft/grad_norm"

# Synthetic benchmark ----------------------------------------------------------------------------

SYNTHETIC_WORST_VAL_LOSS = "synthetic/worst_val_group_loss"
"""Worst-group validation loss over iterations (mean over seeds)."""
SYNTHETIC_SUMMARY_METRICS = ("max_val_group_loss", "max_reward_error")
SYNTHETIC_AVERAGE_VAL_LOSS = "average_val_group_loss"
"""The chi sweep's other axis: the mean over groups of the final validation loss."""
SYNTHETIC_STATS = ("mean", "ci95")


def synthetic_key(metric: str, stat: str) -> str:
    """``synthetic/<metric>/<stat>``, e.g. ``synthetic/max_reward_error/ci95``."""
    return f"{SYNTHETIC}/{metric}/{stat}"


def synthetic_group_weight_key(group: int) -> str:
    """``synthetic/group_weight/group-<g>``: final alpha_g (mean over seeds)."""
    return f"{SYNTHETIC}/group_weight/group-{group}"


HISTORY_PREFIXES = (
    train_group_prefix("group_loss"),
    train_group_prefix("group_weight"),
    f"{EVAL}/validation/worst_group/",
    f"{EVAL}/validation/average/",
    SYNTHETIC_WORST_VAL_LOSS,
)
"""Metrics whose step history the views draw (every other metric is read at its latest value)."""

# Run tags ---------------------------------------------------------------------------------------

RunType = Literal["experiment", "sweep", "train", "synthetic", "synthetic_method", "evaluation"]
RUN_TYPES: tuple[str, ...] = get_args(RunType)
"""Flow parent runs (experiment, sweep, synthetic), their children (train, synthetic_method), and
the evaluation flow's runs."""

PARENT_RUN = "mlflow.parentRunId"
GIT_COMMIT = "git.commit"


def grpo_tag(field: str) -> str:
    """The project's tag ``grpo.<field>``."""
    return f"grpo.{field}"


RUN_TYPE = grpo_tag("run_type")
METHOD = grpo_tag("method")
SEED = grpo_tag("seed")
DATASET = grpo_tag("dataset")
GROUP_SLUGS = grpo_tag("group_slugs")
"""JSON ``{slug: group name}`` of the run's groups."""
SETTING = grpo_tag("setting")
SWEEP_POINT = grpo_tag("sweep_point")
"""On a sweep's child run: its overrides of the run config, ``key=value, ...`` (``defaults`` if none)."""
SHARED_WITH = grpo_tag("shared_with")
"""On a sweep's child run that did not train: the run whose training it reports (the same effective
recipe, method and seed at another grid point); its metrics are that run's, copied."""
HELD_OUT_GROUP = grpo_tag("held_out_group")
"""On a leave-one-group-out child run: the group its training never saw (evaluated on all)."""
RUNNER = grpo_tag("runner")
"""On a sweep's parent run: the Prefect task runner its children ran on (``local``, ``dask ...``)."""
FEATURE_TYPE = grpo_tag("feature_type")
SOLVER = grpo_tag("solver")
SEEDS = grpo_tag("seeds")
MODEL_URI = grpo_tag("model_uri")
SOURCE_RUN_ID = grpo_tag("source_run_id")
CHAMPION_METRIC = grpo_tag("champion_metric")
CHAMPION_METRIC_VALUE = grpo_tag("champion_metric_value")
FAILURE = grpo_tag("failure")
"""Why a run failed, one line (set with the FAILED status)."""
WARNINGS = grpo_tag("warnings")
"""What made a run or an evaluation doubtful (unknown tokens, other groups, non-finite metrics,
a collapsed run)."""
EVIDENCE_RUNS = grpo_tag("evidence_runs")
"""On a model version: comma-separated runs (the seeds of its method in its flow run) whose
per-pair evaluations are its promotion evidence."""
PROMOTION = grpo_tag("promotion")
"""On a model version: ``promoted``, ``passed`` (passed the rule, another was better) or ``rejected``."""
PROMOTION_REASON = grpo_tag("promotion_reason")
PROMOTION_NUMBERS = grpo_tag("promotion_numbers")
"""JSON of the decision's numbers: values, improvement, interval, per-group changes."""

DRIFT_STATUS = grpo_tag("drift_status")
"""On an evaluation run: ``alert`` (a group fell past the threshold since training), ``ok``, or
``no-baseline`` (a plain checkpoint: nothing to compare with)."""
DRIFT_ALERT = grpo_tag("drift_alert")
"""On an evaluation run with an alert: which groups fell, by how much, on which metric."""

DRIFT_EVENT = "grpo.drift.degraded"
DRIFT_RESOURCE_PREFIX = "grpo.model."
"""The event's resource id is this prefix and the model's URI."""
"""The Prefect event the evaluation emits when a group fell past the threshold (the automation in
``automations/drift-alert.yaml`` turns it into a notification)."""

GRPO_TAG_COLUMNS = (
    "run_type",
    "method",
    "seed",
    "dataset",
    "setting",
    "sweep_point",
    "held_out_group",
    "feature_type",
    "solver",
    "seeds",
    "model_uri",
    "group_slugs",
    "failure",
    "warnings",
)
"""Tags ``grpo.<column>`` that the views read into a column of the same name."""

PREFECT_TAG_COLUMNS = ("flow_run_id", "flow_run_name", "flow_run_url")


def prefect_tag(field: str) -> str:
    """``prefect.<field>``: the Prefect flow run a run belongs to."""
    return f"prefect.{field}"
