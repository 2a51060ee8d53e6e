"""One root per environment: same shape, own state, own account, values only from tfvars."""

from __future__ import annotations

import pytest
from tests.support.terraform import ENV_NAMES, ENVS, MODULES, env_root, env_scope, load_module, tfvars

ROOT_ONLY = {"region", "aws_account_id", "tags"}


def test_dev_and_prod_roots_and_tfvars_exist():
    assert {"dev", "prod"} <= set(ENV_NAMES)
    for env in ENV_NAMES:
        assert (ENVS / env / "main.tf").is_file(), env
        assert (ENVS / f"{env}.tfvars").is_file(), env


@pytest.mark.parametrize("env", ENV_NAMES)
def test_root_has_its_own_locked_encrypted_s3_state(env):
    root = env_root(env)
    (tf,) = root.terraform
    backend = tf["backend"][0]["s3"]
    assert backend["key"] == f"lakehouse/{env}/terraform.tfstate"
    assert backend["encrypt"] is True
    assert backend["use_lockfile"] is True or backend.get("dynamodb_table")
    # use_lockfile (S3-native locking) needs Terraform >= 1.10.
    assert tf["required_version"] == ">= 1.10.0"


def test_state_keys_differ_between_environments():
    keys = [env_root(env).terraform[0]["backend"][0]["s3"]["key"] for env in ENV_NAMES]
    assert len(set(keys)) == len(keys)


@pytest.mark.parametrize("env", ENV_NAMES)
def test_root_calls_the_shared_stack_for_its_own_env(env):
    root = env_root(env)
    call = root.modules["lakehouse"]
    assert call["source"] == "../../modules/lakehouse"
    assert call["env"] == env
    (provider,) = root.providers
    assert provider["aws"]["allowed_account_ids"] == ["${var.aws_account_id}"]
    assert provider["aws"]["region"] == "${var.region}"


@pytest.mark.parametrize("env", ENV_NAMES)
def test_root_passes_every_stack_variable_through(env):
    root = env_root(env)
    stack = load_module(MODULES / "lakehouse")
    passthrough = set(stack.variables) - {"env"}
    assert set(root.variables) == passthrough | ROOT_ONLY
    call = root.modules["lakehouse"]
    for name in passthrough:
        assert call.get(name) == f"${{var.{name}}}", f"envs/{env}/main.tf must pass {name} = var.{name}"
        assert root.variables[name].get("default", "missing") is None, f"{name}: defaults live in modules/lakehouse"


def test_roots_are_identical_apart_from_the_env_name():
    texts = {}
    for env in ENV_NAMES:
        for f in ("main.tf", "variables.tf", "outputs.tf"):
            texts.setdefault(f, set()).add((ENVS / env / f).read_text().replace(f'"{env}"', '"<env>"').replace(f"/{env}/", "/<env>/").replace(f"ENV={env}", "ENV=<env>"))
    for f, variants in texts.items():
        assert len(variants) == 1, f"envs/*/{f} differ beyond the env name"


@pytest.mark.parametrize("env", ENV_NAMES)
def test_tfvars_set_only_declared_variables(env):
    values = tfvars(env)
    declared = set(env_root(env).variables)
    assert set(values) <= declared, set(values) - declared
    assert "env" not in values, "the env comes from the root directory, not from tfvars"
    assert len(values["aws_account_id"]) == 12 and values["aws_account_id"].isdigit()
    assert values["region"]
    assert all(az.startswith(values["region"]) for az in values["availability_zones"])


@pytest.mark.parametrize("env", ENV_NAMES)
def test_required_stack_inputs_resolve(env):
    scope = env_scope(env)
    for name, decl in scope.module.variables.items():
        value = scope.var(name)
        if "default" not in decl:
            assert value is not None, f"{env}: {name} has no default and is not set in {env}.tfvars"


def test_prod_is_stricter_than_dev():
    dev, prod = env_scope("dev"), env_scope("prod")
    assert prod.var("db_deletion_protection") and prod.var("db_multi_az") and prod.var("alb_deletion_protection")
    # prod keeps a NAT gateway (one) unless every AZ has the interface endpoints; dev has none.
    assert prod.var("nat_gateways") != "none" or prod.var("interface_endpoint_az_count") == len(prod.var("availability_zones"))
    assert prod.var("log_retention_days") >= 365
    assert prod.var("kinesis_retention_hours") >= dev.var("kinesis_retention_hours")
