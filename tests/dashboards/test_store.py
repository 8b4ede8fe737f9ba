"""One rule for where the MLflow store is, shared by the pipeline and the views."""

from dashboards.store import artifact_root, sqlite_path, tracking_uri


def test_tracking_uri_is_explicit(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    assert tracking_uri() == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert artifact_root(tracking_uri()) == str(tmp_path.resolve() / "mlartifacts")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking_uri() == "http://127.0.0.1:5000"
    assert artifact_root(tracking_uri()) is None


def test_only_sqlite_uris_have_a_database_file():
    assert str(sqlite_path("sqlite:////data/mlflow.db")) == "/data/mlflow.db"
    assert sqlite_path("http://127.0.0.1:5000") is None
