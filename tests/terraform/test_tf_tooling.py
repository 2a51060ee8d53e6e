"""terraform fmt, checkov and the make targets, all offline."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest
from tests.support.terraform import REPO, TERRAFORM

SKIP_COMMENT = re.compile(r"#\s*checkov:skip=([A-Z0-9_]+)(?::(.*))?")
MIN_REASON = 30


def _infra():
    spec = importlib.util.spec_from_file_location("terraform_infra", TERRAFORM / "infra.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tf_files() -> list[Path]:
    return sorted(p for p in TERRAFORM.rglob("*.tf") if ".terraform" not in p.parts)


@pytest.mark.terraform
def test_terraform_files_are_formatted():
    code, out = _infra().fmt(check=True)
    assert code == 0, f"run `make infra-fmt`:\n{out}"


@pytest.mark.terraform
def test_fmt_check_detects_unformatted_files(tmp_path):
    (tmp_path / "bad.tf").write_text('variable "x" {\n type = string\n    default="a"\n}\n')
    code, out = _infra().fmt(check=True, directory=tmp_path)
    assert code != 0 and "bad.tf" in out
    assert (tmp_path / "bad.tf").read_text().startswith('variable "x" {\n type'), "check must not rewrite"


@pytest.fixture(scope="module")
def checkov_report() -> dict:
    proc = _infra().run_checkov(output="json")
    assert proc.stdout.strip(), f"checkov printed nothing:\n{proc.stderr[-3000:]}"
    report = json.loads(proc.stdout)
    reports = report if isinstance(report, list) else [report]
    (terraform,) = [r for r in reports if r.get("check_type") == "terraform"]
    return terraform


@pytest.mark.terraform
def test_checkov_reports_no_failed_checks(checkov_report):
    summary = checkov_report["summary"]
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']}:{c['file_line_range'][0]})"
        for c in checkov_report["results"]["failed_checks"]
    ]
    assert summary["failed"] == 0, "\n".join(failed)
    assert summary["passed"] > 100
    assert summary["parsing_errors"] == 0


@pytest.mark.terraform
def test_every_checkov_skip_has_a_reason(checkov_report):
    skipped = checkov_report["results"]["skipped_checks"]
    assert skipped, "expected the documented inline skips"
    for c in skipped:
        reason = (c["check_result"].get("suppress_comment") or "").strip()
        assert len(reason) >= MIN_REASON, f"{c['check_id']} on {c['resource']}: no real reason"


@pytest.mark.terraform
def test_every_skip_comment_in_tf_files_has_a_reason_and_is_used(checkov_report):
    used = {c["check_id"] for c in checkov_report["results"]["skipped_checks"]}
    comments = []
    for path in tf_files():
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            if "checkov:skip" not in line:
                continue
            m = SKIP_COMMENT.search(line)
            assert m, f"{path}:{lineno}: malformed skip comment"
            check_id, reason = m.groups()
            assert reason and len(reason.strip()) >= MIN_REASON, f"{path}:{lineno}: {check_id} needs a written reason"
            comments.append((path, lineno, check_id))
    assert comments
    for path, lineno, check_id in comments:
        assert check_id in used, f"{path}:{lineno}: {check_id} is skipped but no longer triggered; remove the skip"


def test_no_global_skips_in_checkov_config():
    config = (TERRAFORM / ".checkov.yaml").read_text()
    assert "skip-check" not in config and "soft-fail" not in config
    assert "skip-download: true" in config


def test_infra_make_targets_are_documented():
    mk = (TERRAFORM / "infra.mk").read_text()
    targets = dict(re.findall(r"^([a-z][a-z-]*):[^=\n]*?## (.+)$", mk, re.M))
    for target in ("infra-fmt", "infra-check", "infra-plan", "infra-apply"):
        assert target in targets, f"{target} missing or undocumented (`{target}: ## description`)"
    assert "ENV" in targets["infra-plan"]


def test_docs_only_mention_files_and_targets_that_exist():
    doc = (REPO / "docs" / "deployment.md").read_text()
    for ref in set(re.findall(r"`((?:terraform|dagster_home|tests|docs)/[A-Za-z0-9_./<>-]+)`", doc)):
        if "<" in ref:
            continue
        assert (REPO / ref.rstrip("/")).exists(), f"docs/deployment.md mentions {ref}, which does not exist"
    mk = (TERRAFORM / "infra.mk").read_text()
    for target in set(re.findall(r"make (infra-[a-z-]+)", doc)):
        assert re.search(rf"^{target}:", mk, re.M), f"docs/deployment.md mentions make {target}"
