"""The summary of a short-QA campaign over seeds (`qa-experiment --seeds`, `qa-rl --seeds`, `demo-real --seeds`):
each seed's held-out answers by unfamiliarity bucket, the differences the paper's orderings (Fig. 2, Fig. 3
right) are about with a 95% bootstrap interval over seeds and held-out topics (halluray/eval/bootstrap.py), and
on which seeds each ordering holds: run_dir/qa-summary.json and qa-summary.md.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from halluray.campaigns.shared.seeds import seed_config
from halluray.config import ExperimentConfig
from halluray.errors import InputError
from halluray.eval.bootstrap import bootstrap_intervals
from halluray.eval.qa import LABELS
from halluray.eval.qa_counts import FAMILIAR, POSITIONS, UNFAMILIAR, fraction, person_counts
from halluray.eval.report import fmt
from halluray.io import atomic_write_json, atomic_write_text, read_jsonl
from halluray.layout import RunLayout, require
from halluray.pipeline.shared.steps import read_stamp

STEPS = ("world", "unfamiliarity", "qa-experiment", "qa-rl")
"""The steps whose seconds the summary shows, where a seed ran them."""
WORDS = {"correct": "correct", "incorrect": "wrong", "abstain": "abstain"}


# --- one seed's answers ------------------------------------------------------------------------------------------


def sft_name(strategy: str) -> str:
    return f"SFT {strategy}"


def rl_name(run: dict) -> str:
    return f"RL from {run['init']}, abstain {run['abstain_reward']:g}"


@dataclass
class SeedRun:
    """What a seed's qa-experiment (and qa-rl) left that the summary reads."""

    answers: dict[str, list[dict]]
    """Model name -> its held-out answer rows (SFT arms from qa-experiment, RL runs from qa-rl)."""
    edges: list[float]
    items: list[int]
    """Held-out items per bucket."""
    rl_runs: list[dict]
    """{"model", "init", "abstain_reward"} per RL run, in qa-rl's order."""
    abstain: float | None
    """The config's abstain reward (the runs with another one are the controls)."""


def read_seed(layout: RunLayout, stage: str) -> SeedRun:
    fig2 = json.loads(require(layout.qa_experiment_dir / "results.json", "qa-experiment").read_text())
    answers: dict[str, list[dict]] = {}
    for r in read_jsonl(layout.qa_experiment_dir / "answers.jsonl"):
        answers.setdefault(sft_name(r["strategy"]), []).append(r)
    if stage != "qa-rl":
        return SeedRun(answers, fig2["edges"], fig2["counts"], [], None)
    rl = json.loads(require(layout.qa_rl_dir / "results.json", "qa-rl").read_text())
    if rl["edges"] != fig2["edges"]:
        raise InputError(f"{layout.run_dir}: qa-rl and qa-experiment bucketed different held-out items (edges "
                         f"{rl['edges']} vs {fig2['edges']}); run both again with the same config")
    names = {key: rl_name(run) for key, run in rl["runs"].items()}
    for r in read_jsonl(layout.qa_rl_dir / "answers.jsonl"):
        if r["phase"] == "rl":
            answers.setdefault(names[r["model"]], []).append(r)
    runs = [{"model": names[key], "init": run["init"], "abstain_reward": run["abstain_reward"]}
            for key, run in rl["runs"].items()]
    return SeedRun(answers, fig2["edges"], fig2["counts"], runs, rl["reward"]["abstain"])


# --- the paper's orderings ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ordering:
    """One of the paper's orderings, asked of every seed: it holds where `value` (a difference of answer rates,
    read from summed counts) is > 0, or >= 0 when not `strict`."""

    claim: str
    statistic: str
    value: Callable[[np.ndarray], float]
    strict: bool = True

    def holds(self, x: float | None) -> bool:
        return x is not None and (x > 0 if self.strict else x >= 0)


def orderings(models: list[str], seed: SeedRun) -> list[Ordering]:
    """Fig. 2's orderings of the three SFT arms, then Fig. 3 right's for each RL run qa-rl made."""
    index = {m: i for i, m in enumerate(models)}

    def rate(model: str, label: str, where: int | None = None) -> Callable[[np.ndarray], float]:
        return lambda t: fraction(t, index[model], label, where)

    def minus(a: Callable, b: Callable) -> Callable[[np.ndarray], float]:
        return lambda t: a(t) - b(t)

    std, unf, rnd = (sft_name(s) for s in ("standard", "unfamiliar-idk", "random-idk"))
    rise = {m: minus(rate(m, "abstain", UNFAMILIAR), rate(m, "abstain", FAMILIAR)) for m in (unf, rnd)}
    out = [
        Ordering("standard SFT answers wrong more often on the most unfamiliar bucket than on the most familiar one",
                 "SFT standard wrong: most unfamiliar minus most familiar",
                 minus(rate(std, "incorrect", UNFAMILIAR), rate(std, "incorrect", FAMILIAR))),
        Ordering("unfamiliar-idk SFT abstains more often on the most unfamiliar bucket than on the most familiar one",
                 "SFT unfamiliar-idk abstain: most unfamiliar minus most familiar", rise[unf]),
        Ordering("unfamiliar-idk SFT's abstain rate rises more from the most familiar to the most unfamiliar bucket "
                 "than random-idk SFT's", "abstain rise: unfamiliar-idk minus random-idk",
                 minus(rise[unf], rise[rnd])),
        Ordering("unfamiliar-idk SFT answers wrong less often than standard SFT on the most unfamiliar bucket",
                 "wrong on most unfamiliar: SFT standard minus SFT unfamiliar-idk",
                 minus(rate(std, "incorrect", UNFAMILIAR), rate(unf, "incorrect", UNFAMILIAR))),
        Ordering("unfamiliar-idk SFT abstains more often than random-idk SFT on the most unfamiliar bucket",
                 "abstain on most unfamiliar: SFT unfamiliar-idk minus SFT random-idk",
                 minus(rate(unf, "abstain", UNFAMILIAR), rate(rnd, "abstain", UNFAMILIAR))),
    ]
    paper = [r for r in seed.rl_runs if r["abstain_reward"] == seed.abstain]
    for r in paper:
        before = sft_name(r["init"])
        out.append(Ordering(f"RL from {r['init']} SFT with abstain reward {r['abstain_reward']:g} answers wrong on "
                            f"the most unfamiliar bucket no more often than before RL",
                            f"wrong on most unfamiliar: {before} minus {r['model']}",
                            minus(rate(before, "incorrect", UNFAMILIAR), rate(r["model"], "incorrect", UNFAMILIAR)),
                            strict=False))
    for c in (r for r in seed.rl_runs if r["abstain_reward"] != seed.abstain):
        base = next(r["model"] for r in paper if r["init"] == c["init"])
        control = (f"the control (RL from {c['init']} SFT with abstain reward {c['abstain_reward']:g}, like a wrong "
                   f"answer)")
        out += [Ordering(f"{control} abstains less often than RL with abstain reward {seed.abstain:g} from the same "
                         f"model (all buckets)", f"abstain, all buckets: {base} minus {c['model']}",
                         minus(rate(base, "abstain"), rate(c["model"], "abstain"))),
                Ordering(f"{control} answers wrong more often on the most unfamiliar bucket than RL with abstain "
                         f"reward {seed.abstain:g} from the same model",
                         f"wrong on most unfamiliar: {c['model']} minus {base}",
                         minus(rate(c["model"], "incorrect", UNFAMILIAR), rate(base, "incorrect", UNFAMILIAR)))]
    return out


# --- the summary -------------------------------------------------------------------------------------------------


def _finite(x: float) -> float | None:
    """JSON has no NaN: an empty bucket's rate is None (shown as '–')."""
    return None if math.isnan(x) else x


def _mean(values: list[float | None]) -> float | None:
    return None if None in values else sum(values) / len(values)


def _seconds(layout: RunLayout) -> dict[str, float]:
    """Each step's seconds when it last ran, from the stamps run_steps leaves."""
    stamps = {name: read_stamp(layout, name) for name in STEPS}
    return {name: stamp["seconds"] for name, stamp in stamps.items() if stamp}


def summarize(cfg: ExperimentConfig, seeds: list[int], stage: str) -> dict:
    runs = {seed: read_seed(RunLayout(seed_config(cfg, seed)), stage) for seed in seeds}
    first = runs[seeds[0]]
    models = list(first.answers)
    ords = orderings(models, first)
    arrays, per_seed = [], {}
    for seed, s in runs.items():
        missing = [m for m in models if m not in s.answers]
        if missing:
            raise InputError(f"seed {seed} has no held-out answers of {', '.join(missing)}: run every seed with the "
                             f"same config")
        counts = person_counts([s.answers[m] for m in models], s.edges)
        arrays.append(counts)
        t = counts.sum(axis=1)
        per_seed[str(seed)] = {
            "buckets": {"edges": s.edges, "items": s.items},
            "models": {m: {label: [_finite(fraction(t, i, label, p)) for p in range(len(POSITIONS))]
                           for label in LABELS} for i, m in enumerate(models)},
            "statistics": {o.statistic: _finite(o.value(t)) for o in ords},
            "seconds": _seconds(RunLayout(seed_config(cfg, seed))),
        }
    rows = list(per_seed.values())
    intervals = bootstrap_intervals(arrays, {o.statistic: o.value for o in ords}, seed=cfg.seed)
    by_seed = {o.claim: {str(s): o.holds(per_seed[str(s)]["statistics"][o.statistic]) for s in seeds}
               for o in ords}
    summary = {
        "stage": stage, "seeds": seeds, "split": cfg.eval.split, "positions": list(POSITIONS), "models": models,
        "rl_runs": first.rl_runs,
        "orderings": [{"claim": o.claim, "statistic": o.statistic, "holds_when": "> 0" if o.strict else ">= 0"}
                      for o in ords],
        "per_seed": per_seed,
        "mean": {"models": {m: {label: [_mean([r["models"][m][label][p] for r in rows]) for p in range(len(POSITIONS))]
                                for label in LABELS} for m in models},
                 "statistics": {o.statistic: _mean([r["statistics"][o.statistic] for r in rows]) for o in ords}},
        "interval_95": {k: [_finite(lo), _finite(hi)] for k, (lo, hi) in intervals.items()},
        "checks": {claim: all(held.values()) for claim, held in by_seed.items()},
        "checks_by_seed": by_seed,
    }
    layout = RunLayout(cfg)
    atomic_write_json(layout.campaign_file("qa-summary.json"), summary)
    markdown = render(summary)
    atomic_write_text(layout.campaign_file("qa-summary.md"), markdown)
    print()
    print(markdown)
    return summary


def render(summary: dict) -> str:
    seeds, per, mean = summary["seeds"], summary["per_seed"], summary["mean"]
    head = " | ".join(f"seed {s}" for s in seeds)
    lines = [f"# halluray short QA over seeds {', '.join(map(str, seeds))} ({summary['stage']}, held-out "
             f"'{summary['split']}' topics)", "",
             "Fractions of held-out answers in each seed's buckets of the base model's short-QA unfamiliarity "
             "score: most familiar / middle / most unfamiliar.", "",
             "| buckets | " + head + " |", "|---|" + "---|" * len(seeds),
             "| inner edges | " + " | ".join(", ".join(f"{e:g}" for e in per[str(s)]["buckets"]["edges"])
                                           for s in seeds) + " |",
             "| items | " + " | ".join(" / ".join(map(str, per[str(s)]["buckets"]["items"])) for s in seeds) + " |", ""]

    def table(label: str, models: list[str]) -> list[str]:
        rows = [f"| {WORDS[label]}: {' / '.join(summary['positions'])} | {head} | mean |",
                "|---|" + "---|" * (len(seeds) + 1)]
        for m in models:
            cells = [" / ".join(fmt(x) for x in per[str(s)]["models"][m][label]) for s in seeds]
            rows.append(f"| {m} | " + " | ".join(cells) + " | " + " / ".join(fmt(x) for x in mean["models"][m][label])
                        + " |")
        return rows + [""]

    lines += ["## Fig. 2: SFT with each target strategy", ""]
    sft = [m for m in summary["models"] if m.startswith("SFT ")]
    for label in ("abstain", "incorrect", "correct"):
        lines += table(label, sft)
    runs = summary["rl_runs"]
    if runs:
        # Each SFT model just above the RL runs it started.
        rl = [m for init in dict.fromkeys(r["init"] for r in runs)
              for m in (sft_name(init), *(r["model"] for r in runs if r["init"] == init))]
        lines += ["## Fig. 3 right: RL (+2 correct, -3 wrong, abstain as named) from the SFT model above it", ""]
        for label in ("incorrect", "abstain", "correct"):
            lines += table(label, rl)
    lines += ["## The paper's orderings", "",
              f"| difference (> 0: the ordering holds; >= 0 for 'no more often') | {head} | mean | 95% interval |",
              "|---|" + "---|" * (len(seeds) + 2)]
    for o in summary["orderings"]:
        k, ci = o["statistic"], summary["interval_95"][o["statistic"]]
        lines.append(f"| {k} | " + " | ".join(fmt(per[str(s)]["statistics"][k], 3) for s in seeds)
                     + f" | {fmt(mean['statistics'][k], 3)} | [{fmt(ci[0], 3)}, {fmt(ci[1], 3)}] |")
    lines += ["", "The interval resamples seeds, then held-out topics (people, entities) within each seed "
              "(2000 times).", ""]
    for claim, held in summary["checks_by_seed"].items():
        failed = [s for s, ok in held.items() if not ok]
        holding = ", ".join(s for s, ok in held.items() if ok) or "none"
        lines.append(f"- holds on every seed: {claim}" if not failed else
                     f"- FAILS on seed {', '.join(failed)} (holds on {holding}): {claim}")
    steps = [name for name in STEPS if any(name in per[str(s)]["seconds"] for s in seeds)]
    if steps:
        lines += ["", "| seconds (when the step last ran) | " + head + " |", "|---|" + "---|" * len(seeds)]
        lines += [f"| {name} | " + " | ".join(fmt(per[str(s)]["seconds"].get(name), 0) for s in seeds) + " |"
                  for name in steps]
    return "\n".join(lines) + "\n"
