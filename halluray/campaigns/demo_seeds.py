"""`halluray demo --seeds 0,1,2`: the demo once per seed, then what holds over seeds.

Each seed is a whole demo of its own (a different world, base model, SFT, reward data, RMs and PPO) in
run_dir/seed-<s>/; run_dir/summary.json, summary.md and seeds.png then give per-seed numbers, their mean and
a 95% bootstrap interval over seeds and test people (halluray/eval/bootstrap.py), and whether each of the
paper's orderings holds on every seed.
"""

from __future__ import annotations

import json
from pathlib import Path

from halluray.campaigns.shared.campaign import run_campaign
from halluray.campaigns.shared.demo_steps import demo_report, demo_steps
from halluray.campaigns.shared.seeds import seed_config
from halluray.config import ExperimentConfig
from halluray.eval.bootstrap import bootstrap_intervals, person_totals
from halluray.eval.intervals import STATISTICS
from halluray.eval.pyplot import plt
from halluray.eval.report import LABELS, METHODS, fmt
from halluray.io import atomic_write_json, atomic_write_text, read_jsonl
from halluray.layout import RunLayout

MIN_GAP = 0.10
"""The fraction-of-true-facts margin of RL + conservative RM over RL + standard RM asked of every seed."""


def run(cfg: ExperimentConfig, seeds: list[int]) -> dict:
    for i, seed in enumerate(seeds):
        scfg = seed_config(cfg, seed)
        print(f"demo: seed {seed} ({i + 1} of {len(seeds)}) -> {RunLayout(scfg).run_dir}")
        run_campaign(scfg, demo_steps(scfg), "demo", demo_report)
    return summarize(cfg, seeds)


def summarize(cfg: ExperimentConfig, seeds: list[int]) -> dict:
    totals, per_seed = [], {}
    for seed in seeds:
        layout = RunLayout(seed_config(cfg, seed))
        t = person_totals([read_jsonl(layout.eval_dir / f"{m}.jsonl") for m in METHODS])
        totals.append(t)
        results = json.loads(layout.results.read_text())
        over = results["rm_overestimation_by_unfamiliarity"]
        pooled = t.sum(axis=1)
        per_seed[str(seed)] = {**{k: f(pooled) for k, f in STATISTICS.items()},
                               "overestimation_most_unfamiliar/standard": over["standard"][-1],
                               "overestimation_most_unfamiliar/conservative": over["conservative"][-1],
                               **paper_metrics(results)}
    keys = list(next(iter(per_seed.values())))
    summary = {
        "seeds": seeds, "split": "eval (test people)", "reward_model_kind": cfg.reward_model.kind,
        "per_seed": per_seed,
        "mean": {k: sum(s[k] for s in per_seed.values()) / len(seeds) for k in keys},
        "interval_95": bootstrap_intervals(totals, STATISTICS, seed=cfg.seed),
        "checks": checks(per_seed),
    }
    layout = RunLayout(cfg)
    atomic_write_json(layout.campaign_file("summary.json"), summary)
    markdown = render(summary)
    atomic_write_text(layout.campaign_file("summary.md"), markdown)
    plot(summary, layout.campaign_file("seeds.png"))
    print()
    print(markdown)
    return summary


def paper_metrics(results: dict) -> dict[str, float]:
    """A seed's numbers in the paper's terms (results.json): the per-response fraction of true facts, true facts on
    the most familiar tercile, the no-fact rates, and RL + conservative RM's worst malformed rate over terciles,
    sampled and (where the evaluation decoded greedily, the authors' way) greedy."""
    per, true, greedy = results["fraction_true_per_response"], results["true_facts_by_unfamiliarity"], \
        results.get("greedy") or {}

    def worst_malformed(by_tercile: dict) -> float:
        return max(v for v in by_tercile["rl_conservative_rm"] if v is not None)

    return {**{f"fraction_true_per_response/{m}": per[m] for m in METHODS},
            **{f"true_facts_most_familiar/{m}": true[m][0] for m in ("sft", "rl_conservative_rm")},
            **{f"no_fact_rate/{m}": results["no_fact_rate"][m] for m in METHODS},
            "malformed_rate_worst_tercile/rl_conservative_rm":
                worst_malformed(results["malformed_rate_by_unfamiliarity"]),
            **({"malformed_rate_worst_tercile_greedy/rl_conservative_rm":
                worst_malformed(greedy["malformed_rate_by_unfamiliarity"])}
               if "malformed_rate_by_unfamiliarity" in greedy else {})}


def checks(per_seed: dict[str, dict]) -> dict[str, bool]:
    """The paper's orderings, each asked of every seed."""
    s = list(per_seed.values())

    def above_both(x: dict, key: str) -> bool:
        c = x[f"{key}/rl_conservative_rm"]
        return None not in (c, x[f"{key}/rl_standard_rm"], x[f"{key}/sft"]) and \
            c > max(x[f"{key}/rl_standard_rm"], x[f"{key}/sft"])

    return {
        f"RL+conservative minus RL+standard fraction true >= {MIN_GAP} on every seed":
            all(x["gap/fraction_true_conservative_minus_standard"] >= MIN_GAP for x in s),
        "per-response fraction true RL+conservative > RL+standard and > SFT on every seed":
            all(above_both(x, "fraction_true_per_response") for x in s),
        "ground-truth reward RL+conservative > RL+standard and > SFT on every seed":
            all(above_both(x, "reward_per_response") for x in s),
        "RL+conservative keeps >= 0.9 x SFT's true facts on the most familiar tercile on every seed":
            all(x["true_facts_most_familiar/rl_conservative_rm"] >= 0.9 * x["true_facts_most_familiar/sft"]
                for x in s),
        "RL+conservative malformed rate <= 5% in every tercile on every seed":
            all(x["malformed_rate_worst_tercile/rl_conservative_rm"] <= 0.05 for x in s),
        "standard RM over-estimates the most unfamiliar tercile more than the conservative on every seed":
            all(x["overestimation_most_unfamiliar/standard"] > x["overestimation_most_unfamiliar/conservative"]
                for x in s),
    }


def render(summary: dict) -> str:
    seeds, per, mean, ci = summary["seeds"], summary["per_seed"], summary["mean"], summary["interval_95"]
    lines = [f"# halluray demo over seeds {', '.join(map(str, seeds))} ({summary['reward_model_kind']} RMs, "
             f"test people)", "",
             "| | " + " | ".join(f"seed {s}" for s in seeds) + " | mean | 95% interval |",
             "|---|" + "---|" * (len(seeds) + 2)]
    for key in per[str(seeds[0])]:
        interval = ci.get(key)
        cells = [fmt(per[str(s)][key], 3) for s in seeds]
        lines.append(f"| {key} | " + " | ".join(cells) + f" | {fmt(mean[key], 3)} | "
                     + (f"[{interval[0]:.3f}, {interval[1]:.3f}]" if interval else "–") + " |")
    lines += ["", "The interval resamples seeds, then test people within each seed (2000 times).", ""]
    lines += [f"- {'holds' if ok else 'FAILS'}: {name}" for name, ok in summary["checks"].items()]
    return "\n".join(lines) + "\n"


def plot(summary: dict, path: Path) -> None:
    """Fraction of true facts per method: each seed a dot, the mean a bar, the bootstrap interval a whisker."""
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for i, m in enumerate(METHODS):
        key = f"fraction_true_facts/{m}"
        lo, hi = summary["interval_95"][key]
        mean = summary["mean"][key]
        ax.bar(i, mean, 0.6, alpha=0.5)
        ax.errorbar(i, mean, yerr=[[mean - lo], [hi - mean]], color="black", capsize=4)
        ax.scatter([i] * len(summary["seeds"]), [summary["per_seed"][str(s)][key] for s in summary["seeds"]],
                   color="black", s=12, zorder=3)
    ax.set_xticks(range(len(METHODS)), [LABELS[m] for m in METHODS], fontsize=8)
    ax.set_ylabel("fraction of true facts (test)")
    ax.set_ylim(0, 1)
    ax.set_title(f"Over seeds {', '.join(map(str, summary['seeds']))}: mean, 95% interval, each seed")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
