"""Property test: on random objects of valid and broken records, in every framing, the bulk
parser and the Python parser give the same records, quarantine rows, ordinals and counts."""

from __future__ import annotations

import gzip
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lake_pipeline.parse.careful import RecordColumns, UnreadableObject, _parse_careful, decompress, parse_object
from tests.parse.parity import same_parse, write_objects

pytestmark = pytest.mark.property  # hundreds of random objects per test: `make test` runs them, not test-fast

_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**80), 2**80),
    st.floats(allow_nan=False, allow_infinity=False), st.floats(min_value=0, max_value=1e-3),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=10),
    st.sampled_from(["}{", '"}{"', "\n", "\\", "NaN", "[1,]", '{"event_uuid":"x"}', "\u00e9", "\U0001F600"]),
)
_VALUES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.text(max_size=5), inner, max_size=3), max_leaves=8)
_UUIDS = st.one_of(st.uuids().map(str), st.sampled_from(["", 5, None, "caf\u00e9", "\ud800", "a\u0000"]))
_NAMES = st.sampled_from(["page:view", "a", "a::b", ":x", "", 7, None, "\u00e9v:x"])
_CREATED = st.one_of(
    st.floats(min_value=0, max_value=4102444799.999), st.integers(0, 4102444799),
    st.sampled_from([-1, 4102444800, 1e400, -0.0, "1", True, None, 2**70]),
)
# Raw number texts json.dumps never writes, spliced into records as they are
_NUMBER_TEXTS = st.sampled_from(["1E5", "1.0", "-0.0", "0.10000000000000001", "-1e+9999", "123e-10000000",
                                 "12345678901234567890", "NaN", "-Infinity", "inf", "01", "1.", "+1", "9" * 4400])


@st.composite
def record(draw) -> bytes:
    fields = {"event_uuid": draw(_UUIDS), "event_name": draw(_NAMES), "created_at": draw(_CREATED)}
    payload = draw(st.dictionaries(st.text(max_size=6).filter(lambda k: k not in fields), _VALUES, max_size=4))
    order = draw(st.sampled_from(["head", "tail", "mixed"]))
    items = list(fields.items()) + list(payload.items()) if order == "head" else list(payload.items()) + list(fields.items())
    if order == "mixed":
        items = draw(st.permutations(items))
    style = draw(st.sampled_from([{"separators": (",", ":"), "ensure_ascii": False}, {}, {"indent": 2}]))
    text = json.dumps(dict(items), **style).encode("utf-8", "surrogatepass")
    if draw(st.booleans()):  # a raw number text in place of a value
        number = draw(_NUMBER_TEXTS).encode()
        text = text[:-1] + (b',"n":' if len(text) > 2 else b'"n":') + number + b"}"
    return text


@st.composite
def broken(draw) -> bytes:
    text = draw(record())
    kind = draw(st.sampled_from(["truncate", "insert", "replace", "junk"]))
    at = draw(st.integers(0, len(text)))
    junk = draw(st.sampled_from([b",", b"}", b"{", b'"', b"\\", b"\xff", b"\x00", b"\x0b", b"\n", b"N", b" ", b",]",
                                 b"\xef\xbb\xbf", b"\xed\xa0\x80", b"/*x*/"]))
    if kind == "truncate":
        return text[:at]
    if kind == "insert":
        return text[:at] + junk + text[at:]
    if kind == "replace":
        return text[:at] + junk + text[at + 1:]
    return draw(st.sampled_from([b"nope", b"[1,]", b"NaN", b'{"a":}', b"42", b'"s"', b"[]", b"{}", b"}{"]))


@st.composite
def raw_object(draw) -> bytes:
    pieces = draw(st.lists(st.one_of(record(), record(), broken()), min_size=0, max_size=12))
    sep = draw(st.sampled_from([b"", b"\n", b"\r\n", None]))
    if sep is None:  # a mix of delimiters
        body = b"".join(p + draw(st.sampled_from([b"", b"\n", b"\r\n", b" ", b"\n\n"])) for p in pieces)
    else:
        body = sep.join(pieces) + draw(st.sampled_from([b"", sep]))
    if draw(st.booleans()):
        body = b"\xef\xbb\xbf" + body
    return gzip.compress(body, mtime=0) if draw(st.booleans()) else body


@settings(max_examples=100, deadline=None, database=None)
@given(st.lists(raw_object(), min_size=1, max_size=4))
def test_bulk_and_python_parsers_agree_on_random_objects(objects):
    with tempfile.TemporaryDirectory() as tmp:
        root = write_objects(Path(tmp) / "raw", {f"k{i:02d}": data for i, data in enumerate(objects)})
        _, handed = same_parse(root)
        assert handed.whole_objects == 0


@settings(max_examples=400, deadline=None, database=None)
@given(raw_object())
def test_the_python_parsers_windows_agree_with_one_careful_scan_of_the_object(data):
    """The fast path and the careful windows it hands over (the same windows the bulk parser
    hands over) give exactly what one careful scan of the whole object gives."""
    whole = RecordColumns()
    try:
        body = decompress(data)
    except UnreadableObject:
        return
    n = _parse_careful("k", body, whole)
    windows = RecordColumns()
    assert parse_object("k", data, windows) == n
    assert windows.uuid == whole.uuid and windows.payload == whole.payload
    assert windows.created_at == whole.created_at and windows.ordinal == whole.ordinal
    assert windows.q_raw == whole.q_raw and windows.q_reason == whole.q_reason
    assert windows.q_ordinal == whole.q_ordinal
