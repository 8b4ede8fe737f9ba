"""What the experiment and sweep flows share: data and start model first, where results live."""

from __future__ import annotations

from pathlib import Path

from prefect.runtime import flow_run

from tasks.data import data_key, group_data, log_headroom
from tasks.records import ParentRun, PreparedData, StartModelRef
from tasks.run_config import RunConfig
from tasks.runs import log_dataset
from tasks.stages import cache_dir, sft


def where_it_is(parent: ParentRun) -> dict[str, str]:
    """The first fields of a flow's result: its MLflow parent run, experiment, tracking URI and
    Prefect flow run."""
    return {
        "parent_run_id": parent.run_id,
        "experiment_id": parent.experiment_id,
        "tracking_uri": parent.tracking_uri,
        "flow_run_id": str(flow_run.id),
    }


def data_and_start_model(
    config: RunConfig, parent: ParentRun
) -> tuple[PreparedData, StartModelRef]:
    """The grouped data (cached on its content key, logged as the parent run's input) and the
    starting model every method trains from (cached SFT)."""
    output = Path(config.execution.output_dir).resolve()
    inputs = (
        config.data,
        data_key(config.data, config.model, cache_dir()),
        str(output),
        cache_dir(),
    )
    data = group_data(*inputs, model=config.model)
    if not Path(data.data_dir).exists():  # a cached result whose folder was deleted since
        data = group_data.with_options(refresh_cache=True)(*inputs, model=config.model)
    log_dataset(parent.run_id, config, data)
    log_headroom(parent.run_id, data)
    return data, sft(config, data.data_dir)
