"""The one caching rule of every campaign and experiment: a step reruns exactly when its fingerprint changed.

A step's fingerprint hashes the config sections its output depends on and the fingerprints of the steps whose
outputs it reads (`inputs`). After a step runs, run_dir/stamps/<name>.json keeps its fingerprint and seconds;
the next `run_steps` that meets the same fingerprint reuses the output instead of running it. An input that is
not among the steps of this call is read from its stamp (a step an enclosing campaign ran); one that was never
stamped (run by hand) counts as unknown, so its dependants run.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from halluray.config import ExperimentConfig
from halluray.io import atomic_write_json
from halluray.layout import RunLayout

WHOLE_CONFIG = "*"
"""A `sections` entry meaning every config section but `run` (where the output is written)."""


@dataclass(frozen=True)
class Step:
    name: str
    """Its stamp's name, unique in the run directory."""
    runner: Callable[[ExperimentConfig], object]
    cfg: ExperimentConfig
    """The config the runner is called with (and whose sections are hashed)."""
    sections: tuple[str, ...]
    """Top-level config keys its output depends on besides its inputs (WHOLE_CONFIG: all but `run`)."""
    inputs: tuple[str, ...] = ()
    """Names of the steps whose outputs it reads."""


def fingerprint(step: Step, inputs: dict[str, str]) -> str:
    dump = step.cfg.model_dump(mode="json")
    keys = [k for k in dump if k != "run"] if step.sections == (WHOLE_CONFIG,) else step.sections
    return hashlib.sha256(json.dumps([{k: dump[k] for k in keys}, [inputs.get(i, "") for i in step.inputs]],
                                     sort_keys=True).encode()).hexdigest()


def read_stamp(layout: RunLayout, name: str) -> dict | None:
    path = layout.stamp(name)
    return json.loads(path.read_text()) if path.is_file() else None


def run_steps(cfg: ExperimentConfig, steps: list[Step], who: str) -> dict[str, float]:
    """Run `steps` in order, each unless its stamp has its fingerprint; return each step's seconds (as it ran
    now, or when it last ran) and their total."""
    layout = RunLayout(cfg)
    known = {i: s["fingerprint"] for step in steps for i in step.inputs if (s := read_stamp(layout, i))}
    wall = {step.name: _run_or_reuse(layout, step, known, who)[0] for step in steps}
    wall["total"] = round(sum(wall.values()), 1)
    return wall


def run_step(cfg: ExperimentConfig, step: Step, who: str) -> bool:
    """`run_steps` of one step; True when it was up to date (reused, not run)."""
    layout = RunLayout(cfg)
    known = {i: s["fingerprint"] for i in step.inputs if (s := read_stamp(layout, i))}
    return _run_or_reuse(layout, step, known, who)[1]


def _run_or_reuse(layout: RunLayout, step: Step, known: dict[str, str], who: str) -> tuple[float, bool]:
    """(seconds, reused): `step` run unless its stamp has its fingerprint, which `known` then records."""
    key = known[step.name] = fingerprint(step, known)
    stamp = read_stamp(layout, step.name)
    if stamp and stamp["fingerprint"] == key:
        print(f"{who}: {step.name}: up to date, reused ({stamp['seconds']:.0f} s when it ran)")
        return stamp["seconds"], True
    print(f"{who}: {step.name} ...", flush=True)
    t0 = time.time()
    step.runner(step.cfg)
    seconds = round(time.time() - t0, 1)
    atomic_write_json(layout.stamp(step.name), {"fingerprint": key, "seconds": seconds})
    return seconds, False
