"""Least privilege: one role per component, and every AWS call the pipeline makes is granted.

The pipeline's AWS calls are found by statically scanning lake_pipeline/**/*.py
with `ast`: boto3 clients created for a literal service name, then calls of that
service's operations (snake_case names from botocore's own service models, so
nothing is downloaded) and `get_paginator("<operation>")`. Each call maps to an
IAM action (explicit table for S3, whose IAM names differ from its API names;
"<service>:<Operation>" otherwise) and must be granted to the role that runs it.
The Delta Lake writer (delta-rs/object_store) makes its calls from Rust, so its
needs are a fixed baseline. The scan tolerates a package that is still being
written: few calls found today just means the baseline carries the test.
"""

from __future__ import annotations

import ast
import fnmatch
import functools
import textwrap
from pathlib import Path

import pytest
from tests.support.terraform import MODULES, REPO, expand_locals, load_module, policy_statements, ref_name, role_statements

ORCH = MODULES / "orchestration"
INGESTION = MODULES / "ingestion"

# S3 API operation (boto3 name) -> IAM actions.
S3_ACTIONS = {
    "list_objects_v2": {"s3:ListBucket"},
    "list_objects": {"s3:ListBucket"},
    "head_bucket": {"s3:ListBucket"},
    "get_object": {"s3:GetObject"},
    "head_object": {"s3:GetObject"},
    "download_file": {"s3:GetObject"},
    "download_fileobj": {"s3:GetObject"},
    "put_object": {"s3:PutObject"},
    "upload_file": {"s3:PutObject"},
    "upload_fileobj": {"s3:PutObject"},
    "create_multipart_upload": {"s3:PutObject"},
    "upload_part": {"s3:PutObject"},
    "complete_multipart_upload": {"s3:PutObject"},
    "abort_multipart_upload": {"s3:AbortMultipartUpload"},
    "copy_object": {"s3:GetObject", "s3:PutObject"},
    "delete_object": {"s3:DeleteObject"},
    "delete_objects": {"s3:DeleteObject"},
}
S3_TRANSFER_METHODS = {"download_file", "download_fileobj", "upload_file", "upload_fileobj"}
S3_READ = {"s3:ListBucket", "s3:GetObject"}

# What delta-rs needs on the lake regardless of what Python code shows.
DELTA_LAKE_BASELINE = {"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket"}

# Calls made by event producers (`lake produce`), granted by the producer policy.
PRODUCER_ACTIONS = {
    "kinesis:PutRecord",
    "kinesis:PutRecords",
    "kinesis:DescribeStream",
    "kinesis:DescribeStreamSummary",
    "kinesis:ListShards",
}
# Calls that only ever run against the local moto emulator (`make bootstrap`, DirectPut):
# in AWS, Terraform creates these resources, and Firehose rejects DirectPut on a
# delivery stream whose source is a Kinesis stream.
LOCAL_EMULATOR_ONLY = {
    "s3:CreateBucket",
    "s3:PutBucketVersioning",
    "s3:DeleteBucket",
    "kinesis:CreateStream",
    "kinesis:DeleteStream",
    "firehose:CreateDeliveryStream",
    "firehose:DeleteDeliveryStream",
    "firehose:DescribeDeliveryStream",
    "firehose:PutRecord",
    "firehose:PutRecordBatch",
    "sns:CreateTopic",
    "sns:Subscribe",
}
NO_PERMISSION_NEEDED = {"sts:GetCallerIdentity"}
NOT_API_CALLS = {"get_paginator", "get_waiter", "can_paginate", "close", "generate_presigned_url", "generate_presigned_post"}
RECEIVER_HINTS = ("client", "s3", "sns", "kinesis", "firehose", "boto")


# --- The scan -------------------------------------------------------------------------


@functools.cache
def _botocore():
    import botocore.session

    return botocore.session.get_session()


@functools.cache
def operations(service: str) -> dict[str, str]:
    """boto3 method name -> API operation name, from botocore's bundled models."""
    from botocore import xform_name

    model = _botocore().get_service_model(service)
    ops = {xform_name(op): op for op in model.operation_names}
    if service == "s3":
        ops.update({m: m for m in S3_TRANSFER_METHODS})
    return ops


@functools.cache
def known_services() -> frozenset[str]:
    return frozenset(_botocore().get_available_services())


def _iam_action(service: str, method: str) -> set[str]:
    if service == "s3":
        if method in S3_ACTIONS:
            return S3_ACTIONS[method]
        op = operations("s3")[method]
        return {f"s3:{op}"}  # exact when IAM and API agree; unmapped reads/writes fail the grant check
    model = _botocore().get_service_model(service)
    prefix = model.metadata.get("signingName") or model.endpoint_prefix
    return {f"{prefix}:{operations(service)[method]}"}


def _call_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return None


def scan_source(source: str) -> tuple[set[str], ast.Module]:
    """Services for which this source creates boto3 clients, and its syntax tree."""
    tree = ast.parse(source)
    services: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and (name := _call_name(node.func)) and ("client" in name or "resource" in name):
            literals = [a.value for a in node.args[:1] if isinstance(a, ast.Constant)]
            literals += [k.value.value for k in node.keywords if k.arg == "service_name" and isinstance(k.value, ast.Constant)]
            services.update(s for s in literals if isinstance(s, str) and s in known_services())
    return services, tree


def scan_package(root: Path) -> set[tuple[str, str]]:
    trees = {}
    services: set[str] = set()
    for path in sorted(root.rglob("*.py")):
        file_services, tree = scan_source(path.read_text(encoding="utf-8"))
        services |= file_services
        trees[path] = (file_services, tree)
    return calls_in(trees, services)


def calls_in(trees: dict, services: set[str]) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for file_services, tree in trees.values():
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            method = node.func.attr
            receiver = ast.unparse(node.func.value).lower()
            for service in services:
                ops = operations(service)
                if method == "get_paginator" and node.args and isinstance(node.args[0], ast.Constant):
                    if node.args[0].value in ops and (service in file_services or any(h in receiver for h in RECEIVER_HINTS)):
                        found.add((service, node.args[0].value))
                    continue
                if method in NOT_API_CALLS or method not in ops:
                    continue
                if service in file_services or any(h in receiver for h in RECEIVER_HINTS):
                    found.add((service, method))
    return found


def scan(source: str) -> set[tuple[str, str]]:
    """Scan a single source text (for the scanner's own tests)."""
    file_services, tree = scan_source(textwrap.dedent(source))
    return calls_in({"x": (file_services, tree)}, file_services)


# --- Grants ---------------------------------------------------------------------------


def grants(statements: list[dict], action: str, *resource_markers: str, module=None) -> bool:
    """Some Allow statement grants `action` on a resource mentioning every marker."""
    for st in statements:
        if st.get("effect", "Allow") != "Allow":
            continue
        if not any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in st.get("actions", [])):
            continue
        resources = st.get("resources", [])
        if isinstance(resources, str):
            resources = [resources]
        for r in resources:
            text = expand_locals(r, module) if module is not None else r
            if all(m in text for m in resource_markers):
                return True
    return False


def pipeline_actions() -> dict[str, set[tuple[str, str]]]:
    """IAM actions of lake_pipeline's AWS calls, by who must hold them."""
    by_role: dict[str, set[tuple[str, str]]] = {"run": set(), "producer": set()}
    for service, method in scan_package(REPO / "lake_pipeline"):
        for action in _iam_action(service, method):
            if action in LOCAL_EMULATOR_ONLY or action in NO_PERMISSION_NEEDED:
                continue
            if action in PRODUCER_ACTIONS:
                by_role["producer"].add((action, f"{service}.{method}"))
            else:
                by_role["run"].add((action, f"{service}.{method}"))
    return by_role


def test_scanner_finds_client_calls_paginators_and_ignores_other_objects():
    calls = scan(
        """
        import boto3, duckdb

        def s3_client():
            return boto3.session.Session().client("s3", region_name="eu-west-1")

        def list_keys(client, bucket):
            pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            return client.get_object(Bucket=bucket, Key="k")

        def alert(arn):
            boto3.client("sns").publish(TopicArn=arn, Message="x")

        def not_aws(con):
            con.query("select 1")   # duckdb, not an AWS call
        """
    )
    assert calls == {("s3", "list_objects_v2"), ("s3", "get_object"), ("sns", "publish")}
    assert _iam_action("s3", "list_objects_v2") == {"s3:ListBucket"}
    assert _iam_action("sns", "publish") == {"sns:Publish"}
    assert _iam_action("kinesis", "put_records") == {"kinesis:PutRecords"}
    assert _iam_action("firehose", "put_record_batch") == {"firehose:PutRecordBatch"}


def test_grant_check_can_fail():
    statements = [{"actions": ["s3:GetObject"], "resources": ["${var.lake_bucket_arn}/lake/*"]}]
    assert grants(statements, "s3:GetObject", "var.lake_bucket_arn")
    assert not grants(statements, "s3:PutObject", "var.lake_bucket_arn")
    assert not grants(statements, "s3:GetObject", "var.raw_bucket_arn")
    assert not grants([{**statements[0], "effect": "Deny"}], "s3:GetObject", "var.lake_bucket_arn")


# --- Roles ----------------------------------------------------------------------------


def test_one_role_per_component_assumed_only_by_its_service():
    orch = load_module(ORCH)
    assert {"execution", "webserver", "daemon", "code_location", "run"} <= set(orch.of_type("aws_iam_role"))
    assert "firehose" in load_module(INGESTION).of_type("aws_iam_role")
    for mod in (orch, load_module(INGESTION)):
        attached = [ref_name(p["role"]).split(".")[1] for p in mod.of_type("aws_iam_role_policy").values()]
        assert len(attached) == len(set(attached)), f"{mod.name}: one inline policy per role"
        for name, role in mod.of_type("aws_iam_role").items():
            doc = ref_name(role["assume_role_policy"]).split(".")[2]
            for st in policy_statements(mod, doc):
                assert st["actions"] == ["sts:AssumeRole"]
                assert [p["type"] for p in st["principals"]] == ["Service"], f"{name} is assumable only by a service"
    task_roles = {"webserver", "daemon", "code_location", "run"}
    for name in task_roles | {"execution"}:
        assert role_statements(orch, name), f"role {name} has no policy"


@pytest.mark.parametrize("module_path", [ORCH, INGESTION, MODULES / "catalog", MODULES / "network"], ids=lambda p: p.name)
def test_no_wildcard_actions_in_component_policies(module_path):
    mod = load_module(module_path)
    for doc, body in mod.data_of_type("aws_iam_policy_document").items():
        for st in body.get("statement", []):
            if st.get("effect") == "Deny":
                continue
            for action in st.get("actions", []):
                assert action != "*" and not action.endswith(":*"), f"{module_path.name}.{doc}: {action}"
            if st.get("resources") == ["*"]:
                # Only actions that support no resource-level permissions may use "*".
                assert set(st["actions"]) <= {
                    "ecr:GetAuthorizationToken",
                    "ecs:DescribeTaskDefinition",
                    "ec2:DescribeNetworkInterfaces",
                }, f"{module_path.name}.{doc}: {st['actions']} on *"


def test_firehose_role_reads_the_stream_and_writes_only_raw_prefixes():
    mod = load_module(INGESTION)
    st = role_statements(mod, "firehose")
    for action in ("kinesis:GetRecords", "kinesis:GetShardIterator", "kinesis:DescribeStream", "kinesis:ListShards"):
        assert grants(st, action, "aws_kinesis_stream.events.arn")
    assert grants(st, "s3:PutObject", "var.raw_bucket_arn", "var.raw_prefix")
    assert grants(st, "s3:PutObject", "var.raw_bucket_arn", "var.error_prefix")
    assert not grants(st, "s3:PutObject", "var.raw_bucket_arn}/*"), "no write outside raw/ and errors/"
    assert grants(st, "kms:GenerateDataKey", "var.kms_key_arn")
    assert grants(st, "logs:PutLogEvents", "aws_cloudwatch_log_group.firehose.arn")
    assert not grants(st, "s3:DeleteObject", "var.raw_bucket_arn")


def test_daemon_launches_only_the_run_task_definition_and_passes_only_its_roles():
    orch = load_module(ORCH)
    st = role_statements(orch, "daemon")
    assert grants(st, "ecs:RunTask", "task-definition/${var.name}-run:*", module=orch)
    for action in ("ecs:DescribeTasks", "ecs:StopTask", "ecs:TagResource"):
        assert grants(st, action, "task/${var.cluster_name}/*", module=orch), action
    pass_role = [s for s in st if "iam:PassRole" in s["actions"]]
    assert len(pass_role) == 1
    assert sorted(pass_role[0]["resources"]) == ["${aws_iam_role.execution.arn}", "${aws_iam_role.run.arn}"]
    assert pass_role[0]["condition"][0]["values"] == ["ecs-tasks.amazonaws.com"]
    assert not grants(st, "ecs:RegisterTaskDefinition", ""), "runs use the Terraform-managed task definition"
    assert not grants(st, "s3:PutObject", ""), "the daemon writes no data"


def test_only_the_execution_role_reads_the_db_secret():
    orch = load_module(ORCH)
    assert grants(role_statements(orch, "execution"), "secretsmanager:GetSecretValue", "aws_secretsmanager_secret.db_password.arn")
    for role in ("webserver", "daemon", "code_location", "run"):
        assert not grants(role_statements(orch, role), "secretsmanager:GetSecretValue", ""), role


def test_producer_policy_allows_putting_records_on_the_stream():
    mod = load_module(INGESTION)
    producer = mod.of_type("aws_iam_policy")["producer"]
    st = policy_statements(mod, ref_name(producer["policy"]).split(".")[2])
    for action in ("kinesis:PutRecords", "kinesis:PutRecord"):
        assert grants(st, action, "aws_kinesis_stream.events.arn")
    assert grants(st, "kms:GenerateDataKey", "var.kms_key_arn")
    for action, where in pipeline_actions()["producer"]:
        assert grants(st, action, "aws_kinesis_stream.events.arn"), f"{where} needs {action} in the producer policy"


def test_run_role_grants_the_delta_lake_baseline_on_the_lake_only():
    orch = load_module(ORCH)
    st = role_statements(orch, "run")
    for action in DELTA_LAKE_BASELINE - {"s3:ListBucket"}:
        assert grants(st, action, "var.lake_bucket_arn", "var.lake_prefix", module=orch), action
    assert grants(st, "s3:ListBucket", "var.lake_bucket_arn", module=orch)
    for action in ("s3:PutObject", "s3:DeleteObject"):
        assert not grants(st, action, "var.raw_bucket_arn", module=orch), f"raw objects are immutable: no {action}"
    assert grants(st, "kms:GenerateDataKey", "var.data_kms_key_arn")
    assert grants(st, "kms:Decrypt", "var.data_kms_key_arn")


def test_every_aws_call_of_the_pipeline_is_granted_to_the_run_role():
    orch = load_module(ORCH)
    st = role_statements(orch, "run")
    for action, where in sorted(pipeline_actions()["run"]):
        service = action.split(":")[0]
        if service == "s3":
            if action in S3_READ:
                for bucket in ("var.raw_bucket_arn", "var.lake_bucket_arn"):
                    assert grants(st, action, bucket, module=orch), f"{where} -> {action} on {bucket}"
            else:
                assert grants(st, action, "var.lake_bucket_arn", module=orch), f"{where} -> {action} on the lake"
        elif service == "sns":
            assert grants(st, action, "var.alert_topic_arn"), f"{where} -> {action}"
        else:
            assert grants(st, action, ""), f"{where} calls {action}: grant it to the run role (terraform/modules/orchestration/iam.tf)"


def test_sensor_calls_are_granted_to_the_code_location_role():
    """Sensors run in the code-location server: it lists and reads raw and the ledger,
    and the run-failure sensor sends alerts (SNS) from there."""
    orch = load_module(ORCH)
    st = role_statements(orch, "code_location")
    for action, where in pipeline_actions()["run"]:
        if action.startswith("sns:"):
            assert grants(st, action, "var.alert_topic_arn"), f"{where}: code location needs {action}"
    assert grants(st, "sns:Publish", "var.alert_topic_arn")
    reads = {a for a, _ in pipeline_actions()["run"] if a in S3_READ} | S3_READ
    for action in reads:
        for bucket in ("var.raw_bucket_arn", "var.lake_bucket_arn"):
            assert grants(st, action, bucket, module=orch), f"code location needs {action} on {bucket}"
    for action in ("s3:PutObject", "s3:DeleteObject"):
        for bucket in ("var.raw_bucket_arn", "var.lake_bucket_arn"):
            assert not grants(st, action, bucket, module=orch), f"code location must not {action} on {bucket}"


@pytest.mark.parametrize("role", ["run", "code_location"])
def test_list_conditions_admit_the_prefixes_the_storage_layer_uses(role):
    """ListObjectsV2 of s3://<bucket>/raw probes Prefix="raw" and lists "raw/2025/...": both must pass."""
    orch = load_module(ORCH)
    for st in role_statements(orch, role):
        if st["actions"] != ["s3:ListBucket"] or st["resources"] == ["${var.ops_bucket_arn}"]:
            continue
        values = st["condition"][0]["values"]
        values = orch.locals[values[len("${local.") : -1]] if isinstance(values, str) else values
        prefix_var = "raw_prefix" if "raw" in st["resources"][0] else "lake_prefix"
        top = "raw" if prefix_var == "raw_prefix" else "lake"
        patterns = [
            v.replace(f'${{trimsuffix(var.{prefix_var}, "/")}}', top).replace(f"${{var.{prefix_var}}}", f"{top}/")
            for v in values
        ]
        for probe in (top, f"{top}/", f"{top}/2025/11/20/13/", f"{top}/events/_delta_log/"):
            assert any(fnmatch.fnmatchcase(probe, p) for p in patterns), f"{role}: ListBucket Prefix={probe!r} denied by {patterns}"
        assert not any(fnmatch.fnmatchcase("other/", p) for p in patterns)


def test_run_role_can_publish_alerts():
    orch = load_module(ORCH)
    st = role_statements(orch, "run")
    assert grants(st, "sns:Publish", "var.alert_topic_arn")
    assert grants(st, "kms:GenerateDataKey", "var.platform_kms_key_arn")
