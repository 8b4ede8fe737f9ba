"""MLflow run tables -> the tables the figures draw. Pure pandas: no MLflow, no plotting, no torch.

The input is a :class:`RunTables`: one row per run (tags made columns), the latest value of every
metric, and the step history of the few metrics drawn over time. :mod:`dashboards.mlflow_source`
reads it from MLflow; tests write it by hand. Metric keys are those of :mod:`grpo_core.names`.

- :mod:`.tables`: the run tables; :mod:`.order`: canonical orders; :mod:`.selection`: choosing runs;
- :mod:`.final`: final evaluation across seeds (per-group bars, summaries, gaps between methods);
- :mod:`.headroom`: each method beside what a group-blind policy can reach on the data;
- :mod:`.curves`: metrics over training; :mod:`.synthetic`: the synthetic benchmark;
- :mod:`.evaluations`: evaluation runs and notes on what is missing; :mod:`.sweep`: a sweep's
  settings, worst group against average.
"""

from dashboards.shaping.curves import (
    CURVE_COLUMNS,
    across_seeds,
    curve_summary,
    group_weights,
    thin,
    training_curves,
)
from dashboards.shaping.evaluations import evaluation_table, status_notes
from dashboards.shaping.final import (
    FINAL_COLUMNS,
    GAP_COLUMNS,
    default_pairs,
    final_metrics,
    group_bars,
    method_gaps,
    plus_minus,
    seed_summary,
    summary_table,
)
from dashboards.shaping.headroom import (
    BOUND_COLUMN,
    HEADROOM_COLUMNS,
    group_points,
    headroom_metrics,
    headroom_sentence,
    headroom_table,
)
from dashboards.shaping.order import FAMILIES, method_rank, ordered, sort_by
from dashboards.shaping.selection import children, filter_runs, flow_runs
from dashboards.shaping.sweep import (
    SWEEP_COLUMNS,
    UNSEEN_COLUMNS,
    evaluated_splits,
    held_out_values,
    last_split,
    result_values,
    short_setting,
    sweep_points,
    sweep_values,
    unseen_groups,
)
from dashboards.shaping.synthetic import (
    SETTINGS,
    settings_of,
    sweep_table,
    synthetic_curves,
    synthetic_summary,
    synthetic_sweeps,
    synthetic_table,
)
from dashboards.shaping.tables import (
    RUN_COLUMNS,
    RunTables,
    empty_tables,
    group_names,
    json_records,
    make_runs,
    make_tables,
)

__all__ = [
    "BOUND_COLUMN",
    "HEADROOM_COLUMNS",
    "group_points",
    "headroom_metrics",
    "headroom_sentence",
    "headroom_table",
    "CURVE_COLUMNS",
    "FAMILIES",
    "FINAL_COLUMNS",
    "GAP_COLUMNS",
    "RUN_COLUMNS",
    "SWEEP_COLUMNS",
    "UNSEEN_COLUMNS",
    "SETTINGS",
    "RunTables",
    "across_seeds",
    "children",
    "curve_summary",
    "default_pairs",
    "empty_tables",
    "evaluated_splits",
    "evaluation_table",
    "filter_runs",
    "final_metrics",
    "flow_runs",
    "group_bars",
    "group_names",
    "group_weights",
    "held_out_values",
    "json_records",
    "last_split",
    "make_runs",
    "make_tables",
    "method_gaps",
    "method_rank",
    "ordered",
    "plus_minus",
    "result_values",
    "seed_summary",
    "settings_of",
    "short_setting",
    "sort_by",
    "status_notes",
    "summary_table",
    "synthetic_curves",
    "synthetic_summary",
    "synthetic_sweeps",
    "synthetic_table",
    "sweep_points",
    "sweep_table",
    "sweep_values",
    "thin",
    "training_curves",
    "unseen_groups",
]
