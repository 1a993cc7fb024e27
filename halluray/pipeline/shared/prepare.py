"""What every stage does first: set this process's threads, create the run directory, write the stage's resolved
config there."""

from __future__ import annotations

import torch

from halluray.config import ExperimentConfig
from halluray.io import atomic_write_text
from halluray.layout import RunLayout


def prepare(cfg: ExperimentConfig, stage: str) -> RunLayout:
    """Set this process's threads, create the run directory and write the stage's resolved config."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    layout = RunLayout(cfg)
    layout.run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(layout.stage_config(stage), cfg.to_yaml())
    return layout
