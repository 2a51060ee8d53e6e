"""A mocked `terraform test` apply (which validates first) of every env root.

Needs a terraform binary and the AWS provider already on disk (a filesystem
mirror: TF_PROVIDER_MIRROR, default /opt/tf-plugins); nothing is downloaded and
no AWS account is touched (mock_provider). Where no mirror exists the test is
skipped, and `make infra-plan` on a machine with network does the same checks.

A mocked apply evaluates the whole configuration with the env's tfvars against
the provider's real schema: argument names and types, variable validations,
count/for_each, preconditions and the provider's own value checks (ARNs, enums).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from tests.support.terraform import ENV_NAMES, TERRAFORM, tfvars

from lake_pipeline import settings

pytestmark = pytest.mark.terraform

MIRROR = Path(os.environ.get("TF_PROVIDER_MIRROR", "/opt/tf-plugins"))
TERRAFORM_BIN = shutil.which(os.environ.get("TERRAFORM", "terraform"))
ACCOUNT = "123456789012"

# Mock ARNs for the resources whose ARNs other resources validate.
MOCK_ARNS = {
    "aws_kms_key": "arn:aws:kms:{region}:{account}:key/00000000-0000-0000-0000-000000000000",
    "aws_kinesis_stream": "arn:aws:kinesis:{region}:{account}:stream/mock",
    "aws_kinesis_firehose_delivery_stream": "arn:aws:firehose:{region}:{account}:deliverystream/mock",
    "aws_iam_role": "arn:aws:iam::{account}:role/mock",
    "aws_iam_policy": "arn:aws:iam::{account}:policy/mock",
    "aws_s3_bucket": "arn:aws:s3:::mock",
    "aws_sns_topic": "arn:aws:sns:{region}:{account}:mock",
    "aws_cloudwatch_log_group": "arn:aws:logs:{region}:{account}:log-group:mock",
    "aws_secretsmanager_secret": "arn:aws:secretsmanager:{region}:{account}:secret:mock",
    "aws_ecs_cluster": "arn:aws:ecs:{region}:{account}:cluster/mock",
    "aws_ecs_task_definition": "arn:aws:ecs:{region}:{account}:task-definition/mock:1",
    "aws_lb": "arn:aws:elasticloadbalancing:{region}:{account}:loadbalancer/app/mock/0",
    "aws_appautoscaling_policy": (
        "arn:aws:autoscaling:{region}:{account}:scalingPolicy:00000000-0000-0000-0000-000000000000:"
        "resource/ecs/service/mock/mock:policyName/mock"
    ),
    "aws_lb_target_group": "arn:aws:elasticloadbalancing:{region}:{account}:targetgroup/mock/0",
    "aws_lb_listener": "arn:aws:elasticloadbalancing:{region}:{account}:listener/app/mock/0/0",
    "aws_efs_file_system": "arn:aws:elasticfilesystem:{region}:{account}:file-system/fs-mock",
    "aws_efs_access_point": "arn:aws:elasticfilesystem:{region}:{account}:access-point/fsap-mock",
    "aws_ecr_repository": "arn:aws:ecr:{region}:{account}:repository/mock",
    "aws_service_discovery_service": "arn:aws:servicediscovery:{region}:{account}:service/srv-mock",
    "aws_service_discovery_private_dns_namespace": "arn:aws:servicediscovery:{region}:{account}:namespace/ns-mock",
    "aws_athena_workgroup": "arn:aws:athena:{region}:{account}:workgroup/mock",
    "aws_glue_catalog_database": "arn:aws:glue:{region}:{account}:database/mock",
    "aws_db_instance": "arn:aws:rds:{region}:{account}:db:mock",
}


def _hcl_list(values: list[str]) -> str:
    return "[" + ", ".join(f'"{v}"' for v in values) + "]"


def mocked_test_file(env: str) -> str:
    values = tfvars(env)
    region = values["region"]
    buckets = settings.bucket_names(env, values.get("project", settings.PROJECT))
    resources = "".join(
        f'  mock_resource "{rtype}" {{\n    defaults = {{ arn = "{arn.format(region=region, account=ACCOUNT)}" }}\n  }}\n'
        for rtype, arn in MOCK_ARNS.items()
    )
    return f"""
mock_provider "aws" {{
{resources}
  mock_data "aws_caller_identity" {{
    defaults = {{ account_id = "{ACCOUNT}" }}
  }}
  mock_data "aws_region" {{
    defaults = {{ name = "{region}" }}
  }}
  mock_data "aws_partition" {{
    defaults = {{ partition = "aws" }}
  }}
  mock_data "aws_availability_zones" {{
    defaults = {{ names = {_hcl_list(values["availability_zones"])} }}
  }}
  mock_data "aws_iam_policy_document" {{
    defaults = {{ json = "{{}}" }}
  }}
  mock_data "aws_elb_service_account" {{
    defaults = {{ arn = "arn:aws:iam::156460612806:root" }}
  }}
  mock_data "aws_secretsmanager_random_password" {{
    defaults = {{ random_password = "mock-password" }}
  }}
}}

variables {{
  aws_account_id = "{ACCOUNT}"
  image_tag      = "mock"
}}

run "apply_{env}" {{
  command = apply

  assert {{
    condition     = output.raw_uri == "s3://{buckets['raw']}/raw" && output.lake_uri == "s3://{buckets['lake']}/lake"
    error_message = "raw/lake URIs differ from lake_pipeline.settings.bucket_names"
  }}
}}
"""


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, TF_CLI_CONFIG_FILE=os.devnull, TF_IN_AUTOMATION="1", CHECKPOINT_DISABLE="1")
    return subprocess.run([TERRAFORM_BIN, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(TERRAFORM_BIN is None, reason="no terraform binary on PATH")
@pytest.mark.skipif(not (MIRROR / "registry.terraform.io" / "hashicorp" / "aws").is_dir(), reason=f"no AWS provider mirror at {MIRROR}")
def test_every_env_applies_against_mocked_aws(tmp_path):
    work = tmp_path / "terraform"
    shutil.copytree(TERRAFORM, work, ignore=shutil.ignore_patterns(".terraform", ".cache", "*.tfplan", "*.tfstate*"))
    first = work / "envs" / ENV_NAMES[0]
    init = _run(["init", "-backend=false", "-input=false", "-no-color", f"-plugin-dir={MIRROR}"], first)
    assert init.returncode == 0, init.stdout + init.stderr

    procs = {}
    for env in ENV_NAMES:
        root = work / "envs" / env
        if root != first:  # same modules and providers: reuse the first init
            shutil.copytree(first / ".terraform", root / ".terraform", symlinks=True)
            shutil.copy(first / ".terraform.lock.hcl", root / ".terraform.lock.hcl")
        (root / "tests").mkdir()
        (root / "tests" / "mocked.tftest.hcl").write_text(mocked_test_file(env))
        shutil.copy(work / "envs" / f"{env}.tfvars", root / "terraform.tfvars")
        procs[env] = subprocess.Popen(
            [TERRAFORM_BIN, "test", "-no-color"],
            cwd=root,
            env=dict(os.environ, TF_CLI_CONFIG_FILE=os.devnull, CHECKPOINT_DISABLE="1"),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    for env, proc in procs.items():
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0 and "1 passed, 0 failed" in out, f"{env}:\n{out[-6000:]}"
