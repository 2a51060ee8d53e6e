"""The emulated AWS path: this test's buckets and streams on the session's moto server
(``moto_server``, ``aws_env`` and ``aws_names`` are in tests/conftest.py)."""

from __future__ import annotations

import pytest

from lake_pipeline.settings import Settings, load_settings


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
