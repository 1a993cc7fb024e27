"""`halluray qa-experiment`: the paper's short-QA SFT experiment (§4.2, Fig. 2 bottom row) on the world.

For each SFT target strategy (standard, unfamiliar-idk, random-idk) the SFT stage finetunes the base model
on the world's short-QA items of the "sft" split (`sft.task=short_qa`, the other sft keys from the config).
Each finetuned model then answers held-out QA items (all six attributes of every "eval"-split person, see
`heldout_items`), `eval.samples_per_prompt` samples each at `eval.temperature`, at most 4 new tokens; the
answers are labeled correct / incorrect / abstain by the world's checker and grouped into buckets of the
query's short-QA unfamiliarity score (halluray/eval/qa.py; the edges are computed once from the held-out
scores and shared by the three models).

Writes run_dir/qa_experiment/{results.json, answers.jsonl, heldout_items.jsonl, fig2.png}; the SFT models
stay in run_dir/sft-short_qa-<strategy>/. Needs `halluray world` and `halluray unfamiliarity` (with
short_qa in unfamiliarity.tasks) on the same run directory. Like `halluray sft`, each SFT run rewrites
run_dir/config.sft.yaml.
"""

from __future__ import annotations

import time
from pathlib import Path

from halluray.config import ExperimentConfig
from halluray.errors import InputError
from halluray.eval.qa import LABELS, bin_counts, bucket_edges, qa_distribution
from halluray.factuality.relabel import STRATEGIES
from halluray.factuality.unfamiliarity import answer_of
from halluray.io import atomic_dir, atomic_write_json, read_jsonl, write_jsonl
from halluray.stages.common import prepare, require, world_dir

N_BINS = 3
MAX_NEW_TOKENS = 4
OUTPUT = "qa_experiment"


def output_dir(cfg: ExperimentConfig) -> Path:
    return cfg.run_dir / OUTPUT


def heldout_items(cfg: ExperimentConfig, world) -> tuple[list[dict], int]:
    """Every attribute of every held-out (eval split) person as a QA item, with its short-QA unfamiliarity score.

    The world stores one QA item per person, so 20 % of 400 people give only 80 held-out queries, about 25
    per bucket: too few to see a flat line as flat (measured: the random-idk abstain rate read 0.48 / 0.40 /
    0.34 over 80 items, 0.33 / 0.37 / 0.34 over all 480). Queries the unfamiliarity stage scored keep that
    score; the others are scored here by the same procedure (few-shot prompt of the base model,
    `unfamiliarity.short_qa_samples` samples, number incorrect). Returns the items and how many were scored here.
    """
    from halluray.world.vocab import ATTRIBUTES

    path = require(cfg.run_dir / "unfamiliarity" / "unfamiliarity.jsonl", "unfamiliarity")
    stored = {(r["name"], r["attribute"]): r["score"] for r in read_jsonl(path) if r["task"] == "short_qa"}
    if not stored:
        raise InputError(f"{path} has no short_qa scores: run `halluray unfamiliarity` with short_qa in "
                         f"unfamiliarity.tasks")
    people = [p for p in world.people if p.split == "eval"]
    if not people:
        raise InputError("the world has no held-out (eval split) people")
    items = [{"name": p.name, "attribute": a, "answer": p.facts[a]} for p in people for a in ATTRIBUTES]
    todo = [i for i in items if (i["name"], i["attribute"]) not in stored]
    scored = dict(stored)
    if todo:
        scored.update(score_items(cfg, world, todo))
    return [dict(i, score=scored[(i["name"], i["attribute"])]) for i in items], len(todo)


def score_items(cfg: ExperimentConfig, world, items: list[dict]) -> dict[tuple[str, str], float]:
    """Short-QA unfamiliarity scores of `items` with the base model (as `halluray unfamiliarity` computes them)."""
    import random

    from halluray.factuality import unfamiliarity as unf
    from halluray.models.build import load_model
    from halluray.models.generation import sample
    from halluray.stages.common import base_model_dir
    from halluray.world.checker import FactChecker
    from halluray.world.corpus import QAItem

    u = cfg.unfamiliarity
    model, tokenizer = load_model(require(base_model_dir(cfg), "world"), cfg.model.trust_remote_code)
    pool = [p for p in world.people if p.split != "eval"]
    rng = random.Random(cfg.seed + 1)
    qa = [QAItem(i["name"], i["attribute"], i["answer"]) for i in items]
    prompts = [unf.short_qa_prompt(i, pool, u.n_shots, rng) for i in qa]
    longest = max(len(x) for x in tokenizer(prompts)["input_ids"])
    if longest > model.config.n_positions - MAX_NEW_TOKENS:
        raise InputError(f"few-shot prompts ({longest} tokens) exceed the model context "
                         f"({model.config.n_positions}) minus {MAX_NEW_TOKENS}; lower unfamiliarity.n_shots")

    def sample_fn(ps: list[str]) -> list[str]:
        return sample(model, tokenizer, ps, max_new_tokens=MAX_NEW_TOKENS, temperature=u.temperature,
                      batch_size=u.batch_size, seed=cfg.seed)

    scores = unf.short_qa_scores(qa, prompts, sample_fn, FactChecker(world), u.short_qa_samples)
    return {(i.name, i.attribute): s.score for i, s in zip(qa, scores)}


def answer_items(model_dir: Path, items: list[dict], cfg: ExperimentConfig) -> list[list[str]]:
    """`eval.samples_per_prompt` sampled answers per item, each cut at its first full stop."""
    from halluray.models.build import load_model
    from halluray.models.generation import sample
    from halluray.world.templates import qa_prompt

    model, tokenizer = load_model(model_dir, cfg.model.trust_remote_code)
    k = cfg.eval.samples_per_prompt
    prompts = [qa_prompt(i["name"], i["attribute"]) for i in items for _ in range(k)]
    responses = sample(model, tokenizer, prompts, max_new_tokens=MAX_NEW_TOKENS, temperature=cfg.eval.temperature,
                       batch_size=64, seed=cfg.seed)
    return [[answer_of(r) for r in responses[j * k:(j + 1) * k]] for j in range(len(items))]


def run(cfg: ExperimentConfig, strategies: tuple[str, ...] = STRATEGIES) -> dict:
    from halluray.stages import sft
    from halluray.world.checker import FactChecker
    from halluray.world.entities import World

    _, metrics = prepare(cfg, "qa-experiment")
    t0 = time.time()
    with metrics:
        world = World.load(require(world_dir(cfg) / "world.json", "world"))
        checker = FactChecker(world)
        items, n_scored_here = heldout_items(cfg, world)
        scores = [i["score"] for i in items]
        edges, method = bucket_edges(scores, N_BINS)
        k = cfg.eval.samples_per_prompt
        results: dict = {}
        answer_rows: list[dict] = []
        for strategy in strategies:
            scfg = cfg.model_copy(update={"sft": cfg.sft.model_copy(update={"strategy": strategy,
                                                                            "task": "short_qa"})})
            summary = sft.run(scfg)
            answers = answer_items(sft.sft_dir(scfg) / "model", items, cfg)
            flat_items = [i for i in items for _ in range(k)]
            flat = [a for per_item in answers for a in per_item]
            dist = qa_distribution(flat_items, flat, [i["score"] for i in flat_items], checker.check_answer,
                                   edges=edges)
            results[strategy] = {"bins": dist["bins"], **{label: dist[label] for label in LABELS},
                                 "samples": dist["counts"], "relabeled": summary["relabeled"],
                                 "sft_examples": summary["examples"], "sft_seconds": summary["seconds"]}
            metrics.log("qa-experiment", strategy=strategy,
                        **{f"{label}/bin{b}": v for label in LABELS for b, v in enumerate(dist[label])})
            for item, per_item in zip(items, answers):
                answer_rows.append({"strategy": strategy, "name": item["name"], "attribute": item["attribute"],
                                    "score": item["score"], "answers": per_item,
                                    "labels": [checker.check_answer(item["name"], item["attribute"], a)
                                               for a in per_item]})
            print(f"qa-experiment [{strategy}]: " + "; ".join(
                f"{b} ({n} answers): " + " ".join(f"{label} {dist[label][j]:.2f}" for label in LABELS)
                for j, (b, n) in enumerate(zip(dist["bins"], dist["counts"]))))
        results.update({"edges": edges, "bin_method": method, "counts": bin_counts(scores, edges),
                        "n_items": len(items), "n_scored_here": n_scored_here, "samples_per_prompt": k,
                        "temperature": cfg.eval.temperature, "max_new_tokens": MAX_NEW_TOKENS,
                        "score": f"short_qa: incorrect of {cfg.unfamiliarity.short_qa_samples} few-shot samples",
                        "sft": {"steps": cfg.sft.steps, "lr": cfg.sft.lr, "batch_size": cfg.sft.batch_size},
                        "seconds": round(time.time() - t0, 1)})
        with atomic_dir(output_dir(cfg)) as tmp:
            atomic_write_json(tmp / "results.json", results)
            write_jsonl(tmp / "answers.jsonl", answer_rows)
            write_jsonl(tmp / "heldout_items.jsonl", items)
            fig2(results, list(strategies), tmp / "fig2.png")
    print(f"qa-experiment: {len(items)} held-out items, buckets {results['counts']} ({method} edges {edges}); "
          f"results in {output_dir(cfg)} ({results['seconds']} s)")
    return results


_COLORS = {"correct": "#4c9a4c", "incorrect": "#c8453c", "abstain": "#7f8fa6"}


def fig2(results: dict, strategies: list[str], path: Path) -> None:
    """One panel per strategy: a stacked bar of correct / incorrect / abstain fractions per bucket."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(strategies), figsize=(4 * len(strategies), 3.9), squeeze=False, sharey=True)
    for ax, strategy in zip(axes[0], strategies):
        r = results[strategy]
        x = list(range(len(r["bins"])))
        bottom = [0.0] * len(x)
        for label in LABELS:
            values = [v or 0.0 for v in r[label]]
            ax.bar(x, values, bottom=bottom, color=_COLORS[label], label=label, width=0.7)
            bottom = [b + v for b, v in zip(bottom, values)]
        ax.set_xticks(x, [f"{b}\nn={n}" for b, n in zip(r["bins"], results["counts"])], fontsize=8)
        ax.set_title(strategy)
        ax.set_xlabel("unfamiliarity (short-QA score) →")
        ax.set_ylim(0, 1)
    axes[0][0].set_ylabel("fraction of answers")
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=len(LABELS), fontsize=8, frameon=False)
    fig.suptitle(f"Short-QA answers of SFT models on held-out queries by unfamiliarity (paper Fig. 2); "
                 f"n = queries, {results['samples_per_prompt']} samples each", fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
