"""Prefect flows: composition only (which tasks, in what order, with which parameters)."""
