"""Storage errors: one line that says what to fix."""

from __future__ import annotations

import re

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def one_line(message: str) -> str:
    """A message on one line: object_store's multi-line, coloured error chains joined with ": "."""
    text = _ANSI.sub("", message)
    parts = [p.strip(" \t\u21b3") for p in text.splitlines()]
    return ": ".join(p for p in parts if p)


class StorageError(RuntimeError):
    """Storage is unusable (missing, unreachable, bad credentials). The message says what to fix.

    The message is always one line, so the CLI can print it as one ``error:`` line.
    """

    def __init__(self, message: str):
        super().__init__(one_line(str(message)))
