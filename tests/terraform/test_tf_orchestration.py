"""Dagster on ECS: cluster, services, RDS, internal-only ALB, network exposure, task environment."""

from __future__ import annotations

import dataclasses
import re

import pytest
from tests.support.terraform import ENV_NAMES, MODULES, all_modules, env_scope, load_module, ref_name, resolve, tfvars

from lake_pipeline import settings

ORCH = MODULES / "orchestration"
OPEN = {"0.0.0.0/0", "::/0"}


def orch():
    return load_module(ORCH)


def test_cluster_has_container_insights():
    cluster = orch().of_type("aws_ecs_cluster")["this"]
    assert {"name": "containerInsights", "value": "enabled"} in cluster["setting"]


def test_three_long_running_services_on_fargate_in_private_subnets():
    services = orch().of_type("aws_ecs_service")
    assert set(services) == {"webserver", "daemon", "code_location"}
    for name, svc in services.items():
        assert svc["launch_type"] == "FARGATE", name
        net = svc["network_configuration"][0]
        assert net["assign_public_ip"] is False, name
        assert net["subnets"] == "${var.private_subnet_ids}", name
        assert ref_name(svc["task_definition"]) == f"aws_ecs_task_definition.{name}.arn"
    # Two daemons at once is unsupported: stop the old task before starting a new one.
    assert services["daemon"]["deployment_maximum_percent"] == 100
    assert ref_name(services["webserver"]["load_balancer"][0]["target_group_arn"]).startswith("aws_lb_target_group.")
    assert services["code_location"]["service_registries"]


def test_runs_are_tasks_not_a_service():
    tasks = orch().of_type("aws_ecs_task_definition")
    assert set(tasks) == {"webserver", "daemon", "code_location", "run"}
    assert tasks["run"]["family"] == "${local.run_task_family}"
    assert ref_name(tasks["run"]["task_role_arn"]) == "aws_iam_role.run.arn"
    for name, td in tasks.items():
        assert td["requires_compatibilities"] == ["FARGATE"], name
        assert ref_name(td["execution_role_arn"]) == "aws_iam_role.execution.arn"
        assert td["task_role_arn"] != td["execution_role_arn"]


def test_alb_is_internal_only():
    lbs = orch().of_type("aws_lb")
    assert lbs, "the webserver sits behind an ALB"
    for name, lb in lbs.items():
        assert lb["internal"] is True, name
        assert lb["subnets"] == "${var.private_subnet_ids}"
        assert lb["drop_invalid_header_fields"] is True


def test_rds_is_private_encrypted_and_protected_in_prod():
    db = orch().of_type("aws_db_instance")["dagster"]
    assert db["engine"] == "postgres"
    assert db["publicly_accessible"] is False
    assert db["storage_encrypted"] is True
    assert db["kms_key_id"] == "${var.platform_kms_key_arn}"
    assert db["multi_az"] == "${var.db_multi_az}"
    assert db["deletion_protection"] == "${var.db_deletion_protection}"
    assert db["password"] == "${aws_secretsmanager_secret_version.db_password.secret_string}"
    prod = env_scope("prod").child("orchestration")
    assert prod.var("db_deletion_protection") is True
    assert prod.var("db_multi_az") is True
    assert prod.var("db_skip_final_snapshot") is False


def test_db_password_lives_in_secrets_manager_and_reaches_tasks_as_a_secret():
    secret = orch().of_type("aws_secretsmanager_secret")["db_password"]
    assert secret["kms_key_id"] == "${var.platform_kms_key_arn}"
    secrets = orch().locals["container_secrets"]
    assert secrets == [{"name": "DAGSTER_PG_PASSWORD", "valueFrom": "${aws_secretsmanager_secret.db_password.arn}"}]
    env_names = set(orch().locals["dagster_environment"]) | set(orch().locals["lake_environment_base"])
    assert not any("PASSWORD" in n or "SECRET" in n for n in env_names), "secrets never go into plain environment"


def _ingress_cidrs():
    """(where, cidr) of every ingress rule in terraform/modules."""
    for mod in all_modules().values():
        for name, sg in mod.of_type("aws_security_group").items():
            for rule in sg.get("ingress", []):
                for cidr in rule.get("cidr_blocks", []) + rule.get("ipv6_cidr_blocks", []):
                    yield f"{mod.name}.aws_security_group.{name}", cidr
        for name, rule in mod.of_type("aws_vpc_security_group_ingress_rule").items():
            for key in ("cidr_ipv4", "cidr_ipv6"):
                if key in rule:
                    yield f"{mod.name}.aws_vpc_security_group_ingress_rule.{name}", rule[key]
        for name, rule in mod.of_type("aws_security_group_rule").items():
            if rule.get("type") == "ingress":
                for cidr in rule.get("cidr_blocks", []) + rule.get("ipv6_cidr_blocks", []):
                    yield f"{mod.name}.aws_security_group_rule.{name}", cidr


def test_nothing_accepts_traffic_from_the_internet():
    rules = list(_ingress_cidrs())
    assert rules, "expected at least the ALB's ingress rule"
    for where, cidr in rules:
        assert cidr not in OPEN, where
    # The ALB's sources are the allowed CIDRs (default: the VPC), and 0.0.0.0/0 is rejected.
    alb = orch().of_type("aws_vpc_security_group_ingress_rule")["alb_from_clients"]
    assert alb["cidr_ipv4"] == "${each.value.cidr}"
    validation = orch().variables["webserver_allowed_cidrs"]["validation"][0]["condition"]
    assert '"0.0.0.0/0"' in validation
    for env in ENV_NAMES:
        assert not OPEN & set(tfvars(env).get("webserver_allowed_cidrs", []))


def test_every_component_has_its_own_security_group():
    sgs = orch().of_type("aws_security_group")
    assert set(sgs) == {"alb", "webserver", "daemon", "code_location", "db"}
    db_ingress = orch().of_type("aws_vpc_security_group_ingress_rule")["db_from_clients"]
    assert db_ingress["referenced_security_group_id"] == "${each.value}"
    assert "cidr_ipv4" not in db_ingress


@pytest.mark.parametrize("env", ENV_NAMES)
def test_lake_environment_is_settings_fields_pointing_at_this_env(env):
    base = orch().locals["lake_environment_base"]
    assert orch().locals["lake_environment"] == "${merge(local.lake_environment_base, var.lake_settings)}"
    known = {settings.Settings.env_var(f.name) for f in dataclasses.fields(settings.Settings)}
    assert set(base) <= known, set(base) - known
    var = {f.name: settings.Settings.env_var(f.name) for f in dataclasses.fields(settings.Settings)}
    required = {"raw_uri", "lake_uri", "stream_name", "delivery_stream_name", "s3_locking", "alert_destination"}
    assert {var[f] for f in required} <= set(base)
    assert base[var["s3_locking"]] in {"conditional_put", "dynamodb"}
    assert base[var["alert_destination"]] == "sns:${var.alert_topic_arn}"

    scope = env_scope(env).child("orchestration")
    project = env_scope(env).var("project")
    buckets = settings.bucket_names(env, project)
    streams = settings.stream_names(env, project)
    assert resolve(base[var["raw_uri"]], scope) == f"s3://{buckets['raw']}/{settings.FIREHOSE_RAW_PREFIX.rstrip('/')}"
    assert resolve(base[var["lake_uri"]], scope) == f"s3://{buckets['lake']}/lake"
    assert resolve(base[var["stream_name"]], scope) == streams["kinesis"]
    assert resolve(base[var["delivery_stream_name"]], scope) == streams["firehose"]
    for key in tfvars(env).get("lake_settings", {}):
        assert key in known, f"{env}.tfvars lake_settings: {key} is not a Settings field"


def test_run_container_is_the_one_the_launcher_overrides():
    run = orch().locals["run_container"]
    assert re.search(r'\bname = "run"', run)
    assert "command" not in run, "the EcsRunLauncher supplies the run command"


def test_services_stay_at_zero_tasks_until_an_image_exists():
    assert orch().locals["services_enabled"] == '${var.image_tag != ""}'
    for svc in orch().of_type("aws_ecs_service").values():
        assert svc["desired_count"] == "${local.desired_count}"
