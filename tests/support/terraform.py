"""Parse terraform/ with python-hcl2 and resolve the simple references tests need.

Only what the wiring checks need is evaluated: string templates made of
``${var.x}``, ``${local.x.y}`` and literals, across module calls (env root ->
modules/lakehouse -> component module). Anything else (resource attributes,
function calls, conditionals) raises :class:`Unresolvable`, so a test never
compares against a half-evaluated value by accident.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2

REPO = Path(__file__).resolve().parents[2]
TERRAFORM = REPO / "terraform"
MODULES = TERRAFORM / "modules"
ENVS = TERRAFORM / "envs"
ENV_NAMES = sorted(p.stem for p in ENVS.glob("*.tfvars"))

_META_KEYS = {"__start_line__", "__end_line__", "__is_block__", "__comments__", "__inline_comments__"}


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if k not in _META_KEYS}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


@functools.cache
def load_file(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    try:
        from hcl2 import SerializationOptions  # python-hcl2 >= 7
    except ImportError as exc:  # bc-python-hcl2 (checkov's fork) owns the `hcl2` package
        raise RuntimeError(
            "tests/terraform need python-hcl2 >= 7 (`hcl2.SerializationOptions`); the installed `hcl2` "
            "package is checkov's fork bc-python-hcl2. Reinstall python-hcl2 (uv sync --reinstall-package python-hcl2)."
        ) from exc
    options = SerializationOptions(with_comments=False, explicit_blocks=False, strip_string_quotes=True)
    return _clean(hcl2.loads(text, serialization_options=options))


class Unresolvable(ValueError):
    """An expression the test resolver does not evaluate."""


@dataclass
class Module:
    """All *.tf files of one directory, merged."""

    path: Path
    resources: dict[str, dict[str, dict]] = field(default_factory=dict)
    data: dict[str, dict[str, dict]] = field(default_factory=dict)
    variables: dict[str, dict] = field(default_factory=dict)
    locals: dict[str, Any] = field(default_factory=dict)
    modules: dict[str, dict] = field(default_factory=dict)
    outputs: dict[str, dict] = field(default_factory=dict)
    terraform: list[dict] = field(default_factory=list)
    providers: list[dict] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.name

    def of_type(self, rtype: str) -> dict[str, dict]:
        return self.resources.get(rtype, {})

    def data_of_type(self, dtype: str) -> dict[str, dict]:
        return self.data.get(dtype, {})


@functools.cache
def load_module(path: Path) -> Module:
    mod = Module(path=path)
    files = sorted(path.glob("*.tf"))
    assert files, f"no .tf files in {path}"
    for f in files:
        doc = load_file(f)
        for entry in doc.get("resource", []):
            for rtype, named in entry.items():
                for rname, body in named.items():
                    assert rname not in mod.resources.get(rtype, {}), f"duplicate {rtype}.{rname} in {path}"
                    mod.resources.setdefault(rtype, {})[rname] = body
        for entry in doc.get("data", []):
            for dtype, named in entry.items():
                for dname, body in named.items():
                    mod.data.setdefault(dtype, {})[dname] = body
        for entry in doc.get("variable", []):
            mod.variables.update(entry)
        for entry in doc.get("locals", []):
            mod.locals.update(entry)
        for entry in doc.get("module", []):
            mod.modules.update(entry)
        for entry in doc.get("output", []):
            mod.outputs.update(entry)
        mod.terraform.extend(doc.get("terraform", []))
        mod.providers.extend(doc.get("provider", []))
    return mod


def all_modules() -> dict[str, Module]:
    return {p.name: load_module(p) for p in sorted(MODULES.iterdir()) if p.is_dir()}


def env_root(env: str) -> Module:
    return load_module(ENVS / env)


@functools.cache
def tfvars(env: str) -> dict[str, Any]:
    return load_file(ENVS / f"{env}.tfvars")


def ref_name(expr: Any) -> str:
    """'${aws_iam_role.run.id}' -> 'aws_iam_role.run.id' (for reference checks)."""
    assert isinstance(expr, str), expr
    m = re.fullmatch(r"\$\{(.+)\}", expr)
    return m.group(1) if m else expr


# --- Resolution -------------------------------------------------------------------

_INTERP = re.compile(r"\$\{([^{}]+)\}")
_REF = re.compile(r"(var|local)\.([A-Za-z0-9_\-]+)((?:\.[A-Za-z0-9_\-]+)*)")


class Scope:
    """Variables and locals of one module instance."""

    def __init__(self, module: Module, args: dict[str, Any] | None = None, parent: Scope | None = None, root_values: dict[str, Any] | None = None):
        self.module = module
        self.args = args or {}
        self.parent = parent
        self.root_values = root_values  # tfvars, for an env root

    def var(self, name: str) -> Any:
        decl = self.module.variables.get(name)
        if decl is None:
            raise Unresolvable(f"var.{name} is not declared in {self.module.path}")
        value = None
        if self.root_values is not None:
            value = self.root_values.get(name)
        elif name in self.args:
            value = resolve(self.args[name], self.parent)
        if value is None and "default" in decl:
            if decl.get("nullable") is False or name not in self.args:
                value = decl["default"]
        if value is None and "default" not in decl:
            raise Unresolvable(f"var.{name} of {self.module.path} has no value")
        return value

    def local(self, name: str) -> Any:
        if name not in self.module.locals:
            raise Unresolvable(f"local.{name} is not defined in {self.module.path}")
        return resolve(self.module.locals[name], self)

    def child(self, call_name: str) -> Scope:
        call = self.module.modules[call_name]
        source = (self.module.path / call["source"]).resolve()
        args = {k: v for k, v in call.items() if k not in {"source", "version", "providers", "depends_on", "count", "for_each"}}
        return Scope(load_module(source), args=args, parent=self)


_TRIMSUFFIX = re.compile(r'trimsuffix\((.+), "([^"]*)"\)')


def _lookup(expr: str, scope: Scope) -> Any:
    fn = _TRIMSUFFIX.fullmatch(expr.strip())
    if fn:
        value = _lookup(fn.group(1), scope)
        return value[: -len(fn.group(2))] if fn.group(2) and value.endswith(fn.group(2)) else value
    m = _REF.fullmatch(expr.strip())
    if not m:
        raise Unresolvable(expr)
    kind, name, rest = m.groups()
    value = scope.var(name) if kind == "var" else scope.local(name)
    for part in filter(None, rest.split(".")):
        if not isinstance(value, dict) or part not in value:
            raise Unresolvable(f"{expr}: no attribute {part!r}")
        value = value[part]
    return value


def resolve(value: Any, scope: Scope | None) -> Any:
    if scope is None:
        raise Unresolvable(f"{value!r}: no scope")
    if isinstance(value, str):
        whole = re.fullmatch(r"\$\{([^{}]+)\}", value)
        if whole:
            return _lookup(whole.group(1), scope)
        return _INTERP.sub(lambda m: str(_lookup(m.group(1), scope)), value)
    if isinstance(value, list):
        return [resolve(v, scope) for v in value]
    if isinstance(value, dict):
        return {k: resolve(v, scope) for k, v in value.items()}
    return value


def env_scope(env: str) -> Scope:
    """Scope of modules/lakehouse as instantiated by terraform/envs/<env>."""
    root = env_root(env)
    root_scope = Scope(root, root_values=tfvars(env))
    return root_scope.child("lakehouse")


def expand_locals(value: str, module: Module, depth: int = 0) -> str:
    """Inline ${local.x} string locals, leaving every other reference as text."""
    assert depth < 10, f"local cycle in {module.path}: {value}"

    def sub(m: re.Match) -> str:
        ref = _REF.fullmatch(m.group(1).strip())
        if ref and ref.group(1) == "local" and not ref.group(3):
            local = module.locals.get(ref.group(2))
            if isinstance(local, str):
                inner = re.fullmatch(r"\$\{([^{}]+)\}", local)
                return expand_locals(local if not inner else "${" + inner.group(1) + "}", module, depth + 1)
        return m.group(0)

    return _INTERP.sub(sub, value)


# --- IAM --------------------------------------------------------------------------


def policy_statements(module: Module, document: str) -> list[dict]:
    doc = module.data_of_type("aws_iam_policy_document").get(document)
    assert doc is not None, f"no aws_iam_policy_document.{document} in {module.path}"
    return doc.get("statement", [])


def role_statements(module: Module, role: str) -> list[dict]:
    """Statements of every inline policy attached to aws_iam_role.<role>."""
    statements = []
    for body in module.of_type("aws_iam_role_policy").values():
        if ref_name(body["role"]).startswith(f"aws_iam_role.{role}."):
            m = re.fullmatch(r"data\.aws_iam_policy_document\.([A-Za-z0-9_]+)\.json", ref_name(body["policy"]))
            assert m, f"inline policy of {role} in {module.path} is not an aws_iam_policy_document"
            statements.extend(policy_statements(module, m.group(1)))
    return statements
