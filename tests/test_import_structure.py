"""The architecture's rules, checked on the source: no import cycle, the driver imports no stage, a stage asks
the run layout (not another stage) where things are, and the PPO math imports no distributed or model library."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("halluray", "actors")
STAGE_HELPERS = {"halluray.stages.common", "halluray.stages.heldout", "halluray.stages.heldout_qa",
                 "halluray.stages.unfamiliarity_records"}
ORCHESTRATORS = {"halluray.stages.demo", "halluray.stages.demo_real", "halluray.stages.qa_experiment",
                 "halluray.stages.qa_rl", "halluray.stages.mcq_experiment", "halluray.stages.mcq_rl",
                 "halluray.stages.demo_seeds", "halluray.stages.qa_seeds",
                 "halluray.stages.sweep"}
"""Experiments made of other stages: they may call a stage's `run`; every other stage imports none."""


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
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
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


def test_the_driver_imports_no_stage(graph):
    stages = {m for m in _reachable(graph, "halluray.driver") if m.startswith("halluray.stages")}
    assert not stages, f"halluray.driver reaches {sorted(stages)}"


def test_a_stage_imports_only_helpers_unless_it_runs_other_stages(graph):
    for name, deps in graph.items():
        if name.startswith("halluray.stages.") and name not in ORCHESTRATORS | STAGE_HELPERS:
            other = {d for d in deps if d.startswith("halluray.stages.") and d not in STAGE_HELPERS}
            assert not other, f"{name} imports the stage(s) {sorted(other)}: ask halluray.layout instead"
    for helper in STAGE_HELPERS & set(graph):
        assert not {d for d in graph[helper] if d.startswith("halluray.stages.") and d not in STAGE_HELPERS}


def test_lower_layers_import_no_stage_and_no_driver(graph):
    for name, deps in graph.items():
        if name.startswith(("halluray.ppo", "halluray.models", "halluray.world", "halluray.data", "halluray.eval",
                            "halluray.factuality", "halluray.reward_models", "actors", "halluray.layout",
                            "halluray.config", "halluray.preflight", "halluray.checkpoints", "halluray.secrets")):
            bad = {d for d in deps if d.startswith("halluray.stages") or d == "halluray.driver"}
            assert not bad, f"{name} imports {sorted(bad)}"


def test_ppo_math_imports_no_distributed_or_model_library():
    ppo_modules = sorted(m for m in _modules() if m.startswith("halluray.ppo"))
    code = ("import sys\n" + "".join(f"import {m}\n" for m in ppo_modules) +
            "print(sorted(m for m in ('ray', 'deepspeed', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]", f"importing halluray.ppo pulls in {out.stdout.strip()}"
