"""What the experiment and sweep flows both do first: group the data, then the starting model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tasks.data import data_key, group_data
from tasks.run_config import RunConfig
from tasks.runs import log_dataset
from tasks.training import cache_dir, sft


def data_and_start_model(
    config: RunConfig, parent: dict[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
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
    if not Path(data["data_dir"]).exists():  # a cached result whose folder was deleted since
        data = group_data.with_options(refresh_cache=True)(*inputs, model=config.model)
    log_dataset(parent["run_id"], config, data)
    return data, sft(config, data["data_dir"])
