"""Loading the hand-made Firehose objects in tests/cases/ (helpers, not tests)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

CASES_DIR = Path(__file__).resolve().parents[1] / "cases"


def load_make_cases():
    """tests/cases/make_cases.py as a module (tests/ is not a package)."""
    name = "_lake_test_make_cases"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, CASES_DIR / "make_cases.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def stored_case_names() -> list[str]:
    return sorted(p.name[: -len(".expected.json")] for p in CASES_DIR.glob("*.expected.json"))


def all_case_names() -> list[str]:
    return stored_case_names() + sorted(load_make_cases().GENERATED_ONLY)


def load_case(name: str) -> tuple[bytes, dict]:
    """(raw object bytes, expectation) of a case; generated-only cases are built now."""
    make_cases = load_make_cases()
    if name in make_cases.GENERATED_ONLY:
        return _built()[name]
    data = (CASES_DIR / name).read_bytes()
    expected = json.loads((CASES_DIR / f"{name}.expected.json").read_text(encoding="utf-8"))
    return data, expected


_BUILT: dict | None = None


def _built() -> dict:
    global _BUILT
    if _BUILT is None:
        _BUILT = load_make_cases().build()
    return _BUILT


def built_cases() -> dict:
    """Everything make_cases.build() produces: name -> (bytes, expectation)."""
    return _built()
