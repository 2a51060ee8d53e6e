"""Quiet hours and per-GB billing (issue 18): Spot runs, a pausing database, the UI's
schedule, the idle sleep of the daemon, interface endpoints instead of NAT hours, and
`make ui-wake`. Static: HCL parsed with python-hcl2, plus a mocked apply when an AWS
provider mirror is on disk."""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from tests.support.terraform import ENV_NAMES, ENVS, MODULES, REPO, TERRAFORM, env_root, env_scope, load_module, ref_name, tfvars

import test_tf_mocked_apply as mocked

ORCH = MODULES / "orchestration"
NET = MODULES / "network"
MON = MODULES / "monitoring"
LAKEHOUSE = MODULES / "lakehouse"
AWS_YAML = REPO / "dagster_home" / "dagster.aws.yaml"
CRON = re.compile(r"cron\((\S+ ){5}\S+\)")


def orch():
    return load_module(ORCH)


def _infra():
    spec = importlib.util.spec_from_file_location("terraform_infra", TERRAFORM / "infra.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- 1. Runs on Spot -----------------------------------------------------------------


def test_runs_use_the_spot_strategy_terraform_declares_and_services_stay_on_fargate():
    launcher = yaml.safe_load(AWS_YAML.read_text())["run_launcher"]["config"]
    strategy = launcher["run_task_kwargs"]["capacityProviderStrategy"]
    assert strategy == orch().locals["run_capacity_provider_strategy"]
    by_provider = {s["capacityProvider"]: s for s in strategy}
    assert by_provider["FARGATE_SPOT"]["weight"] > 0 and by_provider["FARGATE"]["weight"] == 0
    providers = orch().of_type("aws_ecs_cluster_capacity_providers")["this"]
    assert set(by_provider) <= set(providers["capacity_providers"])
    assert providers["default_capacity_provider_strategy"][0]["capacity_provider"] == "FARGATE"
    for name, svc in orch().of_type("aws_ecs_service").items():
        assert svc["launch_type"] == "FARGATE" and "capacity_provider_strategy" not in svc, name


def test_spot_reclaims_are_recovered_by_run_monitoring_and_retries():
    config = yaml.safe_load(AWS_YAML.read_text())
    assert config["run_monitoring"]["enabled"] is True
    assert config["run_retries"]["enabled"] is True and config["run_retries"]["max_retries"] >= 1
    # The launcher needs a strategy instead of the launch type it copies from the daemon.
    assert config["run_launcher"]["config"]["use_current_ecs_task_config"] is True


def test_postgres_storage_names_the_installed_driver():
    import importlib.util as iu

    scheme = yaml.safe_load(AWS_YAML.read_text())["storage"]["postgres"]["postgres_db"]["scheme"]
    driver = scheme.split("+")[1]
    assert iu.find_spec(driver) is not None, f"{driver} is not installed: the services could not connect"


# --- 2. The database pauses ---------------------------------------------------------


@pytest.mark.parametrize("env", ENV_NAMES)
def test_each_env_runs_aurora_serverless_that_can_pause(env):
    scope = env_scope(env).child("orchestration")
    assert scope.var("db_engine") == "aurora-serverless-v2"
    assert scope.var("db_min_capacity_acu") == 0
    assert 300 <= scope.var("db_seconds_until_auto_pause") <= 86400


def test_aurora_cluster_pauses_at_zero_acus_and_is_private_encrypted_and_tls_only():
    cluster = orch().of_type("aws_rds_cluster")["dagster"]
    assert cluster["count"] == "${local.aurora ? 1 : 0}"
    assert cluster["engine"] == "aurora-postgresql" and cluster["engine_mode"] == "provisioned"
    scaling = cluster["serverlessv2_scaling_configuration"][0]
    assert scaling["min_capacity"] == "${var.db_min_capacity_acu}"
    assert scaling["seconds_until_auto_pause"] == "${var.db_min_capacity_acu == 0 ? var.db_seconds_until_auto_pause : null}"
    assert cluster["storage_encrypted"] is True and cluster["kms_key_id"] == "${var.platform_kms_key_arn}"
    assert cluster["master_password"] == "${aws_secretsmanager_secret_version.db_password.secret_string}"
    assert cluster["deletion_protection"] == "${var.db_deletion_protection}"
    assert cluster["vpc_security_group_ids"] == ["${aws_security_group.db.id}"]
    group = orch().of_type("aws_rds_cluster_parameter_group")["dagster"]
    assert {"name": "rds.force_ssl", "value": "1"} in group["parameter"]
    assert cluster["db_cluster_parameter_group_name"] == "${aws_rds_cluster_parameter_group.dagster[0].name}"
    instance = orch().of_type("aws_rds_cluster_instance")["dagster"]
    assert instance["instance_class"] == "db.serverless" and instance["publicly_accessible"] is False
    # Readers in promotion tiers 0-1 pause and resume with the writer.
    assert instance["promotion_tier"] <= 1
    assert instance["count"] == "${local.aurora ? (var.db_multi_az ? 2 : 1) : 0}"
    # Exactly one of the two engines exists.
    assert orch().of_type("aws_db_instance")["dagster"]["count"] == "${local.aurora ? 0 : 1}"
    validation = orch().variables["db_seconds_until_auto_pause"]["validation"][0]["condition"]
    assert "300" in validation and "86400" in validation


def test_every_task_connects_to_whichever_engine_exists():
    env = orch().locals["dagster_environment"]
    assert env["DAGSTER_PG_HOST"] == "${local.db_address}"
    assert orch().locals["db_address"] == (
        "${local.aurora ? aws_rds_cluster.dagster[0].endpoint : aws_db_instance.dagster[0].address}"
    )


def test_database_alarms_follow_the_engine():
    alarms = load_module(MON).of_type("aws_cloudwatch_metric_alarm")
    assert alarms["rds_free_storage"]["count"] == '${var.db_engine == "rds-postgres" ? 1 : 0}'
    aurora = alarms["aurora_capacity_at_max"]
    assert aurora["count"] == '${var.db_engine == "aurora-serverless-v2" ? 1 : 0}'
    assert aurora["dimensions"] == {"DBClusterIdentifier": "${var.db_instance_identifier}"}
    assert load_module(LAKEHOUSE).modules["monitoring"]["db_engine"] == "${var.db_engine}"


# --- 3. The UI sleeps; the daemon sleeps when idle -------------------------------------


@pytest.mark.parametrize("env", ENV_NAMES)
def test_the_ui_sleeps_off_hours_in_each_env(env):
    values = tfvars(env)
    assert CRON.fullmatch(values["webserver_wake_cron"]) and CRON.fullmatch(values["webserver_sleep_cron"])
    assert values["schedule_timezone"]
    assert values["dagster_idle_sleep_minutes"] >= 15


def test_scheduled_actions_take_only_the_webserver_to_zero_and_back():
    actions = orch().of_type("aws_appautoscaling_scheduled_action")
    assert set(actions) == {"webserver_wake", "webserver_sleep"}
    for name, action in actions.items():
        assert ref_name(action["resource_id"]) == 'aws_appautoscaling_target.service["webserver"].resource_id', name
        assert action["timezone"] == "${var.schedule_timezone}"
    assert actions["webserver_sleep"]["schedule"] == "${var.webserver_sleep_cron}"
    assert actions["webserver_sleep"]["scalable_target_action"][0] == {"min_capacity": 0, "max_capacity": 0}
    assert actions["webserver_wake"]["schedule"] == "${var.webserver_wake_cron}"
    assert actions["webserver_wake"]["scalable_target_action"][0]["min_capacity"] == "${local.desired_count}"
    target = orch().of_type("aws_appautoscaling_target")["service"]
    assert target["scalable_dimension"] == "ecs:service:DesiredCount"
    assert target["resource_id"] == "service/${aws_ecs_cluster.this.name}/${each.value}"
    assert target["max_capacity"] == "${local.desired_count}", "no tasks before an image exists"


def test_idle_sleep_stops_daemon_and_code_location_and_activity_wakes_them():
    local = orch().locals
    assert local["sleeping_services"] == '${local.idle_sleep ? ["daemon", "code_location"] : []}'
    metrics = local["activity_metrics"]
    assert metrics["records"]["dimensions"] == {"StreamName": "${var.stream_name}"}
    assert metrics["records"]["metric_name"] == "IncomingRecords"
    assert metrics["daemon"]["dimensions"]["ServiceName"] == "${var.service_names.daemon}"
    assert metrics["code_location"]["dimensions"]["ServiceName"] == "${var.service_names.code_location}"
    # Activity = records + tasks other than the two that sleep (else they would keep themselves awake).
    assert local["activity_expression"] == "FILL(records, 0) + FILL(tasks, 0) - FILL(daemon, 0) - FILL(code_location, 0)"
    alarms = orch().of_type("aws_cloudwatch_metric_alarm")
    wake, idle = alarms["pipeline_active"], alarms["pipeline_idle"]
    assert (wake["comparison_operator"], wake["threshold"]) == ("GreaterThanThreshold", 0)
    assert (idle["comparison_operator"], idle["threshold"]) == ("LessThanOrEqualToThreshold", 0)
    assert idle["treat_missing_data"] == "breaching" and wake["treat_missing_data"] == "notBreaching"
    assert "aws_appautoscaling_policy.wake[s].arn" in wake["alarm_actions"]
    assert "aws_appautoscaling_policy.sleep[s].arn" in idle["alarm_actions"]
    policies = orch().of_type("aws_appautoscaling_policy")
    for name, capacity in (("wake", 1), ("sleep", 0)):
        config = policies[name]["step_scaling_policy_configuration"][0]
        assert config["adjustment_type"] == "ExactCapacity"
        assert config["step_adjustment"][0]["scaling_adjustment"] == capacity
    # A daemon that may sleep still pages when records arrive and it does not run.
    stuck = alarms["asleep_while_records_arrive"]
    assert stuck["alarm_actions"] == ["${var.alert_topic_arn}"]
    assert "FILL(records, 0) > 0 AND FILL(daemon, 0) < 1" in stuck["metric_query"][0]["expression"]


def test_services_that_sleep_by_design_get_no_not_running_alarm():
    lakehouse = load_module(LAKEHOUSE)
    assert lakehouse.modules["monitoring"]["ecs_scaled_to_zero_service_names"] == "${local.ecs_scaled_to_zero}"
    scaled = lakehouse.locals["ecs_scaled_to_zero"]
    assert "local.ecs_service_names.webserver" in scaled and "local.ecs_service_names.daemon" in scaled
    alarm = load_module(MON).of_type("aws_cloudwatch_metric_alarm")["ecs_service_not_running"]
    assert alarm["for_each"] == "${setsubtract(toset(var.ecs_service_names), var.ecs_scaled_to_zero_service_names)}"
    for name in ("webserver_sleep_cron", "dagster_idle_sleep_minutes"):
        assert lakehouse.modules["orchestration"][name] == f"${{var.{name}}}"


def test_ui_wake_updates_the_webserver_service_of_the_env():
    infra = _infra()
    assert infra.ui_wake_command("lakehouse-prod-dagster", "dagster-webserver", "eu-west-1")[:10] == [
        "aws", "ecs", "update-service", "--region", "eu-west-1", "--cluster", "lakehouse-prod-dagster",
        "--service", "dagster-webserver", "--desired-count",
    ]
    assert infra.ui_wake_command("c", "s", "r")[10] == "1"
    for env in ENV_NAMES:
        assert infra.tfvars_region(env) == tfvars(env)["region"]
        # infra.py reads these outputs of the env root.
        outputs = env_root(env).outputs
        assert outputs["ecs_cluster_name"]["value"] == "${module.lakehouse.ecs_cluster_name}"
        assert outputs["ecs_service_names"]["value"] == "${module.lakehouse.ecs_service_names}"
    scope = env_scope("prod")
    assert scope.local("cluster_name") == f"{scope.var('project')}-prod-dagster"
    assert scope.local("ecs_service_names")["webserver"] == "dagster-webserver"


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_make_ui_wake_runs_infra_py_for_the_env(env):
    make = shutil.which("make")
    if make is None:
        pytest.skip("no make")
    out = subprocess.run([make, "-n", "ui-wake", f"ENV={env}"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert re.search(rf"terraform/infra\.py ui-wake {env}$", out.stdout, re.M), out.stdout
    mk = (TERRAFORM / "infra.mk").read_text()
    assert re.search(r"^ui-wake:.*## ", mk, re.M), "ui-wake must be documented (`ui-wake: ## ...`)"


# --- 4. Interface endpoints instead of NAT hours -----------------------------------------

# boto3 service name -> VPC endpoint service (S3 is the gateway endpoint).
ENDPOINT_OF = {"ecs": "ecs", "ec2": "ec2", "logs": "logs", "secretsmanager": "secretsmanager", "sns": "sns",
               "sts": "sts", "kinesis": "kinesis-streams", "firehose": "firehose", "ecr": "ecr.api"}


def _boto3_services(paths: list[Path]) -> set[str]:
    found = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in {"client", "resource"}:
                if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                    found.add(node.args[0].value)
    return found


def test_every_aws_api_the_tasks_call_has_an_endpoint():
    import dagster_aws.ecs.launcher as launcher

    services = set(load_module(NET).locals["interface_endpoint_services"])
    code = [p for p in (REPO / "lake_pipeline").rglob("*.py") if "devtools" not in p.parts]
    used = _boto3_services(code) | _boto3_services([Path(launcher.__file__)])
    assert {"sns", "ecs", "ec2", "logs", "secretsmanager"} <= used  # the scan sees the calls
    for service in used - {"s3"}:
        assert ENDPOINT_OF.get(service) in services, f"tasks call {service}: add its interface endpoint"
    # Image pulls and the list.
    assert {"ecr.api", "ecr.dkr", "logs", "secretsmanager", "sts", "kinesis-streams", "firehose", "sns"} <= services
    gateway = load_module(NET).of_type("aws_vpc_endpoint")["s3"]
    assert gateway["vpc_endpoint_type"] == "Gateway"


def test_interface_endpoints_are_private_dns_in_the_chosen_azs_behind_an_https_only_group():
    net = load_module(NET)
    endpoint = net.of_type("aws_vpc_endpoint")["interface"]
    assert endpoint["vpc_endpoint_type"] == "Interface" and endpoint["private_dns_enabled"] is True
    assert endpoint["subnet_ids"] == "${local.endpoint_subnet_ids}"
    assert net.locals["endpoint_subnet_ids"] == "${slice(aws_subnet.private[*].id, 0, var.interface_endpoint_az_count)}"
    rule = net.of_type("aws_vpc_security_group_ingress_rule")["endpoints_from_vpc"]
    assert (rule["from_port"], rule["to_port"], rule["cidr_ipv4"]) == (443, 443, "${aws_vpc.this.cidr_block}")


def test_nat_gateways_none_one_or_per_az_and_none_needs_endpoints():
    net = load_module(NET)
    assert net.locals["nat_count"] == "${{none = 0, one = 1, per_az = local.az_count}[var.nat_gateways]}"
    route = net.of_type("aws_route")["private_nat"]
    assert route["count"] == "${local.nat_count > 0 ? local.az_count : 0}"
    conditions = " ".join(v["condition"] for v in net.variables["interface_endpoint_az_count"]["validation"])
    assert 'var.nat_gateways != "none" || var.interface_endpoint_az_count > 0' in conditions
    dev, prod = env_scope("dev"), env_scope("prod")
    assert dev.var("nat_gateways") == "none" and dev.var("interface_endpoint_az_count") >= 1
    assert prod.var("nat_gateways") in {"one", "none"}
    # The module default stays the highly available one.
    assert load_module(LAKEHOUSE).variables["nat_gateways"]["default"] == "per_az"


# --- 7. Everything applies (mocked provider) ------------------------------------------

@pytest.mark.skipif(mocked.TERRAFORM_BIN is None, reason="no terraform binary on PATH")
@pytest.mark.skipif(not (mocked.MIRROR / "registry.terraform.io" / "hashicorp" / "aws").is_dir(),
                    reason=f"no AWS provider mirror at {mocked.MIRROR}")
@pytest.mark.terraform
@pytest.mark.parametrize("env", ENV_NAMES)
def test_env_applies_against_mocked_aws_with_scaling_policies(env, tmp_path):
    work = tmp_path / "terraform"
    shutil.copytree(TERRAFORM, work, ignore=shutil.ignore_patterns(".terraform", ".cache", "*.tfplan", "*.tfstate*"))
    root = work / "envs" / env
    init = mocked._run(["init", "-backend=false", "-input=false", "-no-color", f"-plugin-dir={mocked.MIRROR}"], root)
    assert init.returncode == 0, init.stdout + init.stderr
    (root / "tests").mkdir()
    (root / "tests" / "mocked.tftest.hcl").write_text(mocked.mocked_test_file(env))
    shutil.copy(ENVS / f"{env}.tfvars", root / "terraform.tfvars")
    proc = subprocess.run([mocked.TERRAFORM_BIN, "test", "-no-color"], cwd=root, capture_output=True, text=True,
                          env=dict(os.environ, TF_CLI_CONFIG_FILE=os.devnull, CHECKPOINT_DISABLE="1"), timeout=300)
    assert proc.returncode == 0 and "1 passed, 0 failed" in proc.stdout, proc.stdout[-4000:] + proc.stderr[-2000:]
