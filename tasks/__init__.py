"""Prefect tasks: thin adapters that unpack the config, call grpo_core, and log to MLflow."""
