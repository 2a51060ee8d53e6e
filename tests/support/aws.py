"""Helpers of the tests against the session's moto server (its fixtures are in tests/conftest.py)."""

from __future__ import annotations

import contextlib
import urllib.request
from collections.abc import Iterator


def _reset_auth(endpoint: str, initial_no_auth_action_count: str) -> str:
    """moto's server-mode switch for credential checks; returns the previous setting."""
    import json

    # A plain body: as a form (urllib's default content type) moto would not see it.
    request = urllib.request.Request(f"{endpoint}/moto-api/reset-auth", data=initial_no_auth_action_count.encode(),
                                     headers={"Content-Type": "text/plain"}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["PREVIOUS_INITIAL_NO_AUTH_ACTION_COUNT"]


@contextlib.contextmanager
def credentials_checked(endpoint: str) -> Iterator[None]:
    """Within the block the moto server at ``endpoint`` checks every request's credentials
    (IAM auth from the first request on), as AWS does; afterwards it accepts any again.
    Tests run one at a time, so no other test sees the strict server."""
    previous = _reset_auth(endpoint, "0")
    try:
        yield
    finally:
        _reset_auth(endpoint, previous)
