"""Buckets: names match lake_pipeline.settings; every bucket is private, encrypted, TLS-only, logged and has lifecycle rules."""

from __future__ import annotations

import pytest
from tests.support.terraform import ENV_NAMES, MODULES, all_modules, env_scope, load_module, ref_name

from lake_pipeline import settings

# The only bucket that cannot use SSE-KMS: S3 server access logs and ALB access
# logs are delivered only to SSE-S3 buckets.
SSE_S3_ONLY = {("storage", "access_logs")}


def buckets():
    """(module, resource name) of every aws_s3_bucket in terraform/modules."""
    return [(m, name) for m in all_modules().values() for name in m.of_type("aws_s3_bucket")]


def attached(module, rtype, bucket):
    """Resources of rtype whose `bucket` argument points at aws_s3_bucket.<bucket>."""
    return [
        body
        for body in module.of_type(rtype).values()
        if ref_name(body.get("bucket", "")).startswith(f"aws_s3_bucket.{bucket}.")
    ]


def one_attached(module, rtype, bucket):
    found = attached(module, rtype, bucket)
    assert len(found) == 1, f"{module.name}: aws_s3_bucket.{bucket} needs exactly one {rtype}, has {len(found)}"
    return found[0]


def test_every_bucket_is_covered():
    found = {(m.name, b) for m, b in buckets()}
    assert ("s3_bucket", "this") in found and ("storage", "access_logs") in found
    storage = load_module(MODULES / "storage")
    data_buckets = {name for name, call in storage.modules.items() if call["source"] == "../s3_bucket"}
    assert data_buckets == {"raw", "lake", "ops"}


@pytest.mark.parametrize("module,bucket", buckets(), ids=lambda x: getattr(x, "name", x))
def test_bucket_is_encrypted(module, bucket):
    sse = one_attached(module, "aws_s3_bucket_server_side_encryption_configuration", bucket)
    default = sse["rule"][0]["apply_server_side_encryption_by_default"][0]
    if (module.name, bucket) in SSE_S3_ONLY:
        assert default["sse_algorithm"] == "AES256"
    else:
        assert default["sse_algorithm"] == "aws:kms"
        assert default["kms_master_key_id"] == "${var.kms_key_arn}"
        assert sse["rule"][0]["bucket_key_enabled"] is True


def test_data_buckets_use_the_customer_managed_data_key_with_rotation():
    storage = load_module(MODULES / "storage")
    for name in ("raw", "lake", "ops"):
        assert storage.modules[name]["kms_key_arn"] == "${var.kms_key_arn}"
    lakehouse = load_module(MODULES / "lakehouse")
    assert lakehouse.modules["storage"]["kms_key_arn"] == "${module.kms.data_key_arn}"
    keys = load_module(MODULES / "kms").of_type("aws_kms_key")
    assert set(keys) == {"data", "platform"}
    for key in keys.values():
        assert key["enable_key_rotation"] is True
        assert key["policy"].startswith("${data.aws_iam_policy_document.")


@pytest.mark.parametrize("module,bucket", buckets(), ids=lambda x: getattr(x, "name", x))
def test_bucket_blocks_public_access_and_acls(module, bucket):
    pab = one_attached(module, "aws_s3_bucket_public_access_block", bucket)
    for switch in ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"):
        assert pab[switch] is True, switch
    ownership = one_attached(module, "aws_s3_bucket_ownership_controls", bucket)
    assert ownership["rule"][0]["object_ownership"] == "BucketOwnerEnforced"


@pytest.mark.parametrize("module,bucket", buckets(), ids=lambda x: getattr(x, "name", x))
def test_bucket_policy_denies_plain_http(module, bucket):
    policy = one_attached(module, "aws_s3_bucket_policy", bucket)
    doc_name = ref_name(policy["policy"]).split(".")[2]
    statements = module.data_of_type("aws_iam_policy_document")[doc_name]["statement"]
    tls = [
        s
        for s in statements
        if s.get("effect") == "Deny"
        and any(c["variable"] == "aws:SecureTransport" and c["values"] == ["false"] and c["test"] == "Bool" for c in s.get("condition", []))
    ]
    assert tls, f"{module.name}: aws_s3_bucket.{bucket} has no TLS-only statement"
    assert tls[0]["actions"] == ["s3:*"]
    assert tls[0]["principals"][0]["identifiers"] == ["*"]
    assert any(r.endswith("/*") for r in tls[0]["resources"]) and len(tls[0]["resources"]) == 2


@pytest.mark.parametrize("module,bucket", buckets(), ids=lambda x: getattr(x, "name", x))
def test_bucket_is_versioned_and_has_lifecycle_rules(module, bucket):
    versioning = one_attached(module, "aws_s3_bucket_versioning", bucket)
    assert versioning["versioning_configuration"][0]["status"] == "Enabled"
    lifecycle = one_attached(module, "aws_s3_bucket_lifecycle_configuration", bucket)
    rules = lifecycle["rule"]
    assert all(r["status"] == "Enabled" for r in rules)
    whole_bucket = [r for r in rules if r.get("filter") in ([{}], [])]
    assert any(r.get("abort_incomplete_multipart_upload") for r in whole_bucket), "abort incomplete uploads bucket-wide"
    assert any(r.get("noncurrent_version_expiration") for r in rules), "noncurrent versions must expire"


@pytest.mark.parametrize("module,bucket", buckets(), ids=lambda x: getattr(x, "name", x))
def test_bucket_access_is_logged(module, bucket):
    if (module.name, bucket) == ("storage", "access_logs"):
        return  # the log target itself
    logging = one_attached(module, "aws_s3_bucket_logging", bucket)
    assert logging["target_bucket"] == "${var.access_log_bucket}"
    storage = load_module(MODULES / "storage")
    for name in ("raw", "lake", "ops"):
        assert storage.modules[name]["access_log_bucket"] == "${aws_s3_bucket.access_logs.id}"


def test_raw_tiers_then_expires_and_lake_never_expires_current_data():
    storage = load_module(MODULES / "storage")
    raw_rules = storage.modules["raw"]["lifecycle_rules"]
    tiering = next(r for r in raw_rules if r["prefix"] == "${var.raw_prefix}")
    assert [t["storage_class"] for t in tiering["transitions"]] == ["STANDARD_IA", "GLACIER_IR"]
    assert tiering["expiration_days"] == "${var.raw_retention_days}"
    assert any(r["prefix"] == "${var.error_prefix}" and r.get("expiration_days") for r in raw_rules)
    assert storage.modules["lake"]["lifecycle_rules"] == []


@pytest.mark.parametrize("env", ENV_NAMES)
def test_raw_lifecycle_days_are_ordered(env):
    scope = env_scope(env)
    ia, glacier, expire = (scope.var(v) for v in ("raw_transition_ia_days", "raw_transition_glacier_ir_days", "raw_retention_days"))
    assert 30 <= ia < glacier < expire


@pytest.mark.parametrize("env", ENV_NAMES)
def test_bucket_and_stream_names_match_settings(env):
    scope = env_scope(env)
    project = scope.var("project")
    names = scope.local("bucket_names")
    assert {k: names[k] for k in ("raw", "lake")} == settings.bucket_names(env, project)
    assert scope.local("stream_names") == settings.stream_names(env, project)
    storage = scope.child("storage")
    assert storage.var("raw_bucket_name") == settings.bucket_names(env, project)["raw"]
    assert storage.var("lake_bucket_name") == settings.bucket_names(env, project)["lake"]
    assert storage.var("raw_prefix") == settings.FIREHOSE_RAW_PREFIX
    assert storage.var("error_prefix") == settings.FIREHOSE_ERROR_PREFIX


def test_project_default_is_the_settings_project():
    assert load_module(MODULES / "lakehouse").variables["project"]["default"] == settings.PROJECT


@pytest.mark.parametrize("env", ENV_NAMES)
def test_lake_and_raw_uris_match_settings(env):
    scope = env_scope(env)
    buckets_ = settings.bucket_names(env, scope.var("project"))
    assert scope.local("raw_uri") == f"s3://{buckets_['raw']}/{settings.FIREHOSE_RAW_PREFIX.rstrip('/')}"
    assert scope.local("lake_uri") == f"s3://{buckets_['lake']}/lake"
