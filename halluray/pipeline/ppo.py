"""`halluray ppo`: one PPO run (halluray/trainers/ppo_run.py) in run_dir/<ppo.name>/, with its resolved config
beside the run directory's other stages'; `--resume` continues it, `--overwrite` replaces it."""

from __future__ import annotations

from halluray.config import ExperimentConfig
from halluray.pipeline.shared.prepare import prepare
from halluray.trainers.ppo_run import run_ppo


def run(cfg: ExperimentConfig, resume: str | None = None, overwrite: bool = False) -> dict:
    """`resume`: the PPO directory `--resume` named (`cfg` is already its own config, relocated there)."""
    prepare(cfg, "ppo")
    final = run_ppo(cfg, resume=resume is not None, overwrite=overwrite)
    if final:
        print("ppo: validation " + ", ".join(f"{k.split('/')[-1]} {v:.3f}" for k, v in final.items()
                                           if isinstance(v, float)))
    return final
