"""Read-only views over the MLflow runs of the pipeline: a Streamlit dashboard and static reports.

``shaping`` turns run tables into plot tables (pure pandas), ``figures`` (plotly) and
``static_figures`` (matplotlib) draw them, ``mlflow_source`` reads MLflow, ``app`` is the Streamlit
page and ``report`` writes the self-contained HTML report of one experiment flow run.
"""
