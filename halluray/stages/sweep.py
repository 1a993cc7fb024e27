"""`halluray sweep --values 0.3,0.5,0.7,0.9`: the demo's RL gap as the standard RM's source gets more accurate.

The standard RM is trained on an independent source's bios (GPT-3.5's role), each fact right with probability
`reward_data.source_accuracy`. Below 0.6 an unverifiable fact is worth less than nothing under +2/-3, so the
standard RM has little to over-estimate; the paper's regime is a source that is usually right. The sweep
runs the demo at the config's own setting, then once per value (one accuracy for every person), in the same
run directory: world, unfamiliarity, SFT and the conservative arm are reused, the standard arm is redone.
Writes run_dir/sweep/{<label>.json (each point's results.json), sweep.json, sweep.md, sweep.png}; a point whose
<label>.json was written with the same config is read back instead of run again.
"""

from __future__ import annotations

import hashlib
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from halluray.config import ExperimentConfig  # noqa: E402
from halluray.eval.report import fmt  # noqa: E402
from halluray.io import atomic_write_json, atomic_write_text  # noqa: E402
from halluray.layout import RunLayout  # noqa: E402
from halluray.stages import demo  # noqa: E402

DEFAULT = "config"
"""The label of the point run at the config's own source_accuracy (default: rising with familiarity)."""


def with_accuracy(cfg: ExperimentConfig, value: float | None) -> ExperimentConfig:
    if value is None:
        return cfg
    return cfg.model_copy(update={"reward_data": cfg.reward_data.model_copy(update={"source_accuracy": [value]})})


def fingerprint(cfg: ExperimentConfig) -> str:
    """Everything that decides a point's numbers: the whole config but where it is written."""
    dump = cfg.model_dump(mode="json")
    dump.pop("run")
    return hashlib.sha256(json.dumps(dump, sort_keys=True).encode()).hexdigest()


def point(label: str, results: dict) -> dict:
    f, r = results["fraction_true_facts"], results["mean_reward"]
    return {"label": label,
            "fraction_true/rl_standard_rm": f["rl_standard_rm"], "fraction_true/rl_conservative_rm": f["rl_conservative_rm"],
            "gap/fraction_true": f["rl_conservative_rm"] - f["rl_standard_rm"],
            "gap/reward": r["rl_conservative_rm"] - r["rl_standard_rm"],
            "false_facts/rl_standard_rm": results["mean_false_facts"]["rl_standard_rm"],
            "overestimation_most_unfamiliar/standard": results["rm_overestimation_by_unfamiliarity"]["standard"][-1]}


def run(cfg: ExperimentConfig, values: list[float]) -> dict:
    layout = RunLayout(cfg)
    out = layout.run_dir / "sweep"
    out.mkdir(parents=True, exist_ok=True)
    points = []
    for label, value in [(DEFAULT, None), *((f"{v:g}", v) for v in values)]:
        point_cfg, saved = with_accuracy(cfg, value), out / f"{label}.json"
        key = fingerprint(point_cfg)
        # A point already run with this very config is read back: the run directory's stages only remember
        # the last point, so a sweep that was interrupted or extended would otherwise redo every earlier one.
        results = json.loads(saved.read_text()) if saved.is_file() else {}
        if results.get("config_fingerprint") == key:
            print(f"sweep: reward_data.source_accuracy = {label}: reused {saved} (delete it to run it again)")
        else:
            print(f"sweep: reward_data.source_accuracy = {label} ...")
            results = {**demo.run(point_cfg), "config_fingerprint": key}
            atomic_write_json(saved, results)
        points.append(point(label, results))
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
             f"`{DEFAULT}`: the config's own setting ({cfg.reward_data.source_accuracy or 'default: 0.6 rising to 0.9 with familiarity'}).", "",
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
