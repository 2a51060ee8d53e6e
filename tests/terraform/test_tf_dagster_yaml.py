"""dagster_home/dagster.aws.yaml: valid for Dagster 1.13, and fed entirely by Terraform."""

from __future__ import annotations

import os
import re
import shutil

import pytest
import yaml
from tests.support.terraform import MODULES, REPO, TERRAFORM, load_module

from lake_pipeline import settings

AWS_YAML = REPO / "dagster_home" / "dagster.aws.yaml"
WORKSPACE = TERRAFORM / "image" / "workspace.yaml"


def env_refs(node) -> set[str]:
    """Names of every {env: NAME} in a YAML document."""
    found = set()
    if isinstance(node, dict):
        if set(node) == {"env"} and isinstance(node["env"], str):
            return {node["env"]}
        for v in node.values():
            found |= env_refs(v)
    elif isinstance(node, list):
        for v in node:
            found |= env_refs(v)
    return found


@pytest.fixture(scope="module")
def instance_config(tmp_path_factory):
    from dagster._core.instance.config import dagster_instance_config

    home = tmp_path_factory.mktemp("dagster_home")
    shutil.copy(AWS_YAML, home / "dagster.yaml")
    config, _ = dagster_instance_config(str(home))
    return config


def test_validates_against_the_dagster_instance_schema(instance_config):
    assert set(instance_config) >= {"storage", "run_launcher", "run_coordinator", "concurrency", "compute_logs"}
    assert set(instance_config["storage"]) == {"postgres"}


def test_component_configs_validate(instance_config, monkeypatch):
    from dagster._config import process_config, resolve_to_config_type
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster_aws.ecs import EcsRunLauncher
    from dagster_aws.s3.compute_log_manager import S3ComputeLogManager

    for name in env_refs(yaml.safe_load(AWS_YAML.read_text())):
        monkeypatch.setenv(name, "5432" if name.endswith("_PORT") else "x")
    expected = {
        "run_launcher": ("dagster_aws.ecs", "EcsRunLauncher", EcsRunLauncher),
        "run_coordinator": ("dagster._core.run_coordinator", "QueuedRunCoordinator", QueuedRunCoordinator),
        "compute_logs": ("dagster_aws.s3.compute_log_manager", "S3ComputeLogManager", S3ComputeLogManager),
    }
    for key, (module, cls_name, cls) in expected.items():
        section = instance_config[key]
        assert (section["module"], section["class"]) == (module, cls_name)
        result = process_config(resolve_to_config_type(cls.config_type()), section["config"])
        assert result.success, f"{key}: {result.errors}"


def test_each_run_is_a_task_of_the_terraform_run_task_definition(instance_config):
    launcher = instance_config["run_launcher"]["config"]
    assert launcher["task_definition"] == {"env": "DAGSTER_RUN_TASK_DEFINITION"}
    orch = load_module(MODULES / "orchestration")
    # Run tasks look the definition up by family; the services that launch runs
    # get the current revision's ARN (so a new revision redeploys them).
    assert orch.locals["dagster_environment"]["DAGSTER_RUN_TASK_DEFINITION"] == "${local.run_task_family}"
    assert orch.of_type("aws_ecs_task_definition")["run"]["family"] == "${local.run_task_family}"
    assert "DAGSTER_RUN_TASK_DEFINITION = aws_ecs_task_definition.run.arn" in orch.locals["service_environment"]
    for name in ("webserver", "daemon", "code_location"):
        assert "environment = local.service_environment" in orch.locals["containers"][name]
    assert "environment = local.run_environment" in orch.locals["run_container"]
    assert launcher["container_name"] == "run"
    assert launcher["secrets_tag"] is None, "no Secrets Manager scans (would need ListSecrets)"


def test_one_lake_writer_at_a_time(instance_config):
    pools = instance_config["concurrency"]["pools"]
    # dagster.yaml cannot name individual pools; WRITER_POOL has no explicit limit
    # in the instance, so the default limit is the one that applies to it.
    assert pools["default_limit"] == 1, f"{settings.WRITER_POOL} must admit one writer at a time"
    # Blocked runs wait in the queue, not in a running (billed) Fargate task.
    assert pools["granularity"] == "run"
    assert instance_config["concurrency"]["runs"]["max_concurrent_runs"] >= 1
    assert "max_concurrent_runs" not in instance_config["run_coordinator"].get("config", {})


def test_every_variable_the_yaml_reads_is_set_by_terraform():
    orch = load_module(MODULES / "orchestration")
    provided = set(orch.locals["dagster_environment"]) | {s["name"] for s in orch.locals["container_secrets"]}
    needed = env_refs(yaml.safe_load(AWS_YAML.read_text())) | env_refs(yaml.safe_load(WORKSPACE.read_text()))
    assert needed, "expected env-var driven configuration"
    assert needed <= provided, f"set these on the ECS tasks: {sorted(needed - provided)}"


def test_workspace_points_at_the_code_location_service():
    workspace = yaml.safe_load(WORKSPACE.read_text())
    (entry,) = workspace["load_from"]
    server = entry["grpc_server"]
    orch = load_module(MODULES / "orchestration")
    assert server["location_name"] == orch.variables["code_location_name"]["default"]
    env = orch.locals["dagster_environment"]
    assert env[server["host"]["env"]] == "${local.code_location_host}"
    assert env[server["port"]["env"]] == "${tostring(local.grpc_port)}"
    assert re.search(r'"--location-name", var\.code_location_name', orch.locals["containers"]["code_location"])


def test_dockerfile_installs_the_aws_instance_config():
    dockerfile = (TERRAFORM / "image" / "Dockerfile").read_text()
    assert "COPY dagster_home/dagster.aws.yaml /opt/dagster/dagster_home/dagster.yaml" in dockerfile
    assert "COPY terraform/image/workspace.yaml" in dockerfile
    orch = load_module(MODULES / "orchestration")
    assert orch.locals["dagster_home"] == "/opt/dagster/dagster_home"
    assert os.path.basename(orch.locals["workspace_file"]) == "workspace.yaml"
