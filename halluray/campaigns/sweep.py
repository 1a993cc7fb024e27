"""`halluray sweep --values 0.3,0.5,0.7,0.9`: the demo's RL gap as the standard RM's source gets more accurate.

Each value trains the standard RM on the oracle source's bios (`reward_data.standard_source=oracle`), each fact
right with probability `reward_data.source_accuracy`, instead of the generator's. Below 0.6 an unverifiable fact
is worth less than nothing under +2/-3, so the standard RM has little to over-estimate; the paper's regime is a
source that is usually right. The sweep runs the demo at the config's own setting, then once per value (one
accuracy for every person), in the same run directory: world, unfamiliarity, SFT and the conservative data are
reused; the standard data and what follows it are redone (with a shared decomposer, both RMs).
Writes run_dir/sweep/{<label>.json (each point's results.json), sweep.json, sweep.md, sweep.png}. Each point is
a step of its own (`sweep-<label>`, fingerprinted on the whole config but `run`): a point already run with the
same config is read back instead of run again, as the run directory's own steps only remember the last point.
"""

from __future__ import annotations

import json
from functools import partial

from halluray.campaigns.shared.campaign import run_campaign
from halluray.campaigns.shared.demo_steps import demo_report, demo_steps
from halluray.config import ExperimentConfig
from halluray.eval.pyplot import plt
from halluray.eval.report import fmt
from halluray.io import atomic_write_json, atomic_write_text
from halluray.layout import RunLayout
from halluray.pipeline.shared.steps import WHOLE_CONFIG, Step, run_steps

DEFAULT = "config"
"""The label of the point run at the config's own source_accuracy (default: rising with familiarity)."""


def with_accuracy(cfg: ExperimentConfig, value: float | None) -> ExperimentConfig:
    if value is None:
        return cfg
    return cfg.model_copy(update={"reward_data": cfg.reward_data.model_copy(
        update={"standard_source": "oracle", "source_accuracy": [value]})})


def run_point(label: str, cfg: ExperimentConfig) -> None:
    """One point: the demo at this config, its results kept as sweep/<label>.json."""
    results = run_campaign(cfg, demo_steps(cfg), "demo", demo_report)
    atomic_write_json(RunLayout(cfg).sweep_dir / f"{label}.json", results)


def point(label: str, results: dict) -> dict:
    f, r = results["fraction_true_facts"], results["mean_reward"]
    return {"label": label,
            "fraction_true/rl_standard_rm": f["rl_standard_rm"],
            "fraction_true/rl_conservative_rm": f["rl_conservative_rm"],
            "gap/fraction_true": f["rl_conservative_rm"] - f["rl_standard_rm"],
            "gap/reward": r["rl_conservative_rm"] - r["rl_standard_rm"],
            "false_facts/rl_standard_rm": results["mean_false_facts"]["rl_standard_rm"],
            "overestimation_most_unfamiliar/standard": results["rm_overestimation_by_unfamiliarity"]["standard"][-1]}


def run(cfg: ExperimentConfig, values: list[float]) -> dict:
    out = RunLayout(cfg).sweep_dir
    labels = [(DEFAULT, None), *((f"{v:g}", v) for v in values)]
    run_steps(cfg, [Step(f"sweep-{label}", partial(run_point, label), with_accuracy(cfg, value), (WHOLE_CONFIG,))
                    for label, value in labels], "sweep")
    points = [point(label, json.loads((out / f"{label}.json").read_text())) for label, _ in labels]
    swept = points[1:] or points
    table = {"points": points, "largest_gap": max(swept, key=lambda p: p["gap/fraction_true"])["label"],
             "largest_reward_gap": max(swept, key=lambda p: p["gap/reward"])["label"]}
    atomic_write_json(out / "sweep.json", table)
    markdown = render(table, cfg)
    atomic_write_text(out / "sweep.md", markdown)
    plot(points, out / "sweep.png")
    print()
    print(markdown)
    return table


def render(table: dict, cfg: ExperimentConfig) -> str:
    keys = [k for k in table["points"][0] if k != "label"]
    lines = ["# RL gap vs the standard RM's source accuracy (test people)", "",
             f"`{DEFAULT}`: the config's own setting "
             f"({cfg.reward_data.source_accuracy or 'default: 0.6 rising to 0.9 with familiarity'}).", "",
             "| source accuracy | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    for p in table["points"]:
        lines.append(f"| {p['label']} | " + " | ".join(fmt(p[k], 3) for k in keys) + " |")
    lines += ["", f"Among the swept values, the gap RL + conservative RM minus RL + standard RM is largest at source "
              f"accuracy {table['largest_gap']} in the fraction of true facts and at {table['largest_reward_gap']} in "
              f"ground-truth reward per response (a policy that states almost nothing has a high fraction of few "
              f"facts: read both)."]
    return "\n".join(lines) + "\n"


def plot(points: list[dict], path) -> None:
    swept = [p for p in points if p["label"] != DEFAULT]
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    x = [float(p["label"]) for p in swept]
    ax.plot(x, [p["gap/fraction_true"] for p in swept], marker="o", label="gap in fraction true (cons. - std.)")
    ax.plot(x, [p["fraction_true/rl_standard_rm"] for p in swept], marker="s", label="RL + standard RM")
    ax.plot(x, [p["fraction_true/rl_conservative_rm"] for p in swept], marker="^", label="RL + conservative RM")
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel("standard RM's source accuracy (reward_data.source_accuracy)")
    ax.set_ylabel("fraction of true facts (test)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
