"""Read-only views over the MLflow runs of the pipeline: a Streamlit dashboard and static reports.

``mlflow_source`` reads MLflow (``store`` says where it is), ``shaping`` turns run tables into plot
tables (pure pandas), ``figures`` defines every figure once (``figure_spec``), drawn by
``render_plotly`` in ``app`` (the Streamlit page) and by ``render_matplotlib`` in ``report`` (the
self-contained HTML report of one flow run).
"""
