"""A campaign over seeds: each seed a whole run directory of its own (run_dir/seed-<s>/)."""

from __future__ import annotations

from halluray.config import ExperimentConfig
from halluray.layout import RunLayout


def seed_config(cfg: ExperimentConfig, seed: int) -> ExperimentConfig:
    """The config of one seed's run: run_dir/seed-<s>/ with every seed-dependent step drawn from `seed`."""
    where = RunLayout(cfg).seed_dir(seed)
    run = cfg.run.model_copy(update={"output_dir": str(where.parent), "name": where.name})
    return cfg.model_copy(update={"seed": seed, "run": run})
