"""The demo's results.json (exact keys) and the paper-style report rendered from it."""

from __future__ import annotations

import re
from pathlib import Path

from halluray.eval.pyplot import plt

METHODS = ("sft", "rl_standard_rm", "rl_conservative_rm")
LABELS = {"sft": "SFT", "rl_standard_rm": "RL + standard RM", "rl_conservative_rm": "RL + conservative RM"}
# Paper, Fig. 6 (Llama2 7B, fraction of true facts): biographies and film plots.
PAPER_FIG6 = {"bios": {"sft": 0.47, "rl_standard_rm": 0.50, "rl_conservative_rm": 0.59},
              "plots": {"sft": 0.45, "rl_standard_rm": 0.54, "rl_conservative_rm": 0.80}}


# Per-method numbers of the held-out (test) evaluation that results.json carries (halluray/eval/long_form.py).
METHOD_METRICS = ("fraction_true_facts", "fraction_true_per_response", "mean_true_facts", "mean_false_facts",
                  "mean_reward", "no_fact_rate", "malformed_rate", "fraction_true_by_unfamiliarity",
                  "fraction_true_per_response_by_unfamiliarity", "true_facts_by_unfamiliarity",
                  "false_facts_by_unfamiliarity", "reward_by_unfamiliarity", "no_fact_rate_by_unfamiliarity",
                  "malformed_rate_by_unfamiliarity", "malformed_per_try_by_unfamiliarity")
# Of the greedy responses (one per prompt, the authors' decoding), results.json keeps the headline numbers and
# the no-fact and malformed rates by tercile.
GREEDY_METRICS = ("fraction_true_facts", "fraction_true_per_response", "mean_true_facts", "mean_false_facts",
                  "mean_reward", "no_fact_rate", "malformed_rate", "no_fact_rate_by_unfamiliarity",
                  "malformed_rate_by_unfamiliarity")
RMS = ("standard", "conservative")


def build_results(evaluation: dict, rm_eval: dict, seed: int, wall_time_s: dict[str, float],
                  reward_model_kind: str, base_model: dict | None = None) -> dict:
    """`base_model`: what the unfamiliarity stage measured of the base model's long-form knowledge (its summary's
    `long_form` section), reported on real data where it is not known beforehand."""
    rm_reward = {k: rm_eval["rm_reward_by_unfamiliarity"][k] for k in ("ground_truth", *RMS)}
    truth = rm_reward["ground_truth"]
    greedy = evaluation.get("greedy")
    return {
        # An evaluation reused from before a metric existed (its stage's fingerprint is the config's) lacks it.
        **{key: {m: evaluation[key][m] for m in METHODS} for key in METHOD_METRICS if key in evaluation},
        "greedy": {key: {m: greedy[key][m] for m in METHODS} for key in GREEDY_METRICS} if greedy else None,
        "rm_reward_by_unfamiliarity": rm_reward,
        # Predicted minus ground-truth reward per response: > 0 over-estimates (what PPO can exploit).
        "rm_overestimation_by_unfamiliarity": {k: [None if p is None or t is None else p - t
                                                   for p, t in zip(rm_reward[k], truth)] for k in RMS},
        "verifier_accuracy": rm_eval.get("verifier_accuracy", {}),
        "reward_model_kind": reward_model_kind,
        "unfamiliarity_bins": evaluation["bins"],
        "split": {"eval": "eval (test people)", "val": "val (validation people)"}[evaluation["split"]],
        "seed": seed,
        "wall_time_s": wall_time_s,
        **({"base_model": base_model} if base_model else {}),
    }


def fig6(results: dict, path: Path, label: str = "halluray demo world") -> None:
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    x = range(len(METHODS))
    ax.bar([i - 0.2 for i in x], [results["fraction_true_per_response"][m] or 0 for m in METHODS], 0.4,
           label=f"{label} (per response)")
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
    """The response as written, false facts struck out. A checker may rewrite a claim ("Its capital is X" read as
    "Peru's capital is X", a list item as "Peru's neighbours Chile"): then its words after the subject, or else
    its value, are struck where the response has them."""
    for text, value, label in facts:
        if label != "false":
            continue
        predicate = re.sub(r"^[^,]*?(?:'s\s|,\s)", "", text, count=1)
        for span in (text, predicate, str(value)):
            at = response.find(span) if span else -1
            if at >= 0 and "~~" not in response[at:at + len(span)]:
                response = f"{response[:at]}~~{span}~~{response[at + len(span):]}"
                break
    return f"“{response}”" if response.strip() else "(empty response)"


def fig7_notes(results: dict, bins: list[str]) -> list[str]:
    """Where Fig. 7 differs from the paper's, said from the numbers. The paper's RL + conservative RM keeps
    (bios) or adds (plots) true facts on familiar entities while dropping false ones on unfamiliar ones."""
    t, fl = results["true_facts_by_unfamiliarity"], results["false_facts_by_unfamiliarity"]
    c, s = "rl_conservative_rm", "sft"
    notes = []
    fewer_true = [b for b, x, y in zip(bins, t[c], t[s]) if None not in (x, y) and x < 0.9 * y]
    if fewer_true:
        notes.append(f"- Unlike the paper, RL + conservative RM states fewer true facts than SFT in tercile(s) "
                     f"{', '.join(fewer_true)} ({', '.join(f'{fmt(x)} vs {fmt(y)}' for x, y in zip(t[c], t[s]))} "
                     f"per response): part of its factuality comes from saying less.")
    else:
        notes.append("- As in the paper, RL + conservative RM keeps at least 90% of SFT's true facts in every tercile.")
    fewer_false = [b for b, x, y in zip(bins, fl[c], fl[s]) if None not in (x, y) and x < y]
    notes.append(f"- RL + conservative RM states fewer false facts than SFT in {len(fewer_false)} of {len(bins)} "
                 f"terciles ({', '.join(f'{fmt(x)} vs {fmt(y)}' for x, y in zip(fl[c], fl[s]))}).")
    no_fact, malformed = results["no_fact_rate_by_unfamiliarity"][c], results["malformed_rate_by_unfamiliarity"][c]
    notes.append("- It states no checkable fact in " + ", ".join(
        f"{pct(v)} ({b})" for v, b in zip(no_fact, bins)) + " of its responses, and writes a malformed one in "
        + ", ".join(f"{pct(v)} ({b})" for v, b in zip(malformed, bins)) + ".")
    # Absent from results written before 2026-12-05.
    per_try = results.get("malformed_per_try_by_unfamiliarity")
    if per_try:
        notes.append("- Of the bios each tries (all but well-formed ones stating no fact), malformed: "
                     + ", ".join(f"{pct(x)} vs SFT's {pct(y)} ({b})" for x, y, b in zip(per_try[c], per_try[s], bins))
                     + ": where these match, its malformed rate fell only by saying nothing more often.")
    return notes


def pct(v: float | None) -> str:
    return "–" if v is None else f"{v:.0%}"


WORLD_INTRO = ("Reproduction of Kang et al. on the embedded synthetic world (a 0.9M-parameter GPT-2 pretrained "
               "locally, PPO on Ray actor groups with DeepSpeed). Held-out prompts, exact fact checker.")


def base_model_section(base: dict) -> list[str]:
    """What the base model knows by fame quartile (real data: the unfamiliarity stage's long-form summary)."""
    q = base["by_fame_quartile"]
    head = [f"Q{i + 1}" for i in range(len(q["responses"]))]
    rows = [("true claims per response", "true_per_response"), ("false claims per response", "false_per_response"),
            ("not checkable per response", "not_checkable_per_response"),
            ("responses with a checkable claim", "with_checkable_claim"), ("unfamiliarity score", "score")]
    return ["## What the base model knows", "",
            f"{base['n']} entities, {base['responses']} sampled responses; by fame quartile (Q1 the most famous). "
            f"Spearman(unfamiliarity score, fame) {fmt(base.get('spearman_score_fame'))}, split-half reliability "
            f"of the score {fmt(base.get('score_split_half_r'))}.", "",
            "| | " + " | ".join(head) + " |", "|---|" + "---|" * len(head),
            *[f"| {name} | " + " | ".join(fmt(v) for v in q[key]) + " |" for name, key in rows], ""]


def render(results: dict, evaluation: dict, rm_eval: dict, intro: str = WORLD_INTRO) -> str:
    f, bins = results["fraction_true_facts"], evaluation["bin_labels"]
    per, greedy = results["fraction_true_per_response"], results.get("greedy")
    lines = ["# halluray demo: unfamiliar finetuning examples and conservative reward models", "", intro, "",
             *(base_model_section(results["base_model"]) if results.get("base_model") else []),
             "## Fraction of true facts (paper Fig. 6)", "",
             "Per response: the mean over responses that state a fact of their fraction of true facts (the "
             "authors' metric); pooled: all stated facts together (FActScore's). Sampled: "
             f"{evaluation.get('samples_per_prompt', 'several')} samples per prompt"
             + (f" at T={evaluation['temperature']:g}" if "temperature" in evaluation else "")
             + "; greedy: one per prompt.",
             "", "| method | per response, sampled | per response, greedy | pooled, sampled | paper, Bios | "
             "paper, Plots |", "|---|---|---|---|---|---|"]
    for m in METHODS:
        lines.append(f"| {LABELS[m]} | {fmt(per[m], 3)} | "
                     f"{fmt(greedy['fraction_true_per_response'][m], 3) if greedy else '–'} | {fmt(f[m], 3)} | "
                     f"{PAPER_FIG6['bios'][m]:.2f} | {PAPER_FIG6['plots'][m]:.2f} |")
    lines += ["", "![fraction true facts](fig6.png)", "",
              "The fraction of true facts alone rewards saying nothing; per response, on the same test prompts "
              "(sampled; greedy in brackets):", "",
              "| method | true facts | false facts | ground-truth reward | no fact stated | malformed |",
              "|---|---|---|---|---|---|"]
    def both(key: str, m: str, show) -> str:
        return show(results[key][m]) + (f" ({show(greedy[key][m])})" if greedy else "")

    for m in METHODS:
        lines.append(f"| {LABELS[m]} | {both('mean_true_facts', m, fmt)} | {both('mean_false_facts', m, fmt)} | "
                     f"{both('mean_reward', m, fmt)} | {both('no_fact_rate', m, pct)} | "
                     f"{both('malformed_rate', m, pct)} |")
    lines += ["", "By unfamiliarity tercile (" + ", ".join(bins) + "):", "",
              "| method | " + " | ".join(f"reward {b}" for b in bins) + " | "
              + " | ".join(f"no fact {b}" for b in bins) + " | " + " | ".join(f"malformed {b}" for b in bins)
              + " |", "|---|" + "---|" * (3 * len(bins))]
    for m in METHODS:
        lines.append(f"| {LABELS[m]} | " + " | ".join(fmt(v) for v in results["reward_by_unfamiliarity"][m]) + " | "
                     + " | ".join(pct(v) for v in results["no_fact_rate_by_unfamiliarity"][m]) + " | "
                     + " | ".join(pct(v) for v in results["malformed_rate_by_unfamiliarity"][m]) + " |")
    lines += ["", "## Reward-model predictions by unfamiliarity "
              f"(paper Fig. 5; {results['reward_model_kind']} RMs)", "",
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
              "| method | " + " | ".join(f"true {b}" for b in bins) + " | "
              + " | ".join(f"false {b}" for b in bins) + " |",
              "|---|" + "---|" * (2 * len(bins))]
    for m in METHODS:
        t, fl = results["true_facts_by_unfamiliarity"][m], results["false_facts_by_unfamiliarity"][m]
        lines.append(f"| {LABELS[m]} | " + " | ".join(fmt(v) for v in t + fl) + " |")
    lines += ["", *fig7_notes(results, bins), "", "![facts by unfamiliarity](fig7.png)", "",
              "## Example responses (false facts struck out)", ""]
    for m in METHODS:
        lines.append(f"**{LABELS[m]}**")
        lines.append("")
        for ex in evaluation["examples"][m]:
            lines.append(f"- {ex['group']} ({ex['topic']}, unfamiliarity {ex['unfamiliarity']:.1f}): "
                         f"{_mark(ex['response'], ex['facts'])}")
        lines.append("")
    intervals = results.get("intervals_95") or {}
    if intervals:
        lines += ["## 95% intervals (bootstrap over the held-out entities, paired across methods)", "",
                  "| statistic | interval |", "|---|---|",
                  *[f"| {k} | [{fmt(lo, 3)}, {fmt(hi, 3)}] |" for k, (lo, hi) in intervals.items()], ""]
    lines += ["## Wall time per stage (s)", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.0f} |" for k, v in results["wall_time_s"].items()]
    lines += ["", f"Seed {results['seed']}. Unfamiliarity bins (each held-out prompt's score from the unfamiliarity "
              f"stage): {', '.join(bins)}."]
    return "\n".join(lines) + "\n"
