"""The demo's results.json (exact keys) and the paper-style report rendered from it."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

METHODS = ("sft", "rl_standard_rm", "rl_conservative_rm")
LABELS = {"sft": "SFT", "rl_standard_rm": "RL + standard RM", "rl_conservative_rm": "RL + conservative RM"}
# Paper, Fig. 6 (Llama2 7B, fraction of true facts): biographies and film plots.
PAPER_FIG6 = {"bios": {"sft": 0.47, "rl_standard_rm": 0.50, "rl_conservative_rm": 0.59},
              "plots": {"sft": 0.45, "rl_standard_rm": 0.54, "rl_conservative_rm": 0.80}}


def build_results(evaluation: dict, rm_eval: dict, seed: int, wall_time_s: dict[str, float]) -> dict:
    return {
        "fraction_true_facts": {m: evaluation["fraction_true_facts"][m] for m in METHODS},
        "true_facts_by_unfamiliarity": {m: evaluation["true_facts_by_unfamiliarity"][m] for m in METHODS},
        "false_facts_by_unfamiliarity": {m: evaluation["false_facts_by_unfamiliarity"][m] for m in METHODS},
        "rm_reward_by_unfamiliarity": {k: rm_eval["rm_reward_by_unfamiliarity"][k]
                                       for k in ("ground_truth", "standard", "conservative")},
        "unfamiliarity_bins": evaluation["bins"],
        "seed": seed,
        "wall_time_s": wall_time_s,
    }


def fig6(results: dict, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    x = range(len(METHODS))
    ax.bar([i - 0.2 for i in x], [results["fraction_true_facts"][m] for m in METHODS], 0.4, label="halluray demo world")
    ax.bar([i + 0.2 for i in x], [PAPER_FIG6["bios"][m] for m in METHODS], 0.4, label="paper, biographies")
    ax.set_xticks(list(x), [LABELS[m] for m in METHODS], fontsize=8)
    ax.set_ylabel("fraction of true facts")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    ax.set_title("Held-out factuality (paper Fig. 6)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def fmt(v: float | None, digits: int = 2) -> str:
    """A number for tables and logs; '–' where there is none (an empty bin, no facts stated)."""
    return "–" if v is None else f"{v:.{digits}f}"


def _mark(response: str, facts: list) -> str:
    """The response as written, false facts struck out."""
    for text, _, label in facts:
        if label == "false":
            response = response.replace(text, f"~~{text}~~", 1)
    return f"“{response}”" if response.strip() else "(empty response)"


def render(results: dict, evaluation: dict, rm_eval: dict) -> str:
    f, bins = results["fraction_true_facts"], evaluation["bin_labels"]
    lines = ["# halluray demo: unfamiliar finetuning examples and conservative reward models", "",
             "Reproduction of Kang et al. on the embedded synthetic world (a 0.9M-parameter GPT-2 pretrained "
             "locally, PPO on Ray actor groups with DeepSpeed). Held-out prompts, exact fact checker.", "",
             "## Fraction of true facts (paper Fig. 6)", "",
             "| method | halluray (demo world) | paper, Bios | paper, Plots |", "|---|---|---|---|"]
    for m in METHODS:
        lines.append(f"| {LABELS[m]} | {fmt(f[m], 3)} | {PAPER_FIG6['bios'][m]:.2f} | {PAPER_FIG6['plots'][m]:.2f} |")
    lines += ["", "![fraction true facts](fig6.png)", "",
              "## Reward-model predictions by unfamiliarity (paper Fig. 5)", "",
              "Mean reward per held-out SFT sample: ground truth (exact checker) vs each RM's prediction.", "",
              "| | " + " | ".join(bins) + " |", "|---|" + "---|" * len(bins)]
    for name, values in results["rm_reward_by_unfamiliarity"].items():
        lines.append(f"| {name} | " + " | ".join(fmt(v) for v in values) + " |")
    acc = rm_eval.get("verifier_accuracy", {})
    if acc:
        lines += ["", "Verifier accuracy on the held-out samples' atomic facts: " + "; ".join(
            f"{k} RM familiar {fmt(v['familiar'])}, unfamiliar {fmt(v['unfamiliar'])}" for k, v in acc.items()) + "."]
    lines += ["", "![RM reward by unfamiliarity](fig5.png)", "",
              "## True and false facts per response by unfamiliarity (paper Fig. 7)", "",
              "| method | " + " | ".join(f"true {b}" for b in bins) + " | " + " | ".join(f"false {b}" for b in bins) + " |",
              "|---|" + "---|" * (2 * len(bins))]
    for m in METHODS:
        t, fl = results["true_facts_by_unfamiliarity"][m], results["false_facts_by_unfamiliarity"][m]
        lines.append(f"| {LABELS[m]} | " + " | ".join(fmt(v) for v in t + fl) + " |")
    lines += ["", "![facts by unfamiliarity](fig7.png)", "", "## Example responses (false facts struck out)", ""]
    for m in METHODS:
        lines.append(f"**{LABELS[m]}**")
        lines.append("")
        for ex in evaluation["examples"][m]:
            lines.append(f"- {ex['group']} ({ex['topic']}, unfamiliarity {ex['unfamiliarity']:.1f}): "
                         f"{_mark(ex['response'], ex['facts'])}")
        lines.append("")
    lines += ["## Wall time per stage (s)", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.0f} |" for k, v in results["wall_time_s"].items()]
    lines += ["", f"Seed {results['seed']}. Unfamiliarity bins (mean false facts of the base model's few-shot bios): "
              f"{', '.join(bins)}."]
    return "\n".join(lines) + "\n"
