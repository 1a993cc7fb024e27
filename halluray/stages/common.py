"""What every stage shares: thread setup, the resolved config in the run directory, sampling on rollout actors."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Callable

import torch

from actors.group import ActorGroup, init_ray
from actors.roles import Role
from halluray.config import ExperimentConfig
from halluray.factuality.checking import Checker, build_checker
from halluray.io import atomic_write_json, atomic_write_text
from halluray.layout import RunLayout
from halluray.models.generation import SamplingParams, merge_rollouts


def prepare(cfg: ExperimentConfig, stage: str) -> RunLayout:
    """Set this process's threads, create the run directory and write the stage's resolved config."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    layout = RunLayout(cfg)
    layout.run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(layout.stage_config(stage), cfg.to_yaml())
    return layout


def sample_with_rollouts(cfg: ExperimentConfig, model_path: str, prompts: list[str], params: SamplingParams,
                         seed: int) -> list[str]:
    """Responses from rollout actors (HF generate on CPU, the same workers PPO uses)."""
    init_ray(cfg)
    group = ActorGroup.from_config(Role.ROLLOUT, cfg)
    try:
        group.run("init_model", model_path, None, cfg.model.trust_remote_code)
        return merge_rollouts(group.run_sharded("generate", prompts, params, seed))["responses"]
    finally:
        group.shutdown()


def checker_for(cfg: ExperimentConfig) -> Checker:
    """The run's fact checker (`fact_checker`): the world's exact checker reads the run's world file; an HTTP
    checker caches its replies in the run directory, so a re-run stage sends nothing twice."""
    layout = RunLayout(cfg)
    return build_checker(cfg, world_path=layout.world_json, cache_path=layout.fact_checker_cache)


Step = tuple[str, Callable[[ExperimentConfig], object], ExperimentConfig, tuple[str, ...]]
"""(name, runner, its config, the config sections its output depends on besides its inputs)."""


def run_cached(cfg: ExperimentConfig, steps: list[Step], who: str) -> dict[str, float]:
    """Run `steps` in order, skipping a step whose fingerprint (its sections and every earlier step's) matches
    the stamp it left; return each step's seconds (as it ran, or when it last ran) and their total."""
    stamps = RunLayout(cfg).stamps
    wall: dict[str, float] = {}
    upstream = ""
    for name, runner, stage_cfg, sections in steps:
        dump = stage_cfg.model_dump(mode="json")
        upstream = hashlib.sha256(json.dumps([upstream, {s: dump[s] for s in sections}], sort_keys=True)
                                  .encode()).hexdigest()
        stamp = stamps / f"{name}.json"
        if stamp.is_file() and json.loads(stamp.read_text())["fingerprint"] == upstream:
            wall[name] = json.loads(stamp.read_text())["seconds"]
            print(f"{who}: {name}: up to date, reused ({wall[name]:.0f} s when it ran)")
            continue
        print(f"{who}: {name} ...", flush=True)
        t0 = time.time()
        runner(stage_cfg)
        wall[name] = round(time.time() - t0, 1)
        atomic_write_json(stamp, {"fingerprint": upstream, "seconds": wall[name]})
    wall["total"] = round(sum(wall.values()), 1)
    return wall
