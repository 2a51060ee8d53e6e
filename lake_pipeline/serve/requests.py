"""Query parameters of the serving API: parsed and checked, with a reason when they are wrong.

No I/O here: the app turns a :class:`BadRequest` into a 400 with its message.
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Mapping
from dataclasses import dataclass

import orjson

from lake_pipeline.contract import MAX_CREATED_AT, validate_fields

MAX_MILLIS = MAX_CREATED_AT * 1000
KINDS = ("click", "impression")


class BadRequest(ValueError):
    """The request cannot be answered as sent; the message says why."""


def millis(params: Mapping[str, str], name: str = "timestamp", required: bool = True) -> int | None:
    """An integer number of milliseconds since the epoch, within the contract's created_at range."""
    raw = params.get(name)
    if raw is None or raw == "":
        if required:
            raise BadRequest(f"{name} is required: milliseconds since the epoch, e.g. {name}=1732108800000")
        return None
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer number of milliseconds since the epoch, not {raw!r}") from None
    if not 0 <= value < MAX_MILLIS:
        raise BadRequest(f"{name} {value} is out of range: 0 <= {name} < {MAX_MILLIS} (year 2100)")
    return value


def kind(params: Mapping[str, str]) -> str:
    """``click`` or ``impression``: a bare ``&click``/``&impression`` flag or ``event=...``."""
    named = {k for k in KINDS if k in params}
    event = params.get("event")
    if event is not None:
        if event not in KINDS:
            raise BadRequest(f"event must be click or impression, not {event!r}")
        named.add(event)
    if len(named) != 1:
        raise BadRequest("name exactly one of click or impression (&click, &impression or event=click|impression), "
                         + ("not both" if named else "none was given"))
    return named.pop()


@dataclass(frozen=True)
class AdEvent:
    """A POSTed ad event, as a record of the data contract."""

    timestamp_ms: int
    user: str
    kind: str

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> AdEvent:
        ts = millis(params)
        user = params.get("user", "")
        if not user.strip():
            raise BadRequest("user is required: the user's id, e.g. user=u123")
        return cls(ts, user, kind(params))

    def record(self, click_event: str, impression_event: str) -> bytes:
        """One JSON line: a new event_uuid, the event name, created_at in seconds, user_id."""
        name = click_event if self.kind == "click" else impression_event
        created_at = self.timestamp_ms / 1000
        uid = str(uuidlib.uuid4())
        reason = validate_fields(uid, name, created_at)
        if reason is not None:  # a setting naming an invalid event: the contract would quarantine it
            raise BadRequest(f"the event would be quarantined: {reason}")
        return orjson.dumps({"event_uuid": uid, "event_name": name, "created_at": created_at, "user_id": self.user})


def limit(params: Mapping[str, str], default: int, most: int) -> int:
    raw = params.get("limit")
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"limit must be an integer, not {raw!r}") from None
    if not 1 <= value <= most:
        raise BadRequest(f"limit must be between 1 and {most}, not {value}")
    return value
