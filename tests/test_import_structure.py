"""The architecture's rules, checked on the source (docs/architecture.md): no import cycle, no import that runs
up the layers, no stage / experiment / campaign that imports another of its kind, and PPO math that imports no
distributed or model library."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("halluray", "actors")
LAYERS = (
    ("halluray.errors", "halluray.stopping"),
    ("halluray.secrets", "halluray.io"),
    ("halluray.config",),
    ("halluray.layout", "halluray.logging", "halluray.checkpoints", "halluray.run_lock"),
    ("halluray.world",),
    ("halluray.models",),
    ("halluray.ppo", "halluray.data"),
    ("halluray.factuality",),
    ("halluray.eval", "halluray.reward_models", "halluray.preflight"),
    ("actors",),
    ("halluray.trainers",),
    ("halluray.pipeline",),
    ("halluray.experiments",),
    ("halluray.campaigns", "halluray.bench"),
    ("halluray.cli",),
)
"""The layers, lowest first: a module imports only from its own layer and those below it. Within a layer,
packages do not import each other (listed together because neither needs the other)."""
KINDS = ("halluray.pipeline", "halluray.experiments", "halluray.campaigns")
"""Folders of runnable units: a module directly in one (a stage, an experiment, a campaign) imports no other
module directly in it; what they share lives in its `shared/` subfolder, which imports none of them."""


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Project modules `name` imports anywhere in its body (top level or inside functions)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)  # `from pkg import submodule`
    return {m for m in found if m in known and m != name}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    known = _modules()
    return {name: _imports(name, path, known) for name, path in known.items()}


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


def test_the_project_has_no_import_cycle(graph):
    cycles = sorted(name for name in graph if name in _reachable(graph, name))
    assert not cycles, f"modules that import themselves through others: {cycles}"


def test_a_cycle_would_be_found():
    # The check above must be able to fail: a two-module loop is a cycle.
    assert "a" in _reachable({"a": {"b"}, "b": {"a"}}, "a")


def layer_of(module: str) -> int:
    """The index in LAYERS of the package `module` belongs to (the package `halluray` itself sits at the bottom)."""
    for i, layer in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in layer):
            return i
    if module == "halluray":
        return 0
    raise AssertionError(f"{module} is in no layer of LAYERS: add its package there")


def package_of(module: str) -> str:
    return next(p for layer in LAYERS for p in layer if module == p or module.startswith(p + "."))


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Imports that run up the layers, or across packages of one layer."""
    bad = []
    for name, deps in graph.items():
        for d in deps:
            if d == "halluray" or name == "halluray":
                continue
            if layer_of(d) > layer_of(name) or (layer_of(d) == layer_of(name) and package_of(d) != package_of(name)):
                bad.append(f"{name} -> {d}")
    return sorted(bad)


def kind_violations(graph: dict[str, set[str]]) -> list[str]:
    """A stage importing another stage (an experiment another experiment, a campaign another campaign), or a
    `shared/` module importing any of them."""
    bad = []
    for kind in KINDS:
        units = {m for m in graph if m.startswith(kind + ".") and m.count(".") == kind.count(".") + 1
                 and m != f"{kind}.shared"}
        for name, deps in graph.items():
            if name in units or name.startswith(f"{kind}.shared"):
                bad += [f"{name} -> {d}" for d in sorted(deps & units)]
    return bad


def test_every_module_sits_in_a_layer(graph):
    for name in graph:
        layer_of(name)


def test_no_import_runs_up_the_layers(graph):
    assert upward_imports(graph) == []


def test_an_upward_import_would_be_found():
    assert upward_imports({"halluray.models.build": {"halluray.trainers.ppo_driver"},
                           "halluray.trainers.ppo_driver": set()}) == [
        "halluray.models.build -> halluray.trainers.ppo_driver"]


def test_no_stage_experiment_or_campaign_imports_another_of_its_kind(graph):
    assert kind_violations(graph) == []


def test_a_stage_importing_another_stage_would_be_found(graph):
    # The check above must be able to fail: the sft stage reading the world stage's module is a violation.
    planted = {**graph, "halluray.pipeline.sft": graph["halluray.pipeline.sft"] | {"halluray.pipeline.world"}}
    assert kind_violations(planted) == ["halluray.pipeline.sft -> halluray.pipeline.world"]


def test_ppo_math_imports_no_distributed_or_model_library():
    ppo_modules = sorted(m for m in _modules() if m.startswith("halluray.ppo"))
    code = ("import sys\n" + "".join(f"import {m}\n" for m in ppo_modules) +
            "print(sorted(m for m in ('ray', 'deepspeed', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]", f"importing halluray.ppo pulls in {out.stdout.strip()}"
