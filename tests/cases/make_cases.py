"""Build the hand-made Firehose objects in tests/cases/ (DESIGN.md §2, "Raw objects").

Each case is a raw object ``<name>`` plus ``<name>.expected.json``:

- ``records_read``: records the object holds (an unreadable object counts as one);
- ``valid_uuids``: event_uuids of the valid records, in arrival order;
- ``quarantined``: number of quarantine rows;
- optional ``reasons``: one substring per quarantine row, in order;
- optional ``raw_records``: per quarantine row, null (raw_record must be null) or a
  substring the raw_record must contain;
- optional ``q_ordinals``: per quarantine row, its position in the object;
- optional ``payloads``: event_uuid -> the exact payload object (key order included);
- optional ``payload_texts``: event_uuid -> the exact payload text (the record's own text
  with the common members cut out: numbers, escapes and spacing as received);
- optional ``created_at``: event_uuid -> the exact created_at.

Run ``python tests/cases/make_cases.py`` to (re)write the files; the test suite
checks that the committed files equal what this script builds. Cases listed in
``GENERATED_ONLY`` (the ~1 MiB records) are built at test time and not stored.
The gzip members are written with mtime=0, so the output is deterministic.
"""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

CASES_DIR = Path(__file__).resolve().parent
T = 1700000000.5  # a valid created_at (2023-11-14T22:13:20.5Z)
MIB = 1024 * 1024
GENERATED_ONLY = {"large_record_ndjson.json", "large_record_concat.json"}

Case = tuple[bytes, dict]


def rec(uuid, name="page:view", created_at=T, **payload) -> dict:
    return {"event_uuid": uuid, "event_name": name, "created_at": created_at, **payload}


def compact(d: object) -> bytes:
    return json.dumps(d, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def gz(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, filename="") as f:
        f.write(data)
    return buf.getvalue()


def expect(records_read: int, valid: list[str], quarantined: int = 0, **extra) -> dict:
    return {"records_read": records_read, "valid_uuids": valid, "quarantined": quarantined, **extra}


def payload_of(d: dict) -> dict:
    return {k: v for k, v in d.items() if k not in ("event_uuid", "event_name", "created_at")}


def _abc(prefix: str, n: int = 3) -> list[dict]:
    return [rec(f"{prefix}-{i}", payload_n=i) for i in range(1, n + 1)]


def build() -> dict[str, Case]:
    cases: dict[str, Case] = {}

    def add(name: str, data: bytes, expected: dict) -> None:
        assert name not in cases, name
        cases[name] = (data, expected)

    # --- Framing -------------------------------------------------------------------
    rs = _abc("concat")
    add("concat_no_delimiter.json", b"".join(compact(r) for r in rs),
        expect(3, ["concat-1", "concat-2", "concat-3"], payloads={r["event_uuid"]: payload_of(r) for r in rs}))

    rs = _abc("lf")
    add("ndjson_lf.json", b"".join(compact(r) + b"\n" for r in rs), expect(3, ["lf-1", "lf-2", "lf-3"]))

    rs = _abc("crlf")
    add("ndjson_crlf.json", b"".join(compact(r) + b"\r\n" for r in rs), expect(3, ["crlf-1", "crlf-2", "crlf-3"]))

    rs = _abc("nofinal", 2)
    add("ndjson_no_final_newline.json", compact(rs[0]) + b"\n" + compact(rs[1]),
        expect(2, ["nofinal-1", "nofinal-2"]))

    rs = [rec("pretty-1", nested={"a": [1, {"b": None}]}), rec("pretty-2", msg="x"), rec("pretty-3")]
    add("pretty_printed.json", b"\n".join(json.dumps(r, indent=2).encode() for r in rs) + b"\n",
        expect(3, ["pretty-1", "pretty-2", "pretty-3"], payloads={r["event_uuid"]: payload_of(r) for r in rs}))

    # pretty-printed records concatenated with no delimiter ("}{" across lines)
    add("pretty_printed_concat.json", b"".join(json.dumps(r, indent=4).encode() for r in rs[:2]),
        expect(2, ["pretty-1", "pretty-2"]))

    mixed = (compact(rec("mix-1")) + compact(rec("mix-2")) + b"\n" + compact(rec("mix-3")) + b"\r\n\r\n  "
             + compact(rec("mix-4")) + b"\t" + compact(rec("mix-5")) + b"\n")
    add("mixed_delimiters.json", mixed, expect(5, [f"mix-{i}" for i in range(1, 6)]))

    tricky = [
        rec("str-1", text='}{"event_uuid":"fake-1","event_name":"x","created_at":1}{'),
        rec("str-2", text="line1\nline2\r\nline3", braces="{}{}}}{{", quote='say "}{" \\ done'),
        rec("str-3", text='}\n{"event_uuid":"fake-2","event_name":"x","created_at":1}\n{'),
    ]
    add("strings_with_braces_and_newlines.json", b"".join(compact(r) for r in tricky),
        expect(3, ["str-1", "str-2", "str-3"], payloads={r["event_uuid"]: payload_of(r) for r in tricky}))
    add("strings_with_braces_and_newlines_ndjson.json", b"".join(compact(r) + b"\n" for r in tricky),
        expect(3, ["str-1", "str-2", "str-3"], payloads={r["event_uuid"]: payload_of(r) for r in tricky}))

    add("bom.json", b"\xef\xbb\xbf" + b"".join(compact(r) + b"\n" for r in _abc("bom", 2)),
        expect(2, ["bom-1", "bom-2"]))
    add("bom_concat.json", b"\xef\xbb\xbf" + b"".join(compact(r) for r in _abc("bomc", 2)),
        expect(2, ["bomc-1", "bomc-2"]))

    # --- Compression: magic bytes, never the extension -------------------------------
    add("gzip.json.gz", gz(b"".join(compact(r) for r in _abc("gz"))), expect(3, ["gz-1", "gz-2", "gz-3"]))
    add("gzip_multi_member.json.gz",
        gz(b"".join(compact(r) for r in _abc("m1", 2))) + gz(b"".join(compact(r) for r in _abc("m2", 2))),
        expect(4, ["m1-1", "m1-2", "m2-1", "m2-2"]))
    # a record split across two gzip members: the members form one byte stream
    body = b"".join(compact(r) for r in _abc("split"))
    add("gzip_member_splits_record.json.gz", gz(body[:70]) + gz(body[70:]),
        expect(3, ["split-1", "split-2", "split-3"]))
    add("plain_named_gz.json.gz", b"".join(compact(r) + b"\n" for r in _abc("plaingz", 2)),
        expect(2, ["plaingz-1", "plaingz-2"]))
    add("gzip_named_plain.json", gz(b"".join(compact(r) for r in _abc("gzplain", 2))),
        expect(2, ["gzplain-1", "gzplain-2"]))
    add("gzip_no_extension", gz(compact(rec("noext-1"))), expect(1, ["noext-1"]))
    add("gzip_empty.gz", gz(b""), expect(0, []))

    # --- Empty objects ---------------------------------------------------------------
    add("empty.json", b"", expect(0, []))
    add("whitespace_only.json", b" \n\r\n\t  \n\n", expect(0, []))

    # --- Unreadable objects: one quarantine row, raw_record null -----------------------
    good = gz(b"".join(compact(r) for r in _abc("trunc")))
    unreadable = dict(reasons=["could not be decompressed"], raw_records=[None], q_ordinals=[None])
    add("corrupt_truncated.json.gz", good[: len(good) // 2], expect(1, [], 1, **unreadable))
    add("corrupt_garbage.json.gz", b"\x1f\x8b" + b"this is not deflate data" * 4, expect(1, [], 1, **unreadable))
    add("corrupt_bad_crc.json.gz", good[:-8] + b"\x00\x00\x00\x00" + good[-4:], expect(1, [], 1, **unreadable))
    add("corrupt_second_member.json.gz", good + good[:20], expect(1, [], 1, **unreadable))

    # --- Malformed records: quarantined, parsing resumes --------------------------------
    bad = b'{"event_uuid":"bad-1","event_name":"x","created_at":1, oops}'
    add("ndjson_malformed_middle.json",
        compact(rec("ok-1")) + b"\n" + bad + b"\n" + compact(rec("ok-2")) + b"\n" + compact(rec("ok-3")) + b"\n",
        expect(4, ["ok-1", "ok-2", "ok-3"], 1, reasons=["malformed JSON"], raw_records=[bad.decode()],
               q_ordinals=[1]))

    bad_nested = b'{"event_uuid":"bad-2","nested":{"a":{"b":1}},"list":[{"c":2}], oops}'
    add("ndjson_malformed_nested.json",
        compact(rec("okn-1")) + b"\r\n" + bad_nested + b"\r\n" + compact(rec("okn-2")) + b"\r\n",
        expect(3, ["okn-1", "okn-2"], 1, reasons=["malformed JSON"], raw_records=[bad_nested.decode()],
               q_ordinals=[1]))

    truncated = b'{"event_uuid":"cut-2","event_name":"page:view","created_at":1700000000.5,"pay'
    add("concat_truncated_middle.json",
        compact(rec("cut-1")) + truncated + compact(rec("cut-3")) + compact(rec("cut-4")),
        expect(4, ["cut-1", "cut-3", "cut-4"], 1, reasons=["malformed JSON"], raw_records=[truncated.decode()],
               q_ordinals=[1]))

    truncated_nested = b'{"event_uuid":"cutn-2","event_name":"page:view","obj":{"k":[1,2'
    add("concat_truncated_nested.json",
        compact(rec("cutn-1")) + truncated_nested + compact(rec("cutn-3", obj={"k": [{"z": 1}]})) + compact(rec("cutn-4")),
        expect(4, ["cutn-1", "cutn-3", "cutn-4"], 1, reasons=["malformed JSON"],
               raw_records=[truncated_nested.decode()], q_ordinals=[1]))

    truncated_value = b'{"event_uuid":"cutv-2","event_name":"page:view","created_at":17000'
    add("concat_truncated_number_lines.json",
        compact(rec("cutv-1")) + truncated_value + compact(rec("cutv-3")) + b"\n" + compact(rec("cutv-4")) + b"\n",
        expect(4, ["cutv-1", "cutv-3", "cutv-4"], 1, reasons=["malformed JSON"],
               raw_records=[truncated_value.decode()], q_ordinals=[1]))

    # a record cut off at the end of its line; the next line's record still arrives
    cut_eol = b'{"event_uuid":"eol-2","event_name":"page:view",'
    add("ndjson_truncated_end_of_line.json",
        compact(rec("eol-1")) + b"\n" + cut_eol + b"\n" + compact(rec("eol-3")) + b"\n",
        expect(3, ["eol-1", "eol-3"], 1, reasons=["malformed JSON"], raw_records=[cut_eol.decode()], q_ordinals=[1]))

    add("truncated_last_record.json",
        compact(rec("last-1")) + compact(rec("last-2")) + b'{"event_uuid":"last-3","event_na',
        expect(3, ["last-1", "last-2"], 1, reasons=["malformed JSON"], raw_records=['"last-3"'], q_ordinals=[2]))

    # trailing blanks after records are not part of them
    invalid_name = compact(rec("tw-2", name=":x"))
    add("ndjson_trailing_whitespace.json",
        compact(rec("tw-1")) + b"  \n" + invalid_name + b" \t\r\n" + compact(rec("tw-3")) + b"\t\n",
        expect(3, ["tw-1", "tw-3"], 1, reasons=["empty first"], raw_records=[invalid_name.decode()], q_ordinals=[1]))

    # --- Invalid UTF-8: that record quarantined, never decoded with replacement -------
    bad_utf8 = b'{"event_uuid":"utf-2","event_name":"page:view","created_at":1700000000.5,"name":"caf\xe9 \xff\xfe"}'
    add("invalid_utf8_ndjson.json",
        compact(rec("utf-1", label="caf\u00e9")) + b"\n" + bad_utf8 + b"\n" + compact(rec("utf-3", label="\u65e5\u672c")) + b"\n",
        expect(3, ["utf-1", "utf-3"], 1, reasons=["not valid UTF-8"], raw_records=["caf\ufffd \ufffd\ufffd"],
               q_ordinals=[1], payloads={"utf-1": {"label": "caf\u00e9"}, "utf-3": {"label": "\u65e5\u672c"}}))
    add("invalid_utf8_concat.json",
        compact(rec("utfc-1")) + bad_utf8.replace(b"utf-2", b"utfc-2") + compact(rec("utfc-3")),
        expect(3, ["utfc-1", "utfc-3"], 1, reasons=["not valid UTF-8"], raw_records=['"utfc-2"'], q_ordinals=[1]))
    # an invalid byte outside any string also breaks the JSON; the reason is still the encoding
    broken = b'{"event_uuid":"utfx-2",\xc3\x28"event_name":"x"}'
    add("invalid_utf8_outside_string.json",
        compact(rec("utfx-1")) + b"\n" + broken + b"\n" + compact(rec("utfx-3")) + b"\n",
        expect(3, ["utfx-1", "utfx-3"], 1, reasons=["not valid UTF-8"], raw_records=['"utfx-2",\ufffd('],
               q_ordinals=[1]))
    # a UTF-16 surrogate encoded as UTF-8 bytes (CESU-8) is not valid UTF-8 either
    add("invalid_utf8_surrogate_bytes.json",
        compact(rec("cesu-1")) + b"\n" + b'{"event_uuid":"cesu-2","event_name":"x","created_at":1,"s":"\xed\xa0\x80"}\n',
        expect(2, ["cesu-1"], 1, reasons=["not valid UTF-8"], q_ordinals=[1]))

    # --- Non-object JSON values --------------------------------------------------------
    add("non_object_values.json",
        b'[1,2,{"event_uuid":"in-array"}]\n"a string"\n42\n-1.5e3\nnull\ntrue\n' + compact(rec("obj-1")) + b"\n{}\n",
        expect(8, ["obj-1"], 7,
               reasons=["JSON array", "JSON string", "JSON number", "JSON number", "JSON null", "JSON boolean",
                        "event_uuid is missing"],
               raw_records=['[1,2,{"event_uuid":"in-array"}]', '"a string"', "42", "-1.5e3", "null", "true", "{}"],
               q_ordinals=[0, 1, 2, 3, 4, 5, 7]))
    add("non_object_values_concat.json",
        b'[' + compact(rec("in-list")) + b']' + compact(rec("objc-1")) + b'"s"' + compact(rec("objc-2")),
        expect(4, ["objc-1", "objc-2"], 2, reasons=["JSON array", "JSON string"], q_ordinals=[0, 2]))

    # --- Validation rules (one line each, the fast path) --------------------------------
    rules: list[tuple[bytes, str | None]] = [
        (compact({"event_name": "x", "created_at": T}), "event_uuid is missing"),
        (compact(rec("")), "event_uuid must be a non-empty string"),
        (compact(rec(123)), "event_uuid must be a non-empty string"),
        (compact(rec(None)), "event_uuid must be a non-empty string"),
        (compact(rec(["u"])), "event_uuid must be a non-empty string"),
        (compact({"event_uuid": "v-noname", "created_at": T}), "event_name is missing"),
        (compact(rec("v-name-int", name=7)), "event_name must be a string"),
        (compact(rec("v-name-null", name=None)), "event_name must be a string"),
        (compact(rec("v-name-colon", name=":x")), "empty first"),
        (compact(rec("v-name-empty", name="")), "empty first"),
        (compact({"event_uuid": "v-no-at", "event_name": "x"}), "created_at is missing"),
        (compact(rec("v-at-str", created_at="1700000000")), "created_at must be a JSON number"),
        (compact(rec("v-at-true", created_at=True)), "created_at must be a JSON number"),
        (compact(rec("v-at-false", created_at=False)), "created_at must be a JSON number"),
        (compact(rec("v-at-null", created_at=None)), "created_at must be a JSON number"),
        (compact(rec("v-at-obj", created_at={"s": 1})), "created_at must be a JSON number"),
        (compact(rec("v-at-neg", created_at=-1)), "outside"),
        (compact(rec("v-at-negfrac", created_at=-0.000001)), "outside"),
        (compact(rec("v-at-max", created_at=4102444800)), "outside"),
        (compact(rec("v-at-maxf", created_at=4102444800.0)), "outside"),
        (compact(rec("v-at-big", created_at=99999999999)), "outside"),
        (compact(rec("ok-zero", created_at=0)), None),
        (compact(rec("ok-zero-float", created_at=0.0)), None),
        (compact(rec("ok-frac", created_at=1700000000.123456)), None),
        (compact(rec("ok-exp", created_at=1.7e9)), None),
        (compact(rec("ok-last", created_at=4102444799.999)), None),
        (compact(rec("ok-subtype-empty", name="a:")), None),
        (compact(rec("ok-unicode-name", name="\u00e9v\u00e9nement:cr\u00e9\u00e9")), None),
    ]
    body = b"".join(line + b"\n" for line, _ in rules)
    valid = [json.loads(line)["event_uuid"] for line, r in rules if r is None]
    reasons = [r for _, r in rules if r is not None]
    add("validation_rules.json", body,
        expect(len(rules), valid, len(reasons), reasons=reasons,
               q_ordinals=[i for i, (_, r) in enumerate(rules) if r is not None],
               created_at={"ok-zero": 0, "ok-zero-float": 0.0, "ok-frac": 1700000000.123456, "ok-exp": 1.7e9,
                           "ok-last": 4102444799.999}))

    # --- Validation rules that need the standard library's decoder (the careful path) ---
    careful = [
        (b'{"event_uuid":"c-nan","event_name":"x","created_at":NaN}', "created_at is NaN"),
        (b'{"event_uuid":"c-inf","event_name":"x","created_at":Infinity}', "outside"),
        (b'{"event_uuid":"c-ninf","event_name":"x","created_at":-Infinity}', "outside"),
        (b'{"event_uuid":"c-huge","event_name":"x","created_at":1e400}', "outside"),
        (b'{"event_uuid":"c-wide","event_name":"x","created_at":123456789012345678901234567890}', "outside"),
        (b'{"event_uuid":"c-ok","event_name":"x","created_at":0}', None),
        (b'{"event_uuid":"c-nan-payload","event_name":"x","created_at":1,"v":NaN}', "NaN or Infinity"),
        (b'{"event_uuid":"c-surrogate\\ud800","event_name":"x","created_at":1}', "surrogate in event_uuid"),
        (b'{"event_uuid":"c-surrogate-name","event_name":"x\\udfff","created_at":1}', "surrogate in event_name"),
        (b'{"event_uuid":"c-surrogate-payload","event_name":"x","created_at":1,"s":"\\ud800"}', None),
        (b'{"event_uuid":"c-ok-2","event_name":"x","created_at":1700000000.25}', None),
    ]
    body = b"".join(line + b"\n" for line, _ in careful)
    add("validation_rules_careful.json", body,
        expect(len(careful), ["c-ok", "c-surrogate-payload", "c-ok-2"], 8,
               reasons=[r for _, r in careful if r is not None],
               raw_records=[line.decode() for line, r in careful if r is not None],
               payloads={"c-ok": {}, "c-surrogate-payload": {"s": "\ud800"}, "c-ok-2": {}},
               created_at={"c-ok": 0, "c-ok-2": 1700000000.25}))

    # --- Fields named like derived/lineage columns stay in payload ---------------------
    shadow = rec("shadow-1", name="real:sub", created_at=86400.0, event_type="fake", event_subtype="fake-sub",
                 created_datetime="1999-01-01T00:00:00.000000Z", event_date="1999-01-01", payload={"p": 1},
                 _source_key="fake-key", _batch_id=-1, _ordinal=99)
    add("derived_named_fields.json", compact(shadow) + b"\n",
        expect(1, ["shadow-1"], payloads={"shadow-1": payload_of(shadow)}, created_at={"shadow-1": 86400.0}))

    # --- Lossless payload ----------------------------------------------------------------
    lossless = rec(
        "lossless-1",
        unicode="h\u00e9llo w\u00f6rld \u65e5\u672c\u8a9e \U0001F600 \u05e2\u05d1\u05e8\u05d9\u05ea e\u0301 \u2028 \u0000 \x7f",
        nested={"a": {"b": {"c": [1, [2, [3, {"d": None}]], {}]}}, "empty_list": [], "empty_obj": {}},
        nothing=None,
        flags=[True, False, None],
        big=123456789012345678901234567890,
        negative_big=-123456789012345678901234567890,
        u64_max=18446744073709551615,
        i64_over=9223372036854775808,
        floats=[0.1, 1e-7, 1.5e300, -0.0, 2.5],
        empty="",
        zeta_first_key_order=1,
        alpha_after=2,
    )
    add("lossless_payload.json", compact(lossless),
        expect(1, ["lossless-1"], payloads={"lossless-1": payload_of(lossless)}))
    # the same without wide integers (so it can take the fast path)
    fast = {k: v for k, v in lossless.items() if k not in ("big", "negative_big", "u64_max", "i64_over")}
    fast["event_uuid"] = "lossless-2"
    add("lossless_payload_fast.json", compact(fast) + b"\n" + compact(rec("lossless-3", escaped="\\u00e9")) + b"\n",
        expect(2, ["lossless-2", "lossless-3"],
               payloads={"lossless-2": payload_of(fast), "lossless-3": {"escaped": "\\u00e9"}}))
    add("escaped_unicode.json", b'{"event_uuid":"esc-\\u00e9","event_name":"\\u0070age:view","created_at":1,'
        b'"s":"\\u00e9\\ud83d\\ude00\\n\\t\\"\\/"}',
        expect(1, ["esc-\u00e9"], payloads={"esc-\u00e9": {"s": "\u00e9\U0001F600\n\t\"/"}}))

    # numbers keep their text as received, whatever their size or precision (contract.py)
    numbers = [b"1.0", b"1E5", b"-0.0", b"0.10000000000000001", b"12345678901234567890", b"0.0007427441630921683",
               b"1e-19", b"-1e+9999", b"123123e100000", b"123e-10000000", b"-0", b"2.50", b"1E+2", b"0e0"]
    lines = [b'{"event_uuid":"num-%d","event_name":"x","created_at":1,"v":%s,"list":[%s]}' % (i, n, n)
             for i, n in enumerate(numbers)]
    spaced = b'{"event_uuid": "num-s", "event_name": "x", "created_at": 1E9, "v": [1.0, 1E5, -0.0], "w": 1e-19}'
    in_string = b'{"event_uuid":"num-str","event_name":"x","created_at":1,"id":"12345678901234567890"}'
    add("numbers_as_received.json", b"\n".join(lines) + b"\n" + spaced + in_string,
        expect(len(numbers) + 2, [f"num-{i}" for i in range(len(numbers))] + ["num-s", "num-str"],
               payload_texts={**{f"num-{i}": '{"v":%s,"list":[%s]}' % (n.decode(), n.decode())
                                 for i, n in enumerate(numbers)},
                              "num-s": '{"v": [1.0, 1E5, -0.0], "w": 1e-19}', "num-str": '{"id":"12345678901234567890"}'},
               created_at={"num-s": 1e9}))
    # created_at is the one number read as a value: the nearest double
    add("created_at_beyond_double.json",
        b'{"event_uuid":"cad-1","event_name":"x","created_at":1e400}'
        b'{"event_uuid":"cad-2","event_name":"x","created_at":123e-10000000}'
        b'{"event_uuid":"cad-3","event_name":"x","created_at":-1e-400}'
        b'{"event_uuid":"cad-4","event_name":"x","created_at":-0}'
        b'{"event_uuid":"cad-5","event_name":"x","created_at":1700000000.12345678901234567890}',
        expect(5, ["cad-2", "cad-3", "cad-4", "cad-5"], 1, reasons=["created_at inf is outside"],
               created_at={"cad-2": 0.0, "cad-3": -0.0, "cad-4": 0, "cad-5": 1700000000.1234567}))
    # the payload is the record's text with the common members (and their separators) cut out
    layouts = [
        (b'{ "event_uuid" : "lay-1" , "event_name":"x",\t"created_at":1 , "a" : [1, 2] ,"b":{}  }',
         '{ "a" : [1, 2] ,"b":{}  }'),
        (rb'{"a":1, "b": "\u00e9\/", "event_uuid":"lay-2", "event_name":"x", "created_at":1}', r'{"a":1, "b": "\u00e9\/"}'),
        (b'{"a":1,"event_uuid":"lay-3","b":2,"event_name":"x","c":3,"created_at":1,"d":4}', '{"a":1,"b":2,"c":3,"d":4}'),
        (b'{"event_uuid":"lay-4","event_name":"x","created_at":1}', "{}"),
        (b'{"event_name":"x","created_at":1,"event_uuid":"lay-5","a":null,"a":true}', '{"a":null,"a":true}'),
        (b'{"event_uuid":"lay-6-first","event_name":"x","created_at":1,"event_uuid":"lay-6"}', "{}"),
        (rb'{"event_uuid":"lay-7-first","event_name":"x","created_at":1,"event\u005fuuid":"lay-7","k":1}', '{"k":1}'),
        (rb'{"event_uuid":"lay-\u0038","event_name":"x","created_at":1,"k":"\ud800"}', r'{"k":"\ud800"}'),
        (b'{"m":{"event_uuid":"inner"},"event_uuid":"lay-9","event_name":"x","created_at":1}', '{"m":{"event_uuid":"inner"}}'),
        (rb'{"event_uuid":"lay-10","created_at":1,"event_name":"x","s":"}{\"event_uuid\":1}"}', r'{"s":"}{\"event_uuid\":1}"}'),
    ]
    pretty = json.dumps(rec("lay-11", nested={"a": [1, 2]}, z=None), indent=2).encode()
    add("payload_as_received.json", b"\n".join(r for r, _ in layouts) + b"\n" + pretty + b"\n",
        expect(len(layouts) + 1, ["lay-1", "lay-2", "lay-3", "lay-4", "lay-5", "lay-6", "lay-7", "lay-8", "lay-9",
                                  "lay-10", "lay-11"],
               payload_texts={**{json.loads(r)["event_uuid"]: p for r, p in layouts},
                              "lay-11": '{\n  "nested": {\n    "a": [\n      1,\n      2\n    ]\n  },\n  "z": null\n}'}))
    # NaN and Infinity are not JSON numbers: quarantined wherever they are; as text they are data
    add("non_finite_literals.json",
        b'{"event_uuid":"nf-1","event_name":"x","created_at":1,"v":NaN}\n'
        b'{"event_uuid":"nf-2","event_name":"x","created_at":1,"v":[1,-Infinity]}\n'
        b'{"event_uuid":"nf-3","event_name":"x","created_at":1,"v":"NaN Infinity","w":"inf"}\n'
        b'{"event_uuid":"nf-4","event_name":"x","created_at":1,"v":nan}\n'
        b'{"event_uuid":"nf-5","event_name":"x","created_at":1,"v":{"w":Infinity}}\n',
        expect(5, ["nf-3"], 4, reasons=["NaN or Infinity", "NaN or Infinity", "malformed JSON", "NaN or Infinity"],
               q_ordinals=[0, 1, 3, 4]))
    # what DuckDB accepts and strict JSON does not, next to near misses that are plain data
    add("lenient_json.json",
        b'{"event_uuid":"len-1","event_name":"x","created_at":1,"v":[1,2,]}\n'
        b'{"event_uuid":"len-2","event_name":"x","created_at":1,"v":1,}\n'
        b'{"event_uuid":"len-3","event_name":"x","created_at":1,"v":"[1,2,]","w":",}"}\n'
        b'{"event_uuid":"len-4","event_name":"x","created_at":1,"v":[1,2]}{"event_uuid":"len-5","event_name":"x",'
        b'"created_at":1,"v":{"a":1,},"k":1}{"event_uuid":"len-6","event_name":"x","created_at":1}\n',
        expect(6, ["len-3", "len-4", "len-6"], 3, reasons=["malformed JSON", "malformed JSON", "malformed JSON"],
               q_ordinals=[0, 1, 4]))

    # --- Parser limits never fail the object ---------------------------------------------
    deep = b'{"event_uuid":"deep-2","event_name":"x","created_at":1,"p":' + b"[" * 5000 + b"]" * 5000 + b"}"
    add("deeply_nested_record.json",
        compact(rec("deep-1")) + b"\n" + deep + b"\n" + compact(rec("deep-3")) + compact(rec("deep-4")) + b"\n",
        expect(4, ["deep-1", "deep-3", "deep-4"], 1, reasons=["nested too deeply"], q_ordinals=[1]))
    # an integer longer than Python converts is kept as received in the payload; as a common
    # field it is refused
    long_int = b'{"event_uuid":"longint-2","event_name":"x","created_at":1,"n":' + b"7" * 5000 + b"}"
    long_at = b'{"event_uuid":"longint-4","event_name":"x","created_at":' + b"7" * 5000 + b"}"
    add("long_integer_record.json",
        compact(rec("longint-1")) + long_int + compact(rec("longint-3")) + b"\n" + long_at + b"\n",
        expect(4, ["longint-1", "longint-2", "longint-3"], 1, reasons=["created_at is an integer longer than"],
               q_ordinals=[3], payload_texts={"longint-2": '{"n":' + "7" * 5000 + "}"}))
    # nesting: MAX_NESTING (512) levels are valid, one more is not
    at_limit = b'{"event_uuid":"nest-1","event_name":"x","created_at":1,"p":' + b"[" * 511 + b"]" * 511 + b"}"
    over_limit = b'{"event_uuid":"nest-2","event_name":"x","created_at":1,"p":' + b"[" * 512 + b"]" * 512 + b"}"
    brackets_in_strings = (b'{"event_uuid":"nest-3","event_name":"x","created_at":1,"p":"' + b"[{" * 600 + b'",'
                           b'"q":[[[{"r":[]}]]]}')
    add("nesting_limit.json", at_limit + b"\n" + over_limit + over_limit + b"\n" + brackets_in_strings + b"\n",
        expect(4, ["nest-1", "nest-3"], 2, reasons=["nested too deeply", "nested too deeply"], q_ordinals=[1, 2],
               raw_records=[over_limit.decode(), over_limit.decode()]))

    # --- ~1 MiB records (built at test time, not stored) ---------------------------------
    big_ndjson = rec("big-2", blob="a" * (MIB - 200))
    line = compact(big_ndjson)
    assert MIB - 300 < len(line) <= MIB
    add("large_record_ndjson.json", compact(rec("big-1")) + b"\n" + line + b"\n" + compact(rec("big-3")) + b"\n",
        expect(3, ["big-1", "big-2", "big-3"], payloads={"big-2": payload_of(big_ndjson)}))
    chunk = 'text with }{ and a newline\n and "quotes" }{\\n ' + "x" * 1000
    items = [chunk] * ((MIB - 1000) // len(compact(chunk)))
    big_concat = rec("bigc-2", items=items, nested={"inner": {"event_uuid": "not-a-record"}})
    blob = compact(big_concat)
    assert MIB - 3000 < len(blob) <= MIB
    add("large_record_concat.json", compact(rec("bigc-1")) + blob + compact(rec("bigc-3")),
        expect(3, ["bigc-1", "bigc-2", "bigc-3"], payloads={"bigc-2": payload_of(big_concat)}))

    return cases


def main() -> None:
    for old in CASES_DIR.iterdir():
        if old.is_file() and old.name != Path(__file__).name:
            old.unlink()
    for name, (data, expected) in build().items():
        if name in GENERATED_ONLY:
            continue
        (CASES_DIR / name).write_bytes(data)
        (CASES_DIR / f"{name}.expected.json").write_text(
            json.dumps(expected, indent=2, ensure_ascii=True) + "\n", encoding="utf-8"
        )


if __name__ == "__main__":
    main()
