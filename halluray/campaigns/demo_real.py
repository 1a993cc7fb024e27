"""`halluray demo-real`: the paper's short-QA experiments on a real pretrained model and real facts.

unfamiliarity (P(gold) for every query, k samples on the test split) -> SFT standard / unfamiliar-idk /
random-idk and their held-out answers by unfamiliarity bucket (Fig. 2) -> PPO with +2 correct / -3 wrong /
0 abstain from the unfamiliar-idk and the standard SFT models (Fig. 3 right) -> runs/<name>/report.md,
results.json and PNG plots. Each step is reused when its inputs are unchanged (as in `halluray demo`).
Numbers come from the "eval" (test) split; the "val" split is scored too, for tuning.

`--seeds 0,1,2` runs all of it once per seed into run_dir/seed-<s>/ (each with its own report), then says what
holds over the seeds in run_dir/qa-summary.md (campaigns/shared/qa_summary.py). The unfamiliarity scores
differ between seeds only in their sampled answers; P(gold), and so the buckets, do not.
"""

from __future__ import annotations

import json
from functools import partial

from halluray.campaigns.shared.campaign import copy_figures, run_campaign
from halluray.campaigns.shared.qa_summary import summarize
from halluray.campaigns.shared.seeds import seed_config
from halluray.config import ExperimentConfig
from halluray.eval.qa import LABELS
from halluray.eval.report import fmt
from halluray.experiments import qa_experiment, qa_rl
from halluray.io import atomic_write_json, atomic_write_text
from halluray.layout import RunLayout
from halluray.pipeline import unfamiliarity
from halluray.pipeline.shared.steps import Step

SFT_ARMS = ("standard", "unfamiliar-idk", "random-idk")
RL_INITS = ("unfamiliar-idk", "standard")


def demo_real_steps(cfg: ExperimentConfig) -> list[Step]:
    return [Step("unfamiliarity", unfamiliarity.run, cfg, ("seed", "model", "data", "fact_checker", "unfamiliarity")),
            Step("qa-experiment", partial(qa_experiment.run, strategies=SFT_ARMS), cfg,
                 ("sft", "lora", "deepspeed", "actors", "eval"), ("unfamiliarity",)),
            Step("qa-rl", partial(qa_rl.run, strategies=RL_INITS, control=()), cfg, ("ppo",),
                 ("unfamiliarity", "qa-experiment"))]


def run(cfg: ExperimentConfig) -> dict:
    return run_campaign(cfg, demo_real_steps(cfg), "demo-real", report)


def run_seeds(cfg: ExperimentConfig, seeds: list[int]) -> dict:
    """`halluray demo-real --seeds`."""
    for i, seed in enumerate(seeds):
        scfg = seed_config(cfg, seed)
        print(f"demo-real: seed {seed} ({i + 1} of {len(seeds)}) -> {RunLayout(scfg).run_dir}")
        run_campaign(scfg, demo_real_steps(scfg), f"demo-real seed {seed}", report)
    return summarize(cfg, seeds, "qa-rl")


def report(cfg: ExperimentConfig, wall: dict[str, float], elapsed: float) -> dict:
    layout = RunLayout(cfg)
    unf = json.loads((layout.unfamiliarity_dir / "summary.json").read_text())
    qa = json.loads((layout.qa_experiment_dir / "results.json").read_text())
    rl = json.loads((layout.qa_rl_dir / "results.json").read_text())
    results = {
        "model": cfg.model.pretrained_path, "data": cfg.data.path, "seed": cfg.seed,
        "unfamiliarity": unf.get("short_qa"),
        "buckets": {"edges": qa["edges"], "counts": qa["counts"], "bins": qa[SFT_ARMS[0]]["bins"]},
        "sft": {s: {label: qa[s][label] for label in LABELS} for s in SFT_ARMS},
        "rl": {s: {"before": {label: rl["sft"][s][label] for label in LABELS},
                   "after": {label: rl["runs"][s][label] for label in LABELS},
                   "mean_reward_before": rl["sft"][s]["mean_reward"],
                   "mean_reward_after": rl["runs"][s]["mean_reward"]} for s in RL_INITS},
        "wall_time_s": wall,
    }
    atomic_write_json(layout.results, results)
    copy_figures({layout.qa_experiment_dir / "fig2.png": layout.figure("fig2"),
                  layout.qa_rl_dir / "rl_short_qa.png": layout.figure("fig3_right"),
                  layout.unfamiliarity_dir / "histogram.png": layout.figure("unfamiliarity")})
    markdown = render(results)
    atomic_write_text(layout.report, markdown)
    print()
    print(markdown)
    print(f"demo-real: report in {layout.report}; this invocation took {elapsed:.0f} s "
          f"(all steps {wall['total']:.0f} s).")
    return results


def _row(name: str, values: list[float | None]) -> str:
    return f"| {name} | " + " | ".join(fmt(v) for v in values) + " |"


def render(results: dict) -> str:
    bins = results["buckets"]["bins"]
    counts = results["buckets"]["counts"]
    head = "| | " + " | ".join(f"{b} (n={n})" for b, n in zip(bins, counts)) + " |\n|---|" + "---|" * len(bins)
    u = results["unfamiliarity"] or {}
    q = u.get("by_fame_quartile") or {}
    lines = [
        "# halluray demo-real: unfamiliar finetuning examples on a real pretrained model",
        "",
        f"Model `{results['model']}`, questions from `{results['data']}`, seed {results['seed']}. Every number is "
        "on the held-out test (\"eval\") split; buckets are terciles of the query's unfamiliarity "
        "(1 - P(canonical answer) under the base model), most familiar first.",
        "",
        "## What the base model knows",
        "",
        f"{u.get('n', 0)} queries scored; mean P(gold) {fmt(u.get('mean_p_gold'), 3)}; "
        f"{u.get('n_sampled', 0)} test queries sampled {len(u.get('correct_of_k_histogram') or []) - 1} times: "
        f"accuracy {fmt(u.get('sampled_accuracy'), 3)}, correlation with P(gold) "
        f"{fmt(u.get('corr_p_gold_sampled_accuracy'), 2)}; correct-of-k histogram {u.get('correct_of_k_histogram')}.",
        "",
    ]
    if q:
        lines += ["| by fame quartile (most famous first) | Q1 | Q2 | Q3 | Q4 |", "|---|---|---|---|---|",
                  _row("sampled accuracy", q["sampled_accuracy"]), _row("P(gold)", q["p_gold"]),
                  _row("unfamiliar (relabeled by unfamiliar-idk)", q["unfamiliar_rate"]), ""]
    lines += ["## SFT targets decide what the model does on unfamiliar queries (paper Fig. 2)", "",
              "![fig2](fig2.png)", ""]
    for label in LABELS:
        lines += [f"**{label}** rate by unfamiliarity bucket", "", head]
        lines += [_row(s, results["sft"][s][label]) for s in results["sft"]]
        lines.append("")
    lines += ["## RL with +2 correct / -3 wrong / 0 abstain (paper Fig. 3 right)", "", "![fig3](fig3_right.png)", ""]
    for s, r in results["rl"].items():
        lines += [f"**from {s} SFT** (mean reward {fmt(r['mean_reward_before'])} -> {fmt(r['mean_reward_after'])})",
                  "", head]
        for label in LABELS:
            lines += [_row(f"{label} before RL", r["before"][label]), _row(f"{label} after RL", r["after"][label])]
        lines.append("")
    wall = results["wall_time_s"]
    lines += ["## Wall time (s)", "", " · ".join(f"{k} {v:.0f}" for k, v in wall.items()), ""]
    return "\n".join(lines)
