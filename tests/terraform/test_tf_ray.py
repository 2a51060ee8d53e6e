"""Ray on EKS (terraform/modules/ray): off by default, private, workers scale to zero, IRSA scoped
to the raw and lake buckets."""

from __future__ import annotations

import re

import pytest
from tests.support.terraform import ENV_NAMES, MODULES, env_root, load_module, tfvars

RAY = MODULES / "ray"


@pytest.fixture(scope="module")
def ray():
    return load_module(RAY)


def _statements(mod, doc: str) -> list[dict]:
    body = mod.data_of_type("aws_iam_policy_document")[doc]
    return body.get("statement", [])


@pytest.mark.parametrize("env", ENV_NAMES)
def test_off_in_every_env_and_wired_through_the_stack(env):
    assert tfvars(env)["ray_enabled"] is False
    assert env_root(env).modules["lakehouse"]["ray_enabled"] == "${var.ray_enabled}"
    stack = load_module(MODULES / "lakehouse")
    assert stack.variables["ray_enabled"]["default"] is False
    assert stack.modules["ray"]["enabled"] == "${var.ray_enabled}"


def test_every_resource_exists_only_when_enabled(ray):
    for rtype, named in ray.resources.items():
        for name, body in named.items():
            gate = body.get("count", body.get("for_each"))
            assert gate in ("${local.count}", "${var.enabled ? local.node_policies : {}}"), f"{rtype}.{name}: {gate}"
    assert ray.locals["count"] == "${var.enabled ? 1 : 0}"


def test_control_plane_is_private_encrypted_and_logged(ray):
    (cluster,) = ray.of_type("aws_eks_cluster").values()
    vpc = cluster["vpc_config"][0] if isinstance(cluster["vpc_config"], list) else cluster["vpc_config"]
    assert vpc["endpoint_public_access"] is False and vpc["endpoint_private_access"] is True
    assert vpc["subnet_ids"] == "${var.private_subnet_ids}"
    enc = cluster["encryption_config"][0] if isinstance(cluster["encryption_config"], list) else cluster["encryption_config"]
    assert enc["resources"] == ["secrets"]
    assert set(ray.locals["log_types"]) == {"api", "audit", "authenticator", "controllerManager", "scheduler"}


def test_workers_scale_from_zero_on_spot_and_the_head_is_one_node(ray):
    groups = ray.of_type("aws_eks_node_group")
    scaling = {name: (g["scaling_config"][0] if isinstance(g["scaling_config"], list) else g["scaling_config"])
               for name, g in groups.items()}
    assert scaling["workers"]["min_size"] == 0 and scaling["workers"]["desired_size"] == 0
    assert scaling["workers"]["max_size"] == "${var.worker_max_nodes}"
    assert groups["workers"]["capacity_type"] == "SPOT"
    assert (scaling["head"]["min_size"], scaling["head"]["max_size"]) == (1, 1)
    for g in groups.values():
        assert g["subnet_ids"] == "${var.private_subnet_ids}" and "remote_access" not in g


def test_ray_pods_assume_their_role_only_through_their_service_account(ray):
    (st,) = _statements(ray, "ray_assume")
    assert st["actions"] == ["sts:AssumeRoleWithWebIdentity"]
    assert [p["type"] for p in st["principals"]] == ["Federated"]
    subs = [c for c in st["condition"] if c["variable"].endswith(":sub")]
    assert subs and subs[0]["values"] == ["system:serviceaccount:${var.namespace}:${var.service_account}"]


def test_ray_pods_read_raw_and_write_lake_and_nothing_else(ray):
    by_sid = {st["sid"]: st for st in _statements(ray, "ray")}
    assert by_sid["ReadLandingZone"]["actions"] == ["s3:GetObject"]
    assert by_sid["ReadLandingZone"]["resources"] == ["${var.raw_bucket_arn}/${var.raw_prefix}*"]
    assert "s3:PutObject" in by_sid["ReadWriteLake"]["actions"]
    assert by_sid["ReadWriteLake"]["resources"] == ["${var.lake_bucket_arn}/${var.lake_prefix}*"]
    resources = {r for st in by_sid.values() for r in st["resources"]}
    assert resources <= {"${var.raw_bucket_arn}", "${var.raw_bucket_arn}/${var.raw_prefix}*", "${var.lake_bucket_arn}",
                         "${var.lake_bucket_arn}/${var.lake_prefix}*", "${var.data_kms_key_arn}"}
    for st in by_sid.values():
        assert not any(a == "*" or a.endswith(":*") or "Delete" in a for a in st["actions"]), st
    # Nodes themselves get no data access: only the managed EKS node policies.
    assert set(ray.locals["node_policies"]) == {"worker", "cni", "registry"}


def test_manifest_workers_start_at_zero_replicas(ray):
    text = ray.locals["manifest"]  # an expression: hcl2 gives its text
    assert re.search(r"\bminReplicas = 0\b", text) and re.search(r"\breplicas = 0\b", text), text
    assert re.search(r"maxReplicas = var\.worker_max_nodes\b", text)
    assert '"eks.amazonaws.com/role-arn" = one(aws_iam_role.ray[*].arn)' in text


def test_checkov_scans_the_module_turned_on():
    # The env roots give every resource count = 0 (Ray off), which checkov skips; this root turns it on.
    root = load_module(RAY / "checkov")
    call = root.modules["ray_enabled"]
    assert call["source"] == "../" and call["enabled"] is True
    assert set(load_module(RAY).variables) - {k for k, v in load_module(RAY).variables.items() if "default" in v} <= set(call)
