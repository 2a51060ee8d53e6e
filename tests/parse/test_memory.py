"""Memory follows the object, not more: parsing one big object (clean, and newline-delimited
with malformed lines) peaks at a bounded multiple of its size. Measured as the peak RSS of a
fresh process (no timing); the bench measures a 128 MiB object."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from lake_pipeline.devtools.corpora import MIB, write_big_object
from lake_pipeline.storage.objects import LocalStorage

SIZE = 24 * MIB

_PARSE = """
import json, resource, sys
from lake_pipeline.parse.reader import ChunkParser
from lake_pipeline.storage.objects import LocalStorage
storage = LocalStorage(sys.argv[1])
objects = list(storage.list())
with ChunkParser(storage.uri) as warm:  # imports and DuckDB's first query, on a small object
    warm.parse_bulk(objects[:1])
with open("/proc/self/status") as f:
    before = int(f.read().split("VmRSS:")[1].split()[0])
before = max(before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
with ChunkParser(storage.uri) as parser:
    parsed = parser.parse_bulk(objects[1:])
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"grew": (peak - before) * 1024, "records": parsed.records.height,
                  "quarantined": parsed.quarantine.height, "unit_objects": parser.handed_over.unit_objects}))
"""


def _peak_growth(root) -> dict:
    done = subprocess.run([sys.executable, "-c", _PARSE, str(root)], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.heavy
@pytest.mark.parametrize("dirty, bound", [(False, 6), (True, 9)])
def test_parsing_a_big_object_holds_a_bounded_multiple_of_it(tmp_path, dirty, bound):
    storage = LocalStorage(str(tmp_path / "raw"))
    start = datetime(2025, 11, 20, 13, tzinfo=UTC)
    storage.write("0000-warm-up", b'{"event_uuid":"w","event_name":"x","created_at":1}')
    records = write_big_object(storage, start=start, size=SIZE)
    (big,) = [o for o in storage.list() if o.key != "0000-warm-up"]
    if dirty:  # newline-delimited, and every 100th line cut in half
        lines = (storage.root / big.key).read_bytes().replace(b'}{"event_uuid"', b'}\n{"event_uuid"').split(b"\n")
        for i in range(0, len(lines), 100):
            lines[i] = lines[i][: len(lines[i]) // 2]
        (storage.root / big.key).write_bytes(b"\n".join(lines))
    got = _peak_growth(storage.root)
    assert got["records"] + (got["quarantined"] if dirty else 0) >= records  # it did parse the object
    assert got["unit_objects"] == (1 if dirty else 0)
    assert got["grew"] < bound * SIZE, f"peak grew by {got['grew'] / SIZE:.1f}x the object"
