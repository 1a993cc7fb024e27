"""`halluray ppo`: PPO on Ray actor groups (the driver lives in halluray/driver.py)."""

from __future__ import annotations

from halluray.config import ExperimentConfig
from halluray.stages.common import prepare


def run(cfg: ExperimentConfig, resume: bool = False) -> dict:
    from halluray.driver import run_ppo

    _, metrics = prepare(cfg, "ppo")
    metrics.close()
    final = run_ppo(cfg, resume=resume, out_name=cfg.ppo.name)
    if final:
        print("ppo: held-out " + ", ".join(f"{k.split('/')[-1]} {v:.3f}" for k, v in final.items()
                                           if isinstance(v, float)))
    return final
