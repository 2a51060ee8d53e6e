"""`lake serve`'s own errors: one `error:` line naming what to fix, before it listens."""

from __future__ import annotations

import pytest

from tests.support.cli import invoke


def test_an_unusable_spool_directory_is_one_error_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = invoke("serve", "--lake", str(tmp_path / "lake"), "--raw", str(tmp_path / "raw"),
                    "--spool", str(blocker / "spool"), "--port", "1")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "LAKE_SERVE_SPOOL_DIR" in lines[0], lines


@pytest.mark.e2e  # it tries an S3 endpoint over HTTP (where nothing listens)
def test_an_unreachable_lake_is_one_error_line(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    result = invoke("serve", "--lake", "s3://no-such-bucket/lake", "--raw", str(tmp_path / "raw"),
                    "--spool", str(tmp_path / "spool"), "--port", "1")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "no-such-bucket" in lines[0], lines
