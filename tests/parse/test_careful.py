"""Raw Firehose objects -> records: DESIGN.md §2 "Raw objects" and "A record is valid".

Every hand-made object in tests/cases/ is parsed and compared with its
``<name>.expected.json``; targeted tests below cover what a table of cases can't.
"""

from __future__ import annotations

import gzip
import json
import math
import random
import re

import pytest

from lake_pipeline import contract
from lake_pipeline.contract import MAX_CREATED_AT, MISSING, validate_fields
from lake_pipeline.parse import careful as parse
from lake_pipeline.parse.careful import RecordColumns, decompress, parse_object

from tests.support.cases import (
    CASES_DIR,
    all_case_names,
    built_cases,
    load_case,
    load_make_cases,
    stored_case_names,
)

COMMON = {"event_uuid", "event_name", "created_at"}


def parsed(key: str, data: bytes) -> tuple[int, RecordColumns]:
    out = RecordColumns()
    n = parse_object(key, data, out)
    return n, out


def ordered(value: object) -> str:
    """A JSON value's text with key order kept, so comparisons see order and exact numbers."""
    return json.dumps(value, ensure_ascii=True, allow_nan=False)


# --- The case files ------------------------------------------------------------------


def test_case_files_are_what_make_cases_builds():
    make_cases = load_make_cases()
    built = built_cases()
    stored = stored_case_names()
    assert stored == sorted(n for n in built if n not in make_cases.GENERATED_ONLY)
    for name in stored:
        data, expected = built[name]
        assert (CASES_DIR / name).read_bytes() == data, f"{name}: rerun tests/cases/make_cases.py"
        assert load_case(name)[1] == json.loads(json.dumps(expected)), name
    on_disk = {p.name for p in CASES_DIR.iterdir() if p.is_file()}
    assert on_disk == {"make_cases.py"} | set(stored) | {f"{n}.expected.json" for n in stored}


def test_cases_cover_the_contract():
    names = set(all_case_names())
    assert len(names) >= 40
    # a few that must not silently disappear from the table
    for required in [
        "concat_no_delimiter.json",
        "ndjson_crlf.json",
        "pretty_printed.json",
        "gzip_multi_member.json.gz",
        "plain_named_gz.json.gz",
        "gzip_named_plain.json",
        "corrupt_truncated.json.gz",
        "invalid_utf8_ndjson.json",
        "large_record_concat.json",
        "validation_rules.json",
        "lossless_payload.json",
        "bom.json",
    ]:
        assert required in names
    data, _ = load_case("large_record_concat.json")
    assert max(len(line) for line in data.splitlines()) > 1024 * 1024 - 4096


@pytest.mark.parametrize("name", all_case_names())
def test_case(name):
    data, exp = load_case(name)
    n, out = parsed(name, data)

    assert n == exp["records_read"]
    assert out.records_per_object == {name: n}
    assert out.records == n
    assert out.uuid == exp["valid_uuids"]
    assert len(out.q_reason) == exp["quarantined"]
    # nothing lost: every record read is either valid or quarantined
    assert len(out.uuid) + len(out.q_reason) == n
    # the columns line up
    for column in (out.name, out.created_at, out.payload, out.source_key, out.ordinal):
        assert len(column) == len(out.uuid)
    for column in (out.q_raw, out.q_source_key, out.q_ordinal):
        assert len(column) == len(out.q_reason)
    assert set(out.source_key) <= {name} and set(out.q_source_key) <= {name}

    if "reasons" in exp:
        assert len(exp["reasons"]) == len(out.q_reason)
        for want, got in zip(exp["reasons"], out.q_reason):
            assert want in got
    if "raw_records" in exp:
        for want, got in zip(exp["raw_records"], out.q_raw, strict=True):
            if want is None:
                assert got is None
            else:
                assert got is not None and want in got, (want, got)
    if "q_ordinals" in exp:
        assert out.q_ordinal == exp["q_ordinals"]
    for uuid, text in exp.get("payload_texts", {}).items():
        assert out.payload[out.uuid.index(uuid)] == text, uuid
    for uuid, payload in exp.get("payloads", {}).items():
        got = json.loads(out.payload[out.uuid.index(uuid)])
        assert ordered(got) == ordered(payload)
    for uuid, created_at in exp.get("created_at", {}).items():
        got = out.created_at[out.uuid.index(uuid)]
        assert got == created_at and type(got) is type(created_at)

    # every valid record: the contract's rules hold, payload is a JSON object without the common fields
    for u, nm, c, p in zip(out.uuid, out.name, out.created_at, out.payload):
        assert validate_fields(u, nm, c) is None
        assert type(c) in (int, float) and 0 <= c < MAX_CREATED_AT
        value = json.loads(p, parse_int=str)  # (a payload may hold integers of any length)
        assert type(value) is dict and not (COMMON & value.keys())
        p.encode("utf-8")  # storable as UTF-8 (Parquet strings)
        u.encode("utf-8")
        nm.encode("utf-8")
    # every quarantine row has a reason, and its raw text is storable
    for raw, reason in zip(out.q_raw, out.q_reason):
        assert reason.strip()
        if raw is not None:
            raw.encode("utf-8")
    # ordinals are the positions of the records in the object: 0..n-1, each once
    if n and out.q_ordinal != [None]:
        assert sorted(out.ordinal + out.q_ordinal) == list(range(n))
        assert out.ordinal == sorted(out.ordinal)


def readable_case_names() -> list[str]:
    return [n for n in all_case_names() if n.startswith("large_") or load_case(n)[1].get("raw_records") != [None]]


def test_unreadable_cases_are_unreadable():
    for name in set(all_case_names()) - set(readable_case_names()):
        with pytest.raises(parse.UnreadableObject):
            decompress(load_case(name)[0])


@pytest.mark.parametrize("name", readable_case_names())
def test_fast_and_careful_paths_agree(name):
    """The careful path alone gives exactly what parse_object (fast path when it can) gives."""
    data, _ = load_case(name)
    body = decompress(data)
    _, whole = parsed(name, data)
    careful = RecordColumns()
    n = parse._parse_careful(name, body, careful)
    assert n == whole.records
    assert_same_records(whole, careful)


def assert_same_records(a: RecordColumns, b: RecordColumns) -> None:
    assert a.uuid == b.uuid
    assert a.name == b.name
    assert a.created_at == b.created_at
    assert [type(x) for x in a.created_at] == [type(x) for x in b.created_at]
    assert a.payload == b.payload  # both cut it out of the record's text
    assert a.source_key == b.source_key
    assert a.ordinal == b.ordinal
    assert a.q_raw == b.q_raw
    assert a.q_reason == b.q_reason
    assert a.q_source_key == b.q_source_key
    assert a.q_ordinal == b.q_ordinal


FAST_PATH_CASES = [
    "concat_no_delimiter.json",
    "ndjson_lf.json",
    "ndjson_crlf.json",
    "ndjson_no_final_newline.json",
    "gzip_multi_member.json.gz",
    "derived_named_fields.json",
    "lossless_payload.json",
    "lossless_payload_fast.json",
    "large_record_ndjson.json",
]


@pytest.mark.parametrize("name", FAST_PATH_CASES)
def test_fast_path_is_taken_and_matches_careful_path(name):
    """Guards the comparison above: these well-formed objects really run the fast path."""
    data, _ = load_case(name)
    body = decompress(data)
    fast = RecordColumns()
    n = parse._parse_fast(name, body, fast)
    assert n is not None
    careful = RecordColumns()
    assert parse._parse_careful(name, body, careful) == n
    assert_same_records(fast, careful)


@pytest.mark.parametrize(
    "name",
    [
        "strings_with_braces_and_newlines.json",
        "validation_rules.json",
        "validation_rules_careful.json",
        "invalid_utf8_ndjson.json",
        "non_object_values_concat.json",
        "escaped_unicode.json",
        "payload_as_received.json",
        "numbers_as_received.json",
    ],
)
def test_fast_path_declines_what_it_would_get_wrong(name):
    """Splitting inside strings, invalid records (for their exact reasons), NaN, numbers beyond
    double range, invalid UTF-8, non-object framing, escapes in the common fields and layouts the
    payload shortcut doesn't know need the careful path."""
    data, _ = load_case(name)
    out = RecordColumns()
    assert parse._parse_fast(name, decompress(data), out) is None
    assert out == RecordColumns()  # declining leaves no partial output behind


def test_fast_and_careful_paths_agree_on_random_well_formed_objects():
    rng = random.Random(20251120)
    values = [None, True, False, 0, -1, 2**53, 1.5, 1e-7, 1e300, "", "}{", "a\nb", "\u00e9\U0001F600", [], {}]

    def rand_value(depth=0):
        r = rng.random()
        if depth < 3 and r < 0.15:
            return [rand_value(depth + 1) for _ in range(rng.randint(0, 3))]
        if depth < 3 and r < 0.3:
            return {f"k{i}": rand_value(depth + 1) for i in range(rng.randint(0, 3))}
        return rng.choice(values)

    for trial in range(40):
        lines = []
        for i in range(rng.randint(1, 30)):
            rec = {
                "event_uuid": rng.choice([f"u{trial}-{i}", "", 5, None]) if rng.random() < 0.1 else f"u{trial}-{i}",
                "event_name": rng.choice(["a", "a:b", "a::c", ":x", "x:y:z"]),
                "created_at": rng.choice([0, 1.5, 1700000000.123456, -1, 4102444800, "1", True, 86399.9999999]),
            }
            for j in range(rng.randint(0, 4)):
                rec[f"f{j}"] = rand_value()
            lines.append(json.dumps(rec, separators=(",", ":"), ensure_ascii=rng.random() < 0.5).encode())
        body = rng.choice([b"", b"\n", b"\r\n"]).join(lines)
        fast = RecordColumns()
        n = parse._parse_fast("k", body, fast)
        careful = RecordColumns()
        m = parse._parse_careful("k", body, careful)
        assert m == len(lines)
        if n is not None:
            assert n == m
            assert_same_records(fast, careful)


# --- Targeted tests ----------------------------------------------------------------------


def rec(uuid: str, **payload) -> bytes:
    d = {"event_uuid": uuid, "event_name": "page:view", "created_at": 1700000000.5, **payload}
    return json.dumps(d, separators=(",", ":")).encode()


def test_ordinals_are_positions_inside_each_object():
    body = b"\n".join([rec("a"), b"[1]", rec("b"), b'{"event_uuid":"x"', rec("c"), b"", b"", rec("d")]) + b"\n"
    out = RecordColumns()
    assert parse_object("obj-1", body, out) == 6
    assert out.uuid == ["a", "b", "c", "d"]
    assert out.ordinal == [0, 2, 4, 5]
    assert out.q_ordinal == [1, 3]
    # a second object in the same batch starts again at 0 and keeps its own key
    assert parse_object("obj-2", gzip.compress(rec("e") + b"nope" + rec("f")), out) == 3
    assert out.uuid == ["a", "b", "c", "d", "e", "f"]
    assert out.ordinal == [0, 2, 4, 5, 0, 2]
    assert out.source_key == ["obj-1"] * 4 + ["obj-2"] * 2
    assert out.q_ordinal == [1, 3, 1]
    assert out.q_source_key == ["obj-1", "obj-1", "obj-2"]
    assert out.records_per_object == {"obj-1": 6, "obj-2": 3}
    assert out.records == 9


def test_concatenated_ordinals_match_newline_delimited_ordinals():
    records = [rec("a"), b"42", rec("b"), rec("c", s="}{")]
    concat, ndjson = RecordColumns(), RecordColumns()
    parse_object("k", b"".join(records), concat)
    parse_object("k", b"\n".join(records), ndjson)
    assert concat.ordinal == ndjson.ordinal == [0, 2, 3]
    assert concat.q_ordinal == ndjson.q_ordinal == [1]


def test_quarantine_keeps_the_original_text_of_a_malformed_record():
    bad = b'{"event_uuid": "b",   "event_name": "page:view", "created_at": 1, "x": [1, 2,, 3]}'
    out = RecordColumns()
    parse_object("k", rec("a") + b"\n" + bad + b"\n" + rec("c") + b"\n", out)
    assert out.uuid == ["a", "c"]
    assert out.q_raw == [bad.decode()]
    assert out.q_reason[0].startswith("malformed JSON: ")
    assert out.q_ordinal == [1]


def test_quarantine_keeps_the_original_text_of_an_invalid_record():
    """Validation failures keep the record's text as received, spacing and field order included."""
    text = '{ "created_at": "soon",  "event_name": "a:b", "event_uuid": "u1", "z": 1 }'
    for body in (text.encode(), text.encode() + b"\n", text.encode() + b"\r\n"):
        out = RecordColumns()
        assert parse_object("k", body, out) == 1
        assert out.q_raw == [text]
        assert out.q_reason == ["created_at must be a JSON number (epoch seconds), got string 'soon'"]


def test_truncated_record_in_concatenated_stream_keeps_following_records():
    cut = b'{"event_uuid":"b","event_name":"page:view","created_at":17'
    out = RecordColumns()
    parse_object("k", rec("a") + cut + rec("c") + rec("d") + rec("e"), out)
    assert out.uuid == ["a", "c", "d", "e"]
    assert out.q_raw == [cut.decode()]
    assert out.ordinal == [0, 2, 3, 4]


def test_truncated_record_inside_a_string_keeps_following_records():
    cut = b'{"event_uuid":"b","event_name":"page:view","created_at":1,"note":"half a str'
    out = RecordColumns()
    parse_object("k", rec("a") + cut + rec("c") + rec("d"), out)
    assert out.uuid == ["a", "c", "d"]
    assert out.q_raw == [cut.decode()]


def test_invalid_utf8_is_quarantined_never_replaced_in_curated_data():
    bad = b'{"event_uuid":"b","event_name":"page:view","created_at":1,"s":"\xc0\xaf\xff"}'
    out = RecordColumns()
    parse_object("k", gzip.compress(rec("a", s="\u00e9") + bad + rec("c", s="\u65e5")), out)
    assert out.uuid == ["a", "c"]
    assert [json.loads(p)["s"] for p in out.payload] == ["\u00e9", "\u65e5"]
    assert all("\ufffd" not in p for p in out.payload)
    assert out.q_reason == [contract.Reason.NOT_UTF8]
    assert out.q_raw == ['{"event_uuid":"b","event_name":"page:view","created_at":1,"s":"\ufffd\ufffd\ufffd"}']


def test_record_containing_u_fffd_legitimately_is_valid():
    """A real U+FFFD in valid UTF-8 is data, not a decoding error."""
    out = RecordColumns()
    parse_object("k", rec("a", s="\ufffd") + b"\n", out)
    assert out.uuid == ["a"]
    assert json.loads(out.payload[0]) == {"s": "\ufffd"}


def test_unreadable_object_is_one_quarantine_row_and_other_objects_still_parse():
    good = gzip.compress(rec("a") + rec("b"))
    out = RecordColumns()
    assert parse_object("bad.gz", good[:-10], out) == 1
    assert parse_object("good.gz", good, out) == 2
    assert out.uuid == ["a", "b"]
    assert out.q_raw == [None]
    assert out.q_source_key == ["bad.gz"]
    assert out.q_ordinal == [None]
    assert out.q_reason[0].startswith("object could not be decompressed: ")
    assert len(out.q_reason[0]) > len("object could not be decompressed: ")  # carries the detail
    assert out.records_per_object == {"bad.gz": 1, "good.gz": 2}


def test_compression_is_told_by_magic_bytes():
    body = rec("a") + b"\n"
    assert decompress(body) == body
    assert decompress(gzip.compress(body)) == body
    assert decompress(gzip.compress(body[:10]) + gzip.compress(body[10:])) == body
    assert decompress(b"") == b""
    assert decompress(b"\x1f") == b"\x1f"  # one magic byte is not gzip
    with pytest.raises(parse.UnreadableObject):
        decompress(b"\x1f\x8b\x08garbage")
    for key in ("a.gz", "a.json", "a", "a.gzip"):
        for data in (body, gzip.compress(body)):
            _, out = parsed(key, data)
            assert out.uuid == ["a"], (key, data[:2])


def test_empty_and_whitespace_objects_hold_no_records():
    for data in (b"", b" ", b"\n", b"\r\n\r\n", b" \t\r\n ", gzip.compress(b""), gzip.compress(b"\n\n"), b"\xef\xbb\xbf"):
        n, out = parsed("k", data)
        assert n == 0 and out.records_per_object == {"k": 0}
        assert out.uuid == [] and out.q_reason == []


def test_pretty_printed_records_with_crlf():
    recs = [json.loads(rec(u)) for u in ("a", "b")]
    body = b"".join(json.dumps(r, indent=3).replace("\n", "\r\n").encode() + b"\r\n" for r in recs)
    _, out = parsed("k", body)
    assert out.uuid == ["a", "b"] and out.q_reason == []


def test_one_mib_record_in_every_framing():
    blob = "}{\\n\n" + "x" * (1024 * 1024 - 200)
    big = rec("big", blob=blob)
    assert 1024 * 1024 - 200 < len(big) <= 1024 * 1024
    for sep in (b"", b"\n", b"\r\n"):
        for compress in (False, True):
            body = sep.join([rec("a"), big, rec("c")]) + sep
            _, out = parsed("k", gzip.compress(body) if compress else body)
            assert out.uuid == ["a", "big", "c"]
            assert json.loads(out.payload[1]) == {"blob": blob}


def test_many_records_in_one_object_all_arrive():
    body = b"".join(rec(f"u{i}", i=i) for i in range(5000))
    n, out = parsed("k", gzip.compress(body))
    assert n == 5000 and out.uuid == [f"u{i}" for i in range(5000)]
    assert out.ordinal == list(range(5000))


def test_random_objects_with_malformed_records_lose_nothing():
    """Every good record arrives, in order, whatever the framing and wherever the bad ones are."""
    rng = random.Random(7)
    bad_pieces = [
        b'{"event_uuid":"bad","event_name":"x","created_at":1,,}',
        b'{"event_uuid":"bad","event_na',
        b'{"event_uuid":"bad","event_name":"x","created_at":1,"s":"\xff"}',
        b'{"event_uuid":"bad","event_name":"x","created_at":"1"}}',
        b"nope",
    ]
    # (Not a bare "]" or "}" right after a good record that follows a truncated one: the
    # resync heuristic reads "{...}]" as a value nested inside the broken record.)
    for trial in range(60):
        framing = rng.choice(["concat", "lf", "crlf"])
        sep = {"concat": b"", "lf": b"\n", "crlf": b"\r\n"}[framing]
        pieces, good = [], []
        for i in range(rng.randint(1, 25)):
            if rng.random() < 0.25:
                pieces.append(rng.choice(bad_pieces))
            else:
                uuid = f"t{trial}-{i}"
                good.append(uuid)
                pieces.append(rec(uuid, s=rng.choice(["", "}{", "a\nb", '{"event_uuid":"fake"}', "\u00e9"])))
        body = sep.join(pieces)
        if framing != "concat" and rng.random() < 0.5:
            body += sep
        data = gzip.compress(body) if rng.random() < 0.5 else body
        n, out = parsed("k", data)
        assert out.uuid == good, (trial, body)
        assert len(out.uuid) + len(out.q_reason) == n
        assert "fake" not in out.uuid and "bad" not in out.uuid
        assert all(r is not None for r in out.q_raw)
        # the bad pieces' text is all in quarantine
        joined = "".join(out.q_raw)
        for piece in pieces:
            if piece in bad_pieces:
                assert piece.decode("utf-8", "replace") in joined, (trial, piece, out.q_raw)


def test_parser_limits_never_raise():
    """A record the standard decoder can't handle (nesting depth, huge integers as common fields)
    is quarantined; a huge integer in the payload is kept as received."""
    deep = b'{"event_uuid":"d","event_name":"x","created_at":1,"p":' + b"[" * 3000 + b"]" * 3000 + b"}"
    deep_obj = b'{"event_uuid":"o","event_name":"x","created_at":1,"p":' + b'{"a":' * 3000 + b"1" + b"}" * 3000 + b"}"
    deep_cut = b'{"event_uuid":"c","p":' + b"[" * 3000
    long_uuid = b'{"event_uuid":-' + b"9" * 4400 + b',"event_name":"x","created_at":1}'
    for bad in (deep, deep_obj, deep_cut, long_uuid):
        for sep in (b"", b"\n"):
            body = sep.join([rec("a"), bad, rec("b")]) + b"\n"
            n, out = parsed("k", body)
            assert out.uuid == ["a", "b"]
            assert n == 3 and len(out.q_reason) == 1
            assert out.q_raw[0] == bad.decode()
            assert out.q_ordinal == [1]
    digits = b'{"event_uuid":"n","event_name":"x","created_at":1,"p":-' + b"9" * 4400 + b"}"
    n, out = parsed("k", rec("a") + digits + b"\n")
    assert out.uuid == ["a", "n"] and out.payload[1] == '{"p":-' + "9" * 4400 + "}"
    # and where the payload is cut by walking the members (the common ones are not first)
    scattered = b'{"p":' + b"9" * 4400 + b',"event_uuid":"s","q":NaN0,"event_name":"x","created_at":1}'
    n, out = parsed("k", scattered.replace(b',"q":NaN0', b',"q":[1E5]'))
    assert out.uuid == ["s"] and out.payload == ['{"p":' + "9" * 4400 + ',"q":[1E5]}']


def test_nesting_just_inside_the_limits_is_valid_or_quarantined_never_raises():
    for depth in range(900, 1010, 7):
        body = b'{"event_uuid":"d","event_name":"x","created_at":1,"p":' + b"[" * depth + b"]" * depth + b"}"
        n, out = parsed("k", body)
        assert n == 1 and len(out.uuid) + len(out.q_reason) == 1
        if out.uuid:
            assert out.payload[0] == '{"p":' + "[" * depth + "]" * depth + "}"
        else:
            assert out.q_raw == [body.decode()]


def test_integers_wider_than_64_bits_survive_exactly():
    values = [2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63) - 1, 10**40, 123456789012345678901234567890, 10**4000]
    for v in values:
        body = b'{"event_uuid":"a","event_name":"x","created_at":1,"v":' + str(v).encode() + b"}"
        _, out = parsed("k", body)
        assert out.uuid == ["a"]
        assert json.loads(out.payload[0])["v"] == v
        assert str(v) in out.payload[0]


def test_floats_in_payload_survive_exactly():
    values = [0.1, 1e-7, 5e-324, 1.7976931348623157e308, 1700000000.123456, -2.5, 123456789.98765432]
    body = b"\n".join(rec(f"u{i}", v=v) for i, v in enumerate(values))
    _, out = parsed("k", body)
    assert [json.loads(p)["v"] for p in out.payload] == values


def test_duplicate_keys_last_one_wins_on_both_paths():
    body = b'{"event_uuid":"a","event_uuid":"b","event_name":"x","created_at":1,"k":1,"k":2}'
    for text in (body, body + b"\n", body.replace(b",", b",\n  ")):
        _, out = parsed("k", text)
        assert out.uuid == ["b"]
        assert json.loads(out.payload[0]) == {"k": 2}


# --- Validation rules (contract.validate_fields) ---------------------------------------


@pytest.mark.parametrize(
    "uuid, name, created_at, reason",
    [
        ("u", "a", 0, None),
        ("u", "a", 0.0, None),
        ("u", "a:b", 1700000000.123456, None),
        ("u", "a::c", 4102444799, None),
        ("u", "a", math.nextafter(MAX_CREATED_AT, 0), None),
        ("u", "a:", 1, None),
        ("\u00e9", "\u00e9", 1, None),
        (MISSING, "a", 1, "event_uuid is missing"),
        ("", "a", 1, "event_uuid must be a non-empty string, got string ''"),
        (None, "a", 1, "event_uuid must be a non-empty string, got null"),
        (1, "a", 1, "event_uuid must be a non-empty string, got number 1"),
        (True, "a", 1, "event_uuid must be a non-empty string, got boolean True"),
        ({"a": 1}, "a", 1, "event_uuid must be a non-empty string, got object"),
        ("u", MISSING, 1, "event_name is missing"),
        ("u", None, 1, "event_name must be a string, got null"),
        ("u", 5, 1, "event_name must be a string, got number 5"),
        ("u", ["a"], 1, "event_name must be a string, got array"),
        ("u", "", 1, "event_name has an empty first"),
        ("u", ":", 1, "event_name has an empty first"),
        ("u", ":x", 1, "event_name has an empty first"),
        ("u", "::", 1, "event_name has an empty first"),
        ("u", "a", MISSING, "created_at is missing"),
        ("u", "a", None, "created_at must be a JSON number (epoch seconds), got null"),
        ("u", "a", "1700000000", "created_at must be a JSON number (epoch seconds), got string"),
        ("u", "a", True, "created_at must be a JSON number (epoch seconds), got boolean"),
        ("u", "a", False, "created_at must be a JSON number (epoch seconds), got boolean"),
        ("u", "a", [1], "created_at must be a JSON number (epoch seconds), got array"),
        ("u", "a", float("nan"), "created_at is NaN"),
        ("u", "a", float("inf"), "outside 0 <= created_at < 4102444800"),
        ("u", "a", float("-inf"), "outside 0 <= created_at < 4102444800"),
        ("u", "a", -1, "outside"),
        ("u", "a", -1e-9, "outside"),
        ("u", "a", MAX_CREATED_AT, "created_at 4102444800 is outside"),
        ("u", "a", float(MAX_CREATED_AT), "outside"),
        ("u", "a", 10**30, "outside"),
    ],
)
def test_validate_fields(uuid, name, created_at, reason):
    got = validate_fields(uuid, name, created_at)
    if reason is None:
        assert got is None
    else:
        assert got is not None and reason in got


def test_first_failing_rule_is_reported_in_contract_order():
    assert validate_fields(MISSING, MISSING, MISSING) == "event_uuid is missing"
    assert validate_fields("u", MISSING, "x") == "event_name is missing"
    assert validate_fields("u", ":x", "x") == contract.Reason.EMPTY_TYPE


def test_every_reason_is_a_sentence_a_person_can_act_on():
    _, out = parsed("k", load_case("validation_rules.json")[0])
    assert len(set(out.q_reason)) >= 10
    for reason in out.q_reason:
        assert not re.search(r"\{(detail|got|kind|value|field)", reason) and len(reason) > 15


def test_truncated_record_with_many_nested_objects_keeps_following_records():
    """Firehose objects are one line: a broken record with many nested objects must not swallow the rest."""
    cut = rec("cut", items=[{"sku": i, "tags": [{"t": "x"}]} for i in range(200)])[:-40]
    following = [f"g{i}" for i in range(300)]
    body = rec("a") + cut + b"".join(rec(u) for u in following)
    for data in (body, gzip.compress(body)):
        n, out = parsed("k", data)
        assert out.uuid == ["a", *following]
        assert out.q_raw == [cut.decode()]
        assert n == 302


def test_only_json_whitespace_separates_records():
    """Vertical tab and form feed are not JSON whitespace: a line of them is quarantined, not dropped."""
    for junk in (b"\x0c", b"\x0b", b"  \x0b\t", b"\x00"):
        body = rec("a") + b"\n" + junk + b"\n" + rec("b") + b"\n"
        n, out = parsed("k", body)
        assert out.uuid == ["a", "b"]
        assert n == 3 and len(out.q_reason) == 1, junk
        assert out.q_raw[0].strip(" \t") == junk.decode().strip(" \t")
    # JSON whitespace (and a BOM) between records is not a record
    n, out = parsed("k", rec("a") + b"\n \t\r\n\r\n\xef\xbb\xbf" + rec("b") + b" \t\r\n")
    assert n == 2 and out.uuid == ["a", "b"] and out.q_reason == []


def test_malformed_pretty_printed_record_does_not_lose_its_neighbours():
    """Resuming at the next line shreds a broken pretty-printed record into several quarantine
    rows; the contract only asks that the good records around it arrive and nothing is lost."""
    good = [json.dumps(json.loads(rec(u, n={"a": [1, 2]})), indent=2).encode() for u in ("a", "c", "d")]
    broken = b'{\n  "event_uuid": "b",\n  "event_name": oops,\n  "created_at": 1\n}'
    body = good[0] + b"\n" + broken + b"\n" + good[1] + b"\n" + good[2] + b"\n"
    n, out = parsed("k", body)
    assert out.uuid == ["a", "c", "d"]
    assert len(out.uuid) + len(out.q_reason) == n
    assert "".join(out.q_raw).replace("\n", "").replace(" ", "") == broken.decode().replace("\n", "").replace(" ", "")


def test_one_member_gzip_takes_the_one_call_path_and_everything_else_the_reader():
    """decompress gives what ISA-L's gzip reader gives for every gzip case (or fails where it
    fails); the one-call path takes exactly the objects that are one whole member."""
    from isal import igzip

    one_member = {"gzip.json.gz", "gzip_named_plain.json", "gzip_no_extension", "gzip_empty.gz"}
    seen = set()
    for name in all_case_names():
        data = load_case(name)[0]
        if data[:2] != parse.GZIP_MAGIC:
            continue
        seen.add(name)
        assert (parse._one_member(data) is not None) == (name in one_member), name
        try:
            expected = igzip.decompress(data)
        except Exception:  # noqa: BLE001 - whatever the reader raises, decompress must refuse too
            with pytest.raises(parse.UnreadableObject):
                decompress(data)
            continue
        assert decompress(data) == expected, name
    assert one_member <= seen and {"gzip_multi_member.json.gz", "corrupt_bad_crc.json.gz"} <= seen
