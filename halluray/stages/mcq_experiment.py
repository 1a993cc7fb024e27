"""`halluray mcq-experiment`: SFT on the world's multiple-choice items, each target strategy (§4.2, Fig. 2 top).

For each SFT target strategy (standard, unfamiliar-idk, random-idk) the SFT stage finetunes the base model on
the world's MCQ items of the "sft" split (`sft.task=mcq`: "Q : ... Choices : a , b , c , d . A :" -> the
correct choice's text and " ."; unfamiliar-idk relabels the items whose MCQ unfamiliarity score, the NLL of the
correct choice under the few-shot-prompted base model, exceeds `unfamiliarity.mcq_threshold` (paper: 0.36) to
"I do not know ."; random-idk relabels as many random items). The other sft keys come from the config.

Each finetuned model then answers held-out MCQ items: every attribute of every "eval"-split person (the world
stores one MCQ item per person; the other five get their own seeded distractors and are scored here by the
unfamiliarity stage's procedure, see `heldout_items`). Two readings per item, grouped into buckets of the
item's MCQ unfamiliarity score (edges computed once from the held-out scores, shared by the three models):
- sampled: `eval.samples_per_prompt` answers at `eval.temperature` (at most 4 new tokens), labeled correct /
  incorrect / abstain by the world's checker (an answer outside the choices is incorrect; `off_choices`
  counts those);
- probability: the model's probability of each of the five options (the four choices and "I do not know",
  each followed by " ."), normalised over the five, summed into correct / incorrect / abstain and averaged
  per bucket: the paper's MMLU reading (mean predicted likelihood).

Writes run_dir/mcq_experiment/{results.json, answers.jsonl, heldout_items.jsonl, mcq_sft.png}; the SFT models
stay in run_dir/sft-mcq-<strategy>/. Needs `halluray world` and `halluray unfamiliarity` (with mcq in
unfamiliarity.tasks) on the same run directory. Each SFT run rewrites run_dir/config.sft.yaml.
"""

from __future__ import annotations

import math
import random
import time
from pathlib import Path

from halluray.config import ExperimentConfig
from halluray.errors import InputError
from halluray.eval.qa import LABELS, bin_counts, bin_labels, bucket_edges, fractions_by_bin
from halluray.factuality.relabel import STRATEGIES
from halluray.io import atomic_dir, atomic_write_json, read_jsonl, write_jsonl
from halluray.stages.common import prepare, require, world_dir
from halluray.world.templates import ABSTAIN_ANSWER

N_BINS = 3
MAX_NEW_TOKENS = 4
OUTPUT = "mcq_experiment"


def output_dir(cfg: ExperimentConfig) -> Path:
    return cfg.run_dir / OUTPUT


def item_for(name: str, attribute: str, answer: str, seed: int, n_choices: int = 4) -> dict:
    """A seeded MCQ item: the true value among n_choices - 1 distractors of the same attribute."""
    from halluray.world.vocab import ATTRIBUTE_VALUES

    rng = random.Random(f"{seed}/mcq/{name}/{attribute}")
    choices = rng.sample([v for v in ATTRIBUTE_VALUES[attribute] if v != answer], n_choices - 1) + [answer]
    rng.shuffle(choices)
    return {"name": name, "attribute": attribute, "choices": choices, "answer_index": choices.index(answer)}


def heldout_items(cfg: ExperimentConfig, world) -> tuple[list[dict], int]:
    """Every attribute of every held-out person as an MCQ item with its MCQ unfamiliarity score (NLL).

    The item the world stores for a person (world/mcq.jsonl) keeps its choices and the unfamiliarity stage's
    score; the other attributes get seeded choices (`item_for`) and are scored here like the unfamiliarity
    stage does (few-shot prompt of the base model, NLL of the correct choice among the four). Returns the items
    and how many were scored here.
    """
    from halluray.world.vocab import ATTRIBUTES

    path = require(cfg.run_dir / "unfamiliarity" / "unfamiliarity.jsonl", "unfamiliarity")
    stored = {(r["name"], r["attribute"]): r["score"] for r in read_jsonl(path) if r["task"] == "mcq"}
    if not stored:
        raise InputError(f"{path} has no mcq scores: run `halluray unfamiliarity` with mcq in unfamiliarity.tasks")
    world_items = {(i["name"], i["attribute"]): i for i in read_jsonl(require(world_dir(cfg) / "mcq.jsonl", "world"))}
    people = [p for p in world.people if p.split == "eval"]
    if not people:
        raise InputError("the world has no held-out (eval split) people")
    items = []
    for p in people:
        for a in ATTRIBUTES:
            w = world_items.get((p.name, a))
            items.append({k: w[k] for k in ("name", "attribute", "choices", "answer_index")} if w
                         else item_for(p.name, a, p.facts[a], cfg.seed))
    todo = [i for i in items if (i["name"], i["attribute"]) not in stored or
            (i["name"], i["attribute"]) not in world_items]
    scored = dict(stored)
    if todo:
        scored.update(score_items(cfg, world, todo))
    return [dict(i, score=scored[(i["name"], i["attribute"])]) for i in items], len(todo)


def score_items(cfg: ExperimentConfig, world, items: list[dict]) -> dict[tuple[str, str], float]:
    """MCQ unfamiliarity scores of `items` with the base model (as `halluray unfamiliarity` computes them)."""
    from halluray.factuality import unfamiliarity as unf
    from halluray.models.build import load_model
    from halluray.models.generation import continuation_logprobs
    from halluray.stages.common import base_model_dir
    from halluray.world.corpus import MCQItem

    u = cfg.unfamiliarity
    model, tokenizer = load_model(require(base_model_dir(cfg), "world"), cfg.model.trust_remote_code)
    pool = [p for p in world.people if p.split != "eval"]
    rng = random.Random(cfg.seed + 2)
    mcq = [MCQItem(i["name"], i["attribute"], tuple(i["choices"]), i["answer_index"]) for i in items]
    prompts = [unf.mcq_prompt_for(i, pool, u.n_shots, rng) for i in mcq]
    longest = max(len(x) for x in tokenizer(prompts)["input_ids"])
    if longest > model.config.n_positions - 2:
        raise InputError(f"few-shot MCQ prompts ({longest} tokens) exceed the model context "
                         f"({model.config.n_positions}); lower unfamiliarity.n_shots")
    scores = unf.mcq_scores(mcq, prompts, lambda ps, cs: continuation_logprobs(model, tokenizer, ps, cs,
                                                                               u.batch_size))
    return {(i.name, i.attribute): s.score for i, s in zip(mcq, scores)}


def option_probs(model, tokenizer, items: list[dict]) -> list[dict]:
    """Per item: P(correct), P(incorrect) (the three wrong choices) and P(abstain), normalised over the 5 options."""
    from halluray.models.generation import continuation_logprobs
    from halluray.world.templates import mcq_prompt

    options = [[*i["choices"], ABSTAIN_ANSWER] for i in items]
    prompts = [mcq_prompt(i["name"], i["attribute"], i["choices"]) for i in items]
    logps = continuation_logprobs(model, tokenizer, [p for p, o in zip(prompts, options) for _ in o],
                                  [f"{c} ." for o in options for c in o], batch_size=64)
    out, start = [], 0
    for item, opts in zip(items, options):
        lp = logps[start:start + len(opts)]
        start += len(opts)
        top = max(lp)
        z = sum(math.exp(x - top) for x in lp)
        probs = [math.exp(x - top) / z for x in lp]
        correct = probs[item["answer_index"]]
        out.append({"correct": correct, "abstain": probs[-1], "incorrect": max(0.0, 1.0 - correct - probs[-1])})
    return out


def sampled_answers(model, tokenizer, items: list[dict], cfg: ExperimentConfig) -> list[list[str]]:
    from halluray.factuality.unfamiliarity import answer_of
    from halluray.models.generation import sample
    from halluray.world.templates import mcq_prompt

    k = cfg.eval.samples_per_prompt
    prompts = [mcq_prompt(i["name"], i["attribute"], i["choices"]) for i in items for _ in range(k)]
    responses = sample(model, tokenizer, prompts, max_new_tokens=MAX_NEW_TOKENS, temperature=cfg.eval.temperature,
                       batch_size=64, seed=cfg.seed)
    return [[answer_of(r) for r in responses[j * k:(j + 1) * k]] for j in range(len(items))]


def mean_probs_by_bin(probs: list[dict], scores: list[float], edges: list[float]) -> dict:
    from halluray.eval.buckets import bin_of

    n = len(edges) + 1
    sums = {label: [0.0] * n for label in LABELS}
    counts = [0] * n
    for p, s in zip(probs, scores):
        b = bin_of(s, list(edges))
        counts[b] += 1
        for label in LABELS:
            sums[label][b] += p[label]
    return {label: [v / c if c else None for v, c in zip(sums[label], counts)] for label in LABELS}


def evaluate_model(model_dir: Path, items: list[dict], edges: list[float], cfg: ExperimentConfig,
                   checker) -> tuple[dict, list[dict]]:
    from halluray.models.build import load_model

    model, tokenizer = load_model(model_dir, cfg.model.trust_remote_code)
    scores = [i["score"] for i in items]
    probs = option_probs(model, tokenizer, items)
    answers = sampled_answers(model, tokenizer, items, cfg)
    labels = [[checker.check_answer(i["name"], i["attribute"], a) for a in per] for i, per in zip(items, answers)]
    k = cfg.eval.samples_per_prompt
    flat_labels = [x for per in labels for x in per]
    flat_scores = [s for s in scores for _ in range(k)]
    sampled = fractions_by_bin(flat_labels, flat_scores, edges)
    off = [sum(lab == "incorrect" and a not in i["choices"] for a, lab in zip(per, labs)) / k
           for i, per, labs in zip(items, answers, labels)]
    result = {"bins": bin_labels(scores, edges),
              "sampled": {label: sampled[label] for label in LABELS} | {"samples": sampled["counts"]},
              "probability": mean_probs_by_bin(probs, scores, edges),
              "off_choices": mean_probs_by_bin([{"correct": o, "incorrect": o, "abstain": o} for o in off],
                                               scores, edges)["correct"],
              "overall_sampled": {label: flat_labels.count(label) / len(flat_labels) for label in LABELS}}
    rows = [{"name": i["name"], "attribute": i["attribute"], "score": i["score"], "answers": per, "labels": labs,
             "probs": p} for i, per, labs, p in zip(items, answers, labels, probs)]
    return result, rows


def run(cfg: ExperimentConfig, strategies: tuple[str, ...] = STRATEGIES) -> dict:
    from halluray.stages import sft
    from halluray.world.checker import FactChecker
    from halluray.world.entities import World

    _, metrics = prepare(cfg, "mcq-experiment")
    t0 = time.time()
    with metrics:
        world = World.load(require(world_dir(cfg) / "world.json", "world"))
        checker = FactChecker(world)
        items, n_scored_here = heldout_items(cfg, world)
        scores = [i["score"] for i in items]
        edges, method = bucket_edges(scores, N_BINS)
        results: dict = {}
        answer_rows: list[dict] = []
        for strategy in strategies:
            scfg = cfg.model_copy(update={"sft": cfg.sft.model_copy(update={"strategy": strategy, "task": "mcq"})})
            summary = sft.run(scfg)
            result, rows = evaluate_model(sft.sft_dir(scfg) / "model", items, edges, cfg, checker)
            results[strategy] = {**result, "relabeled": summary["relabeled"], "sft_examples": summary["examples"],
                                 "sft_seconds": summary["seconds"]}
            answer_rows += [dict(r, strategy=strategy) for r in rows]
            metrics.log("mcq-experiment", strategy=strategy,
                        **{f"{label}/bin{b}": v for label in LABELS for b, v in enumerate(result["sampled"][label])})
            for reading in ("sampled", "probability"):
                r = result[reading]
                print(f"mcq-experiment [{strategy}, {reading}]: " + "; ".join(
                    f"{b}: " + " ".join(f"{label} {r[label][j]:.2f}" for label in LABELS)
                    for j, b in enumerate(result["bins"])))
        threshold = cfg.unfamiliarity.mcq_threshold
        results.update({"edges": edges, "bin_method": method, "counts": bin_counts(scores, edges),
                        "n_items": len(items), "n_scored_here": n_scored_here,
                        "samples_per_prompt": cfg.eval.samples_per_prompt, "temperature": cfg.eval.temperature,
                        "max_new_tokens": MAX_NEW_TOKENS, "threshold": cfg.unfamiliarity.mcq_threshold,
                        "heldout_unfamiliar_rate": sum(s > threshold for s in scores) / len(scores),
                        "score": "mcq: NLL of the correct choice among the four (few-shot base model)",
                        "sft": {"steps": cfg.sft.steps, "lr": cfg.sft.lr, "batch_size": cfg.sft.batch_size},
                        "seconds": round(time.time() - t0, 1)})
        with atomic_dir(output_dir(cfg)) as tmp:
            atomic_write_json(tmp / "results.json", results)
            write_jsonl(tmp / "answers.jsonl", answer_rows)
            write_jsonl(tmp / "heldout_items.jsonl", items)
            figure(results, list(strategies), tmp / "mcq_sft.png")
    print(f"mcq-experiment: {len(items)} held-out items, buckets {results['counts']} ({method} edges "
          f"{[round(e, 3) for e in edges]}); results in {output_dir(cfg)} ({results['seconds']} s)")
    return results


def figure(results: dict, strategies: list[str], path: Path) -> None:
    """Top row: sampled answers (stacked fractions); bottom row: mean probability of each outcome, per bucket."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from halluray.stages.qa_experiment import _COLORS

    fig, axes = plt.subplots(2, len(strategies), figsize=(4 * len(strategies), 6.6), squeeze=False, sharey=True)
    for col, strategy in enumerate(strategies):
        r = results[strategy]
        x = list(range(len(r["bins"])))
        ticks = [f"{b}\nn={n}" for b, n in zip(_short_bins(results["edges"], r["bins"]), results["counts"])]
        bottom = [0.0] * len(x)
        ax = axes[0][col]
        for label in LABELS:
            values = [v or 0.0 for v in r["sampled"][label]]
            ax.bar(x, values, bottom=bottom, color=_COLORS[label], label=label, width=0.7)
            bottom = [b + v for b, v in zip(bottom, values)]
        ax.set_title(f"{strategy} (relabeled {r['relabeled']})", fontsize=9)
        ax.set_xticks(x, ticks, fontsize=7)
        ax.set_ylim(0, 1)
        ax = axes[1][col]
        for label in LABELS:
            ax.plot(x, [v if v is not None else float("nan") for v in r["probability"][label]], marker="o",
                    color=_COLORS[label], label=label)
        ax.set_xticks(x, ticks, fontsize=7)
        ax.set_ylim(0, 1)
        ax.set_xlabel("unfamiliarity (MCQ NLL of the correct choice) →", fontsize=8)
    axes[0][0].set_ylabel("fraction of sampled answers")
    axes[1][0].set_ylabel("mean predicted probability")
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=len(LABELS), fontsize=8, frameon=False)
    fig.suptitle("Multiple-choice answers of SFT models on held-out items by unfamiliarity (paper Fig. 2 top, "
                 f"world MCQ); n = items, {results['samples_per_prompt']} samples each", fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _short_bins(edges: list[float], bins: list[str]) -> list[str]:
    """Bin labels with the NLL edges rounded for the axis."""
    if not edges:
        return bins
    lo = [f"{e:.2f}" for e in edges]
    return [f"< {lo[0]}"] + [f"{a}-{b}" for a, b in zip(lo, lo[1:])] + [f"≥ {lo[-1]}"]
