"""The test cluster itself: two nodes, tasks placed on both."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e


def test_cluster_has_two_alive_nodes_and_runs_tasks_on_both(ray_cluster_):
    import ray

    @ray.remote(num_cpus=1)
    def where() -> str:
        return ray.get_runtime_context().get_node_id()

    nodes = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    assert len(nodes) == 2
    seen = {ray.get(where.options(scheduling_strategy=ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy(
        node, soft=False)).remote()) for node in nodes}
    assert seen == nodes
    assert len(ray_cluster_.pids()) > 4  # gcs, raylets, agents, workers: all in the cluster's groups
