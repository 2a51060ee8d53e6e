"""JSON-text rules both parsers share: cutting the payload out of a record, and what the bulk
parser can vouch for.

The payload is the record's own text with the three common members cut out (the rule is
stated in `contract.py`). :func:`payload_text` cuts it from any valid JSON object by walking
its top-level members; :data:`HEAD` and :data:`TAIL` are the shortcut for the two layouts
producers use (the common members first, or last, with plain values), written once for Python's
``re`` and DuckDB's RE2 alike, so the bulk parser cuts exactly what the walk cuts.

:data:`ODD` recognises, token by token (never inside a string), the text DuckDB reads
differently from strict JSON, or that the shortcut could cut wrongly. Number tokens are never
odd: the payload keeps their text, so no number needs a parser's opinion.
"""

from __future__ import annotations

import json
import re
from json.decoder import scanstring

from lake_pipeline.contract import COMMON_FIELDS, FIELD_JSON_TYPES, MAX_NESTING

_WS = r"[ \t\n\r]"  # JSON whitespace (Python's \s and RE2's \s both differ from it)
_KEY = f'"({"|".join(COMMON_FIELDS)})"'
# A common member's value the shortcut takes: a string with no escape, or a number token with no
# sign (the text is valid JSON already, so a number token is whatever follows its first digit).
_VALUE = r'"[^"\\]*"|[0-9][0-9.eE+-]*'
_MEMBER = f"{_KEY}{_WS}*:{_WS}*({_VALUE})"
_COMMA = f"{_WS}*,{_WS}*"

# The record opens with the three common members: groups (leading whitespace, key, value, key,
# value, key, value, what follows: a comma and the quote that opens the next key, or the
# closing brace).
HEAD = rf'^\{{({_WS}*){_MEMBER}{_COMMA}{_MEMBER}{_COMMA}{_MEMBER}({_COMMA}"|{_WS}*\}})'
# The usual case of HEAD, first: the common members in COMMON_FIELDS' order, each value of its
# contract JSON type (FIELD_JSON_TYPES). No alternation, so it is one pass in RE2 and cheap in
# Python's re; group 1 is the leading whitespace, and the match ends like HEAD's.
_TYPED_VALUE = {"string": r'"[^"\\]*"', "number": "[0-9][0-9.eE+-]*"}
CANON = (rf"^\{{({_WS}*)" + _COMMA.join(f'"{name}"{_WS}*:{_WS}*{_TYPED_VALUE[FIELD_JSON_TYPES[name]]}'
                                       for name in COMMON_FIELDS) + f'(?:{_COMMA}"|{_WS}*\\}})')
# The record closes with them: groups (key, value, key, value, key, value, closing whitespace);
# end it with "$" (RE2) or "\Z" (Python).
TAIL = rf"{_COMMA}{_MEMBER}{_COMMA}{_MEMBER}{_COMMA}{_MEMBER}({_WS}*)\}}"

STRING = r'"(?:[^"\\]|\\.)*"'  # a JSON string token
# Odd text in a payload, outside strings (the prefix skips whole strings):
# - NaN or Infinity in any spelling DuckDB accepts (nan, inf, -Infinity, ...): not JSON;
# - a trailing comma (DuckDB accepts one);
# - a common field's name as a string token anywhere (a field given twice, or nested);
# - a key with an escaped letter or underscore ("event\u005fuuid" is event_uuid to a parser).
ODD = (
    rf'^(?:[^"]|{STRING})*?(?:(?i:nan|inf)|,{_WS}*[\]}}]|"(?:{"|".join(COMMON_FIELDS)})"'
    rf'|"(?:[^"\\]|\\.)*\\u00(?:5[fF]|6[1-9a-fA-F]|7[0-9aA])(?:[^"\\]|\\.)*"{_WS}*:)'
)

_HEAD = re.compile(HEAD)
_CANON = re.compile(CANON)
_TAIL = re.compile(TAIL + r"\Z")
_TAIL_REACH = 4096  # the tail shortcut looks this far back from the end
_WS_RUN = re.compile(f"{_WS}*")
# The walk only needs where values end: numbers and constants stay text (any length, NaN too).
_DECODER = json.JSONDecoder(parse_int=str, parse_float=str, parse_constant=str)
_TOKENS = tuple(f'"{name}"' for name in COMMON_FIELDS)
_ESCAPED_LETTER = re.compile(r"\\u00(?:5[fF]|6[1-9a-fA-F]|7[0-9aA])")


def payload_text(record: str) -> str:
    """The payload of a record that is one valid JSON object (``record`` is its exact text)."""
    cut = fast_payload(record)
    return cut if cut is not None else _walk(record)


def fast_payload(record: str) -> str | None:
    """The payload by the shortcut alone, or None when the record needs :func:`payload_text`'s
    walk: another layout, or a payload that may hold a common field again (checked
    conservatively, on substrings; the walk is exact)."""
    cut = _shortcut(record)
    if cut is None or (_TOKENS[0] in cut or _TOKENS[1] in cut or _TOKENS[2] in cut):
        return None
    if "\\u00" in cut and _ESCAPED_LETTER.search(cut):
        return None
    return cut


def _shortcut(record: str) -> str | None:
    m = _CANON.match(record)
    if m is not None:
        return "{}" if record[m.end() - 1] == "}" else "{" + m.group(1) + record[m.end() - 1 :]
    m = _HEAD.match(record)
    if m is not None:
        if len(set(m.group(2, 4, 6))) < 3:
            return None
        if m.group(8)[-1] == "}":
            return "{}"
        return "{" + m.group(1) + record[m.end() - 1 :]  # from the quote that opens the next key
    m = _TAIL.search(record, max(0, len(record) - _TAIL_REACH))
    if m is not None and len(set(m.group(1, 3, 5))) == 3:
        return record[: m.start()] + m.group(7) + "}"
    return None


def _walk(record: str) -> str:
    """Cut the common members by walking the object's top-level members (the reference)."""
    members: list[tuple[str, int, int]] = []  # (key, start of key, end of value)
    pos = _WS_RUN.match(record, 1).end()
    if record[pos] != "}":
        while True:
            key, key_end = scanstring(record, pos + 1)
            colon = _WS_RUN.match(record, key_end).end()
            _, value_end = _DECODER.raw_decode(record, _WS_RUN.match(record, colon + 1).end())
            members.append((key, pos, value_end))
            pos = _WS_RUN.match(record, value_end).end()
            if record[pos] == "}":
                break
            pos = _WS_RUN.match(record, pos + 1).end()
    kept = [i for i, (key, _, _) in enumerate(members) if key not in COMMON_FIELDS]
    if not kept:
        return "{}"
    parts = ["{", record[1 : members[0][1]]]
    for i in kept[:-1]:
        parts.append(record[members[i][1] : members[i + 1][1]])  # the member and the separator after it
    last = members[kept[-1]]
    parts.append(record[last[1] : last[2]])
    parts.append(record[members[-1][2] :])  # the whitespace that closed the record, and "}"
    return "".join(parts)


def nesting_depth(record: str) -> int:
    """Levels of objects and arrays in a valid JSON text (strings skipped)."""
    depth = deepest = 0
    for token in re.finditer(r'"(?:[^"\\]|\\.)*"|[\[{]|[\]}]', record):
        c = token.group()
        if c in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "]}":
            depth -= 1
    return deepest


def may_be_too_deep(record: str | bytes) -> bool:
    """A cheap bound: fewer opening brackets than the limit means not too deep."""
    if len(record) <= 2 * MAX_NESTING:
        return False
    if isinstance(record, str):
        return record.count("[") + record.count("{") > MAX_NESTING
    return record.count(b"[") + record.count(b"{") > MAX_NESTING


# "}{" and a quote that opens a key: in valid JSON text, only between two top-level objects
# (inside a string, a quote after "}{" would close it, and a closing quote is followed by one of
# ,:]} or whitespace, never by a key's first character).
_BOUNDARY = re.compile(rb'\}\{"[^,:\]} \t\n\r]')


def cut_points(text: bytes, every: int) -> list[int]:
    """Offsets that cut concatenated JSON records into pieces of about ``every`` bytes, each at a
    boundary between two records. In text that isn't valid JSON a point may fall inside a record:
    then a piece is not valid JSON either, and whoever reads the pieces must find that out."""
    points: list[int] = []
    pos = every
    while pos < len(text):
        m = _BOUNDARY.search(text, pos)
        if m is None:
            break
        points.append(m.start() + 1)
        pos = m.start() + 1 + every
    return points
