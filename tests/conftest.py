"""Shared fixtures: temporary landing zones and lakes, settings, a Dagster instance."""

from __future__ import annotations

from pathlib import Path

import pytest

from lake_pipeline.settings import Settings, load_settings



@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    """No LAKE_* or AWS settings leak in from the developer's shell."""
    import os

    for name in list(os.environ):
        if name.startswith("LAKE_") or name.startswith("AWS_"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))


@pytest.fixture(scope="session")
def defs():
    """The code location, loaded once (it is read-only)."""
    from lake_pipeline.definitions import defs as load

    return load()


@pytest.fixture
def instance():
    """A real, ephemeral Dagster instance."""
    import dagster as dg

    with dg.DagsterInstance.ephemeral() as inst:
        yield inst


@pytest.fixture
def raw_dir(tmp_path) -> Path:
    path = tmp_path / "raw"
    path.mkdir()
    return path


@pytest.fixture
def lake_dir(tmp_path) -> Path:
    return tmp_path / "lake"


@pytest.fixture
def settings(raw_dir, lake_dir) -> Settings:
    return load_settings(raw_uri=str(raw_dir), lake_uri=str(lake_dir))


@pytest.fixture
def lake(settings):
    """The test's lake (tables under ``lake_dir``)."""
    from lake_pipeline.tables.lake import Lake

    return Lake.from_settings(settings)
