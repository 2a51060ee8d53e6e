"""Shared fixtures: temporary landing zones and lakes, settings, a Dagster instance, and
the session's one moto server (started on first use, stopped at the end of the session).

Helpers that are not fixtures live in tests/support/; the tiers are described in
tests/support/tiers.py.
"""

from __future__ import annotations

import uuid as uuidlib
from pathlib import Path

import pytest

from lake_pipeline.settings import Settings, load_settings
from tests.support import tiers


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    tiers.entering(item)


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


# ---- emulated AWS: one moto server for the whole session -------------------------------


@pytest.fixture(scope="session")
def _moto_process(tmp_path_factory):
    """The session's moto server process (use ``moto_server`` or ``aws_env``)."""
    from lake_pipeline.devtools import emulator

    emu = emulator.start(tmp_path_factory.mktemp("aws-local"))
    try:
        yield emu
    finally:
        emulator.stop(emu.state_dir)


@pytest.fixture
def moto_server(request):
    """A moto server (S3, Kinesis, Firehose, SNS, SQS, ...) on 127.0.0.1 and a free port.

    One for the whole session: started the first time a test asks for it (a session
    fixture is lazy, so the fast tier never starts it) and stopped when the session ends.
    It runs in its own process (``lake_pipeline.devtools.emulator``, what ``make
    aws-local`` runs), not in a thread of the test process: deltalake calls that hold the
    GIL while they wait on the network would otherwise deadlock against an in-process
    server. Tests share it, so each one names its own buckets, streams and topics
    (``aws_names``).
    """
    tiers.require(tiers.E2E, "uses the moto server")  # before starting it
    return request.getfixturevalue("_moto_process")


@pytest.fixture
def aws_env(_isolated_env, moto_server, monkeypatch):
    """The standard AWS environment pointing at the session's moto server (set after
    ``_isolated_env`` has removed the developer's AWS_* variables)."""
    for name, value in moto_server.aws_environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return moto_server


@pytest.fixture
def aws_names() -> dict[str, str]:
    """Bucket, stream and topic names of one test (the moto server is shared)."""
    tag = uuidlib.uuid4().hex[:10]
    return {
        "raw_bucket": f"t-{tag}-raw",
        "lake_bucket": f"t-{tag}-lake",
        "stream": f"t-{tag}-events",
        "delivery_stream": f"t-{tag}-events-to-raw",
        "topic": f"t-{tag}-alerts",
        "queue": f"t-{tag}-alerts-inbox",
    }
