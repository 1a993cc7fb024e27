"""`halluray ablation`: what the paper's PPO protocol and the malformed-response rule each do on the demo world.

Four points, each the whole demo in its own directory, run_dir/ablation/<label>/, that starts as a copy of the
run directory: world, unfamiliarity, SFT, reward data and RMs are reused where the point's config leaves them
unchanged (the step fingerprints decide), so the point with the config's own settings reuses the demo's PPO runs
and evaluation, and the others redo both PPO arms and the evaluation. The run directory itself is left as the demo
wrote it. The points: the config's PPO settings (the paper's: LoRA, KL 0.5,
cliprange 0.005, a fixed budget; RLOO advantages) or the earlier demo's (full finetuning, a critic and GAE,
KL 0.2, cliprange 0.2, lr 2e-4, up to 100 steps stopped on a plateau of the RM's own validation reward), each
with the malformed penalty on (the config's) and off. Each point is a step (`ablation-<label>`) read back when
its config is unchanged. Writes run_dir/ablation/{<label>/ (a demo run directory), ablation.json, ablation.md}.
The ground-truth reward follows each point's own rule, so the table compares facts and rates, which do not
depend on it.
"""

from __future__ import annotations

import json
import shutil
from functools import partial
from pathlib import Path

from halluray.campaigns.shared.campaign import run_campaign
from halluray.campaigns.shared.demo_steps import demo_report, demo_steps
from halluray.config import ExperimentConfig
from halluray.eval.report import LABELS, METHODS, fmt, pct
from halluray.io import atomic_write_json, atomic_write_text
from halluray.layout import RunLayout
from halluray.pipeline.shared.steps import WHOLE_CONFIG, Step, run_steps

OLD_PPO = {"steps": 100, "advantage_estimator": "gae", "samples_per_prompt": 1, "batch_size": 32,
           "minibatch_size": 16, "ppo_epochs": 2, "cliprange": 0.2, "kl_coef": 0.2, "eval_every": 5,
           "plateau_patience": 3, "plateau_min_delta": 0.25}
"""The demo's PPO settings before the paper's protocol (with `lora.enabled: false` and the learning rates below)."""
OLD_LR = {"policy_optimizer": 2e-4, "critic_optimizer": 5e-4}
"""Each decayed to 0 over the run (cosine), as then."""


def old_settings(cfg: ExperimentConfig) -> ExperimentConfig:
    optimizers = {k: getattr(cfg.ppo, k).model_copy(update={"lr": lr, "min_lr_ratio": 0.0}) for k, lr in OLD_LR.items()}
    ppo = cfg.ppo.model_copy(update={**OLD_PPO, **optimizers})
    return cfg.model_copy(update={"ppo": ppo, "lora": cfg.lora.model_copy(update={"enabled": False})})


def without_penalty(cfg: ExperimentConfig) -> ExperimentConfig:
    # Segment credit splits a malformed response's penalty: without a penalty there is nothing to split.
    reward = cfg.ppo.reward.model_copy(update={"malformed_penalty": None, "malformed_credit": "response"})
    return cfg.model_copy(update={"ppo": cfg.ppo.model_copy(update={"reward": reward})})


POINTS = {"paper, penalty": (), "paper, no penalty": (without_penalty,),
          "old, penalty": (old_settings,), "old, no penalty": (old_settings, without_penalty)}
"""label -> the changes to the config (the config's own settings are the paper's), applied in order."""


def point_cfg(cfg: ExperimentConfig, label: str) -> ExperimentConfig:
    for change in POINTS[label]:
        cfg = change(cfg)
    return cfg


def slug(label: str) -> str:
    return label.replace(", ", "-").replace(" ", "-")


NOT_COPIED = ("ablation", "wandb", "metrics.jsonl")
"""What a point's directory does not take from the run directory: the ablation itself, the W&B files and the
metrics log (each point's run writes its own)."""


def point_layout_cfg(cfg: ExperimentConfig, label: str) -> ExperimentConfig:
    """The point's config, written under run_dir/ablation/<label>."""
    run = cfg.run.model_copy(update={"output_dir": str(RunLayout(cfg).run_dir / "ablation"), "name": slug(label)})
    return point_cfg(cfg, label).model_copy(update={"run": run})


def seed_point_dir(source: Path, target: Path) -> None:
    """A fresh copy of the run directory (its stage outputs and their stamps) for a point to start from."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target, ignore=lambda d, names: [n for n in names if Path(d) == source
                                                             and n in NOT_COPIED])


def run_point(source: Path, cfg: ExperimentConfig) -> None:
    seed_point_dir(source, RunLayout(cfg).run_dir)
    run_campaign(cfg, demo_steps(cfg), "demo", demo_report)


def run(cfg: ExperimentConfig) -> dict:
    source = RunLayout(cfg).run_dir
    points = {label: point_layout_cfg(cfg, label) for label in POINTS}
    run_steps(cfg, [Step(f"ablation-{slug(label)}", partial(run_point, source), c, (WHOLE_CONFIG,))
                    for label, c in points.items()], "ablation")
    out = source / "ablation"
    table = {label: json.loads((RunLayout(c).run_dir / "results.json").read_text()) for label, c in points.items()}
    atomic_write_json(out / "ablation.json", table)
    markdown = render(table, cfg.eval.temperature)
    atomic_write_text(out / "ablation.md", markdown)
    print()
    print(markdown)
    return table


def render(table: dict[str, dict], temperature: float) -> str:
    lines = [f"# Ablation: PPO settings x malformed penalty (test people, sampled at T={temperature:g})", "",
             "| PPO settings, rule | method | fraction true (per response) | true facts | false facts | no fact | "
             "malformed |", "|---|---|---|---|---|---|---|"]
    for label, r in table.items():
        for m in METHODS:
            lines.append(f"| {label} | {LABELS[m]} | {fmt(r['fraction_true_per_response'][m], 3)} | "
                         f"{fmt(r['mean_true_facts'][m])} | {fmt(r['mean_false_facts'][m])} | "
                         f"{pct(r['no_fact_rate'][m])} | {pct(r['malformed_rate'][m])} |")
    return "\n".join(lines) + "\n"
