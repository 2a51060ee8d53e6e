"""The emulated AWS path: one moto server for the session, over real HTTP on 127.0.0.1.

The server runs in its own process (``lake_pipeline.devtools.emulator``, what ``make
aws-local`` runs), not in a thread of the test process: deltalake calls that hold the
GIL while they wait on the network would otherwise deadlock against an in-process server.
Each test gets its own buckets and streams, so tests don't see each other's data.
"""

from __future__ import annotations

import uuid as uuidlib

import pytest

from lake_pipeline.devtools import emulator
from lake_pipeline.settings import Settings, load_settings


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory) -> emulator.Emulator:
    emu = emulator.start(tmp_path_factory.mktemp("aws-local"))
    try:
        yield emu
    finally:
        emulator.stop(emu.state_dir)


@pytest.fixture
def aws_env(_isolated_env, moto_server, monkeypatch) -> emulator.Emulator:
    """The standard AWS environment pointing at the session's moto server (set after
    tests/conftest.py's autouse fixture has removed the developer's AWS_* variables)."""
    for name, value in moto_server.aws_environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return moto_server


@pytest.fixture
def aws_names() -> dict[str, str]:
    """Bucket and stream names of one test."""
    tag = uuidlib.uuid4().hex[:10]
    return {
        "raw_bucket": f"t-{tag}-raw",
        "lake_bucket": f"t-{tag}-lake",
        "stream": f"t-{tag}-events",
        "delivery_stream": f"t-{tag}-events-to-raw",
    }


@pytest.fixture
def aws_settings(aws_env, aws_names, monkeypatch) -> Settings:
    """LAKE_* variables naming this test's buckets and streams (not created yet: see ``bootstrapped``)."""
    env = {
        "LAKE_RAW_URI": f"s3://{aws_names['raw_bucket']}/raw",
        "LAKE_URI": f"s3://{aws_names['lake_bucket']}/lake",
        "LAKE_STREAM_NAME": aws_names["stream"],
        "LAKE_DELIVERY_STREAM_NAME": aws_names["delivery_stream"],
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings()


@pytest.fixture
def bootstrapped(aws_settings) -> Settings:
    from lake_pipeline.devtools.bootstrap import bootstrap

    bootstrap(aws_settings)
    return aws_settings
