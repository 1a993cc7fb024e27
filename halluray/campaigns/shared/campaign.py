"""What every campaign does around its steps: run them under the one caching rule, then write its report."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

from halluray.config import ExperimentConfig
from halluray.pipeline.shared.steps import Step, run_steps

Report = Callable[[ExperimentConfig, dict[str, float], float], dict]
"""(config, each step's seconds, this invocation's seconds) -> the campaign's results."""


def run_campaign(cfg: ExperimentConfig, steps: list[Step], who: str, report: Report) -> dict:
    """Every step not up to date, then `report` (which reads what the steps wrote)."""
    t_start = time.time()
    wall = run_steps(cfg, steps, who)
    return report(cfg, wall, time.time() - t_start)


def copy_figures(figures: dict[Path, Path]) -> None:
    """A campaign's report shows its steps' figures beside it: source -> copy."""
    for source, target in figures.items():
        shutil.copyfile(source, target)
