"""PPO smoke runs for the fault tests: the smoke world, a fresh copy per run, and what they compare (a run's
metrics step by step, without wall-clock values)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from halluray import checkpoints
from halluray.cli import main
from halluray.io import read_jsonl

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs" / "demo" / "ppo-smoke.yaml"


def step_metrics(out: Path, run: str = "ppo-smoke") -> dict[int, dict]:
    """The last record of each PPO step (a redone step is logged again), without wall-clock values."""
    rows = [r for r in read_jsonl(out / run / "metrics.jsonl") if r["stage"] == "ppo" and "reward_mean" in r]
    return {r["step"]: {k: v for k, v in r.items() if isinstance(v, float) and not k.startswith("time")
                        and k != "tokens_per_s"} for r in rows}


def assert_same_steps(run: dict, baseline: dict, steps: int) -> None:
    """Steps 1..`steps` all logged, each equal to the uninterrupted run's."""
    assert sorted(run) == sorted(baseline) == list(range(1, steps + 1))
    for step in baseline:
        assert run[step] == pytest.approx(baseline[step], rel=1e-5, abs=1e-7), f"step {step}"


def smoke_world_dir(tmp_path_factory) -> Path:
    """The smoke config's world and base model, made once per test module: `<tmp>/ppo-smoke`."""
    out = tmp_path_factory.mktemp("world")
    assert main(["world", "--config", str(SMOKE), f"run.output_dir={out}"]) == 0
    return out / "ppo-smoke"


def fresh(world: Path, dest: Path) -> Path:
    """An output directory holding a copy of the smoke world, for one PPO run."""
    shutil.copytree(world, dest / "ppo-smoke")
    return dest


def reseal(step: Path) -> None:
    """Recompute the size and checksum of every part in `step`'s manifest: a tampered step that passes
    `checkpoints.problem`, so only what loads the parts can stop it."""
    manifest = json.loads((step / checkpoints.MANIFEST).read_text())
    for name in manifest["files"]:
        part = step / name
        manifest["files"][name] = {"size": part.stat().st_size, "sha256": checkpoints.sha256(part)}
    (step / checkpoints.MANIFEST).write_text(json.dumps(manifest))


def driver_env() -> dict[str, str]:
    """The environment of a `halluray` driver started as a subprocess: a local Ray of its own, and not this
    process's W&B service, whose token wandb puts into os.environ (WANDB_SERVICE). A driver killed while on a
    shared service leaves its run open there, and the resume's run of the same id is then refused as in use."""
    drop = {"RAY_ADDRESS", "WANDB_SERVICE"}
    return {k: v for k, v in os.environ.items() if k not in drop} | {"PYTHONPATH": str(ROOT)}
