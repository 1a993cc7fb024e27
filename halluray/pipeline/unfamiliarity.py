"""`halluray unfamiliarity`: score every world query with the base model; write JSONL, summary and histogram."""

from __future__ import annotations

import random
import time

from halluray.config import ExperimentConfig
from halluray.eval.metrics import auroc, pooled_fraction_true
from halluray.eval.plots import unfamiliarity_histogram
from halluray.eval.report import fmt
from halluray.factuality import unfamiliarity as unf
from halluray.factuality.checking import checker_for
from halluray.io import atomic_dir, atomic_write_json, write_jsonl
from halluray.layout import WORLD_DATASETS, require
from halluray.logging import RunLogger, progress
from halluray.models.build import load_model
from halluray.pipeline.shared.prepare import prepare
from halluray.pipeline.shared.record_unfamiliarity import score_records, summarize_records, summary_lines
from halluray.pipeline.shared.unfamiliarity_gates import check_gates, gate_failures
from halluray.pipeline.shared.world_unfamiliarity import SHORT_QA_NEW_TOKENS, choice_logprobs, few_shot_prompts, sampler
from halluray.world.checker import ExactChecker
from halluray.world.corpus import mcq_items, qa_items
from halluray.world.entities import World


def _chunked(fn, n_items: int, chunk: int, desc: str):
    """Run fn(start, end) over chunks with a progress bar; concatenate the results."""
    out = []
    for start in progress(range(0, n_items, chunk), desc=desc):
        out.extend(fn(start, min(n_items, start + chunk)))
    return out


def score_world(cfg: ExperimentConfig, world: World, model, tokenizer) -> list[dict]:
    u = cfg.unfamiliarity
    checker = ExactChecker(world)
    people = list(world.people)
    rng = random.Random(cfg.seed)  # one stream over the tasks, in this order
    tokenizer.truncation_side = "left"
    records: list[dict] = []
    chunk = max(1, u.batch_size // 2)
    if "long_form" in u.tasks:
        prompts = few_shot_prompts(world, people, unf.long_form_prompt, u.n_shots, rng)
        scores = _chunked(lambda a, b: unf.long_form_scores(
            [p.name for p in people[a:b]], prompts[a:b], sampler(model, tokenizer, cfg, u.max_new_tokens, cfg.seed + a),
            checker, u.long_form_samples, u.long_form_score), len(people), chunk, "unfamiliarity: long form")
        records += [_record("long_form", s, world, u.long_form_threshold) for s in scores]
    if "short_qa" in u.tasks:
        items = qa_items(people, cfg.seed)
        prompts = few_shot_prompts(world, items, unf.short_qa_prompt, u.n_shots, rng)
        threshold = u.short_qa_threshold if u.short_qa_threshold is not None else u.short_qa_samples / 2
        scores = _chunked(lambda a, b: unf.short_qa_scores(
            items[a:b], prompts[a:b], sampler(model, tokenizer, cfg, SHORT_QA_NEW_TOKENS, cfg.seed + a), checker,
            u.short_qa_samples), len(items), max(1, chunk // 4), "unfamiliarity: short QA")
        records += [_record("short_qa", s, world, threshold) for s in scores]
    if "mcq" in u.tasks:
        items = mcq_items(people, cfg.seed)
        prompts = few_shot_prompts(world, items, unf.mcq_prompt_for, u.n_shots, rng)
        logprob_fn = choice_logprobs(model, tokenizer, cfg)
        scores = _chunked(lambda a, b: unf.mcq_scores(items[a:b], prompts[a:b], logprob_fn),
                          len(items), chunk, "unfamiliarity: MCQ")
        records += [_record("mcq", s, world, u.mcq_threshold) for s in scores]
    return records


def _record(task: str, s: unf.Score, world: World, threshold: float) -> dict:
    person = world.person(s.name)
    return {"task": task, "name": s.name, "split": person.split, "frequency": person.frequency,
            "score": s.score, "unfamiliar": s.score > threshold, "samples": s.samples, **s.details}


def summarize(records: list[dict], fact_frequencies: list[int]) -> dict:
    """Per task: mean score per frequency tier and AUROC of the score, never-seen vs most-frequent third."""
    summary: dict = {}
    for task in sorted({r["task"] for r in records}):
        rows = [r for r in records if r["task"] == task]
        by_freq = sorted(rows, key=lambda r: -r["frequency"])
        top_third = by_freq[: len(rows) // 3]
        never = [r for r in rows if r["frequency"] == 0]
        task_summary = {
            "mean_score_by_frequency": {str(f): _mean([r["score"] for r in rows if r["frequency"] == f])
                                        for f in fact_frequencies},
            "unfamiliar_rate_by_frequency": {str(f): _mean([float(r["unfamiliar"]) for r in rows
                                                            if r["frequency"] == f]) for f in fact_frequencies},
            "auroc_never_vs_top_third": auroc([r["score"] for r in never], [r["score"] for r in top_third])
            if never and top_third else None,
        }
        if task == "long_form":
            task_summary["fraction_true_top_third"] = pooled_fraction_true(
                [t for r in top_third for t in r["n_true"]], [f for r in top_third for f in r["n_false"]])
            task_summary["fraction_true_never"] = pooled_fraction_true(
                [t for r in never for t in r["n_true"]], [f for r in never for f in r["n_false"]])
            task_summary["fraction_true_by_frequency"] = {
                str(f): pooled_fraction_true([t for r in rows if r["frequency"] == f for t in r["n_true"]],
                                             [x for r in rows if r["frequency"] == f for x in r["n_false"]])
                for f in fact_frequencies}
        summary[task] = task_summary
    return summary


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def run(cfg: ExperimentConfig) -> dict:
    layout = prepare(cfg, "unfamiliarity")
    t0 = time.time()
    is_world = cfg.data.dataset in WORLD_DATASETS
    model, tokenizer = load_model(require(layout.base_model, "world" if is_world else "import-model"),
                                  cfg.model.trust_remote_code)
    if is_world:
        world = World.load(require(layout.world_json, "world"))
        records = score_world(cfg, world, model, tokenizer)
        summary = summarize(records, cfg.world.fact_frequencies)
    else:
        records = score_records(cfg, model, tokenizer, checker_for(cfg))
        summary = summarize_records(records, cfg.unfamiliarity.short_qa_samples, cfg.unfamiliarity.long_form_score)
        summary["gates"] = gate_failures(summary, cfg.unfamiliarity)
    summary["seconds"] = round(time.time() - t0, 1)
    with atomic_dir(layout.unfamiliarity_dir) as tmp:
        write_jsonl(tmp / layout.unfamiliarity_scores.name, records)
        atomic_write_json(tmp / "summary.json", summary)
        unfamiliarity_histogram(records, tmp / "histogram.png")
    with RunLogger(layout.run_dir, cfg, "unfamiliarity") as logger:
        logger.log(0, **{f"{t}/{k}": s[k] for t, s in summary.items() if isinstance(s, dict)
                         for k in ("auroc_never_vs_top_third", "unfamiliar_rate", "corr_p_gold_sampled_accuracy")
                         if k in s})
    if not is_world:
        for line in summary_lines(summary):
            print(line)
        check_gates(summary["gates"], str(layout.unfamiliarity_dir))
        return summary
    for task, s in summary.items():
        if isinstance(s, dict):
            means = {f: fmt(v, 3) for f, v in s["mean_score_by_frequency"].items()}
            print(f"unfamiliarity [{task}]: AUROC never-seen vs most frequent third = "
                  f"{fmt(s['auroc_never_vs_top_third'], 3)}; mean score by corpus frequency {means}")
    if "long_form" in summary:
        lf = summary["long_form"]
        print(f"unfamiliarity [long_form]: fraction true facts, most frequent third "
              f"{fmt(lf['fraction_true_top_third'], 3)}, never in corpus {fmt(lf['fraction_true_never'], 3)}")
    return summary
