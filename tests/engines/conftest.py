"""The session's real two-node Ray cluster (started on first use, stopped at the end)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from tests.support import ray_cluster, tiers


@pytest.fixture(scope="session")
def _ray_cluster_process():
    # A short directory: Ray's socket paths under it must stay below the 107-byte Unix limit.
    temp = Path(tempfile.mkdtemp(prefix="lake-ray-", dir="/tmp"))
    try:
        cluster = ray_cluster.start(temp)  # stops what it started when it fails
        try:
            yield cluster
        finally:
            ray_cluster.stop(cluster)
    finally:
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture
def ray_cluster_(request) -> ray_cluster.RayCluster:
    """A head and a worker node, one CPU each, as separate processes on 127.0.0.1."""
    tiers.require(tiers.E2E, "uses the Ray cluster")
    return request.getfixturevalue("_ray_cluster_process")
