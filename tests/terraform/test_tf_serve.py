"""`lake serve` on ECS Fargate (terraform/modules/serving): behind the existing internal ALB on the
API's own paths, autoscaled on request count, a spool on encrypted EFS, a least-privilege role,
and an environment of real lake_pipeline.settings fields."""

from __future__ import annotations

import dataclasses

import pytest
from tests.support.terraform import MODULES, load_module, ref_name

from lake_pipeline import settings
from lake_pipeline.serve.app import create_app

SERVING = MODULES / "serving"


def serving():
    return load_module(SERVING)


def _statements(module) -> dict[str, dict]:
    doc = module.data_of_type("aws_iam_policy_document")["serve"]
    return {s["sid"]: s for s in doc["statement"]}


def test_the_stack_runs_it_on_the_dagster_cluster_behind_the_existing_alb():
    call = load_module(MODULES / "lakehouse").modules["serving"]
    assert call["source"] == "../serving"
    assert call["cluster_name"] == "${module.orchestration.cluster_name}"
    assert call["alb_listener_arn"] == "${module.orchestration.alb.listener_arn}"
    assert "alb" in load_module(MODULES / "orchestration").outputs
    service = serving().of_type("aws_ecs_service")["serve"]
    assert service["launch_type"] == "FARGATE" and service["network_configuration"][0]["assign_public_ip"] is False
    assert ref_name(service["load_balancer"][0]["target_group_arn"]) == "aws_lb_target_group.serve.arn"
    assert serving().of_type("aws_lb_target_group")["serve"]["health_check"][0]["path"] == "/healthz"


def test_the_listener_rule_routes_every_api_path_and_nothing_of_the_ui(tmp_path):
    patterns = serving().locals["path_patterns"]
    assert len(patterns) <= 5  # an ALB path_pattern condition takes at most five values
    app = create_app(settings.load_settings(serve_spool_dir=str(tmp_path / "spool")))
    for route in app.routes:
        assert any(p == route.path or (p.endswith("*") and route.path.startswith(p[:-1])) for p in patterns), route.path
    rule = serving().of_type("aws_lb_listener_rule")["serve"]
    assert rule["condition"][0]["path_pattern"][0]["values"] == "${local.path_patterns}"
    assert "/" not in patterns and "/*" not in patterns  # the Dagster UI keeps the rest


def test_autoscaling_tracks_alb_request_count_per_task():
    policy = serving().of_type("aws_appautoscaling_policy")["requests"]
    config = policy["target_tracking_scaling_policy_configuration"][0]
    metric = config["predefined_metric_specification"][0]
    assert metric["predefined_metric_type"] == "ALBRequestCountPerTarget"
    assert "aws_lb_target_group.serve.arn_suffix" in metric["resource_label"]
    target = serving().of_type("aws_appautoscaling_target")["serve"]
    assert target["min_capacity"] == "${local.desired_count}"
    assert serving().variables["min_tasks"]["default"] >= 2  # one task per AZ


def test_environment_keys_are_settings_fields_and_posts_go_to_kinesis():
    text = str(serving().locals["environment"])  # merge({LAKE_... = ...}, var.lake_settings), as HCL text
    fields = {settings.Settings.env_var(f.name) for f in dataclasses.fields(settings.Settings)}
    keys = [k for k in fields if k in text]
    assert {"LAKE_URI", "LAKE_RAW_URI", "LAKE_SERVE_STREAM", "LAKE_SERVE_SPOOL_DIR"} <= set(keys)
    for word in text.replace("{", " ").replace(",", " ").split():
        name = word.strip("'\":")
        if name.startswith("LAKE_"):
            assert name in fields, name
    assert "LAKE_SERVE_STREAM" in text and "var.stream_name" in text


def test_spool_on_encrypted_efs_mounted_over_tls_through_one_access_point():
    efs = serving().of_type("aws_efs_file_system")["spool"]
    assert efs["encrypted"] is True and efs["kms_key_id"] == "${var.platform_kms_key_arn}"
    volume = serving().of_type("aws_ecs_task_definition")["serve"]["volume"][0]["efs_volume_configuration"][0]
    assert volume["transit_encryption"] == "ENABLED"
    assert volume["authorization_config"][0]["iam"] == "ENABLED"
    assert ref_name(volume["authorization_config"][0]["access_point_id"]) == "aws_efs_access_point.spool.id"


@pytest.mark.parametrize("sid", ["KeepUserEvents"])
def test_the_task_writes_only_its_own_table_and_puts_only_to_the_stream(sid):
    statements = _statements(serving())
    writes = [s for s in statements.values() if any(a in ("s3:PutObject", "s3:DeleteObject") for a in s["actions"])]
    assert [s["sid"] for s in writes] == [sid]
    assert writes[0]["resources"] == [f"${{var.lake_bucket_arn}}/${{local.lake_prefix}}/{settings.USER_EVENTS_TABLE}/*"]
    assert statements["PutPostedEvents"]["resources"] == ["${local.stream_arn}"]
    assert not any("*" == r for s in statements.values() for r in s["resources"])
