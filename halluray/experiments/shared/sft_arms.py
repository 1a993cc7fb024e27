"""The SFT models the experiments compare: one per target strategy, each a cached step (pipeline/shared/steps.py),
so qa-rl reuses the models qa-experiment trained with the same settings, and neither retrains an unchanged arm."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from halluray.config import ExperimentConfig
from halluray.layout import RunLayout
from halluray.pipeline import sft
from halluray.pipeline.shared.steps import Step, run_step

ARM_SECTIONS = ("seed", "world", "model", "data", "fact_checker", "unfamiliarity", "lora", "sft", "deepspeed", "actors")
"""What an SFT arm's model depends on: its data and base model, the settings of the unfamiliarity scores its
relabelling reads (when a campaign stamped the scores, their fingerprint counts too), and its own training."""


def sft_variant(cfg: ExperimentConfig, strategy: str, task: str) -> ExperimentConfig:
    """`cfg` with the SFT target strategy and task of one experiment arm (its model: RunLayout(...).sft_model())."""
    return cfg.model_copy(update={"sft": cfg.sft.model_copy(update={"strategy": strategy, "task": task})})


def train_arm(cfg: ExperimentConfig, strategy: str, task: str, who: str) -> tuple[dict, Path, bool]:
    """The arm's SFT summary and model, trained now unless its step is up to date; and whether it was reused."""
    scfg = sft_variant(cfg, strategy, task)
    layout = RunLayout(scfg)
    reused = run_step(scfg, Step(layout.sft_dir().name, sft.run, scfg, ARM_SECTIONS, ("unfamiliarity",)), who)
    return json.loads((layout.sft_dir() / "summary.json").read_text()), layout.sft_model(), reused


def sft_arms(cfg: ExperimentConfig, strategies: tuple[str, ...], task: str,
             who: str) -> Iterator[tuple[int, str, dict, Path]]:
    """(index, strategy, SFT summary, model path) per strategy, each arm trained (or reused) just before it is
    yielded."""
    for step, strategy in enumerate(strategies):
        summary, model, _ = train_arm(cfg, strategy, task, who)
        yield step, strategy, summary, model


def sft_outcome(summary: dict) -> dict:
    """The results keys of an arm's SFT run."""
    return {"relabeled": summary["relabeled"], "sft_examples": summary["examples"], "sft_seconds": summary["seconds"]}


def sft_settings(cfg: ExperimentConfig) -> dict:
    return {"steps": cfg.sft.steps, "lr": cfg.sft.lr, "batch_size": cfg.sft.batch_size}
