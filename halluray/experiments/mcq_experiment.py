"""`halluray mcq-experiment`: SFT on the world's multiple-choice items, each target strategy (§4.2, Fig. 2 top).

For each SFT target strategy (standard, unfamiliar-idk, random-idk) the SFT stage finetunes the base model on
the world's MCQ items of the "sft" split (`sft.task=mcq`: "Q : ... Choices : a , b , c , d . A :" -> the
correct choice's text and " ."; unfamiliar-idk relabels the items whose MCQ unfamiliarity score, the NLL of the
correct choice under the few-shot-prompted base model, exceeds `unfamiliarity.mcq_threshold` (paper: 0.36) to
"I do not know ."; random-idk relabels as many random items). The other sft keys come from the config.

Each finetuned model then answers held-out MCQ items: every attribute of every "eval"-split person (the world
stores one MCQ item per person; the other five get their own seeded distractors and are scored here by the
unfamiliarity stage's procedure, see halluray/experiments/shared/heldout_items.py). Two readings per item, grouped
into buckets of the item's MCQ unfamiliarity score (edges computed once from the held-out scores, shared by the
three models):
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
from pathlib import Path

from halluray.config import ExperimentConfig
from halluray.eval.buckets import bin_of
from halluray.eval.plots import OutcomePanel, outcome_figure
from halluray.eval.qa import LABELS
from halluray.experiments.shared.answers import overall_fractions, sample_answers
from halluray.experiments.shared.bucket_report import bucket_line, bucket_metrics, mcq_score_note, rounded_bins
from halluray.experiments.shared.experiment_run import experiment
from halluray.experiments.shared.heldout import HeldOut
from halluray.experiments.shared.heldout_items import MAX_NEW_TOKENS
from halluray.experiments.shared.sft_arms import sft_arms, sft_outcome, sft_settings
from halluray.factuality.relabel import STRATEGIES
from halluray.models.build import load_model
from halluray.models.generation import continuation_logprobs
from halluray.world.templates import ABSTAIN_ANSWER


def option_probs(model, tokenizer, items: list[dict]) -> list[dict]:
    """Per item: P(correct), P(incorrect) (the three wrong choices) and P(abstain), normalised over the 5 options."""
    options = [[*i["choices"], ABSTAIN_ANSWER] for i in items]
    prompts = [i["prompt"] for i in items]
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


def mean_probs_by_bin(probs: list[dict], scores: list[float], edges: list[float]) -> dict:
    n = len(edges) + 1
    sums = {label: [0.0] * n for label in LABELS}
    counts = [0] * n
    for p, s in zip(probs, scores):
        b = bin_of(s, list(edges))
        counts[b] += 1
        for label in LABELS:
            sums[label][b] += p[label]
    return {label: [v / c if c else None for v, c in zip(sums[label], counts)] for label in LABELS}


def evaluate_model(model_dir: Path, held: HeldOut, cfg: ExperimentConfig) -> tuple[dict, list[dict]]:
    """Both readings of the model's held-out answers (see the module doc); and its answers.jsonl rows."""
    items, scores, edges = held.items, held.scores, held.edges
    model, tokenizer = load_model(model_dir, cfg.model.trust_remote_code)
    probs = option_probs(model, tokenizer, items)
    answers = sample_answers(model, tokenizer, [i["prompt"] for i in items], cfg)
    labels = held.label(answers)
    sampled = held.distribution(labels)
    k = cfg.eval.samples_per_prompt
    off = [sum(lab == "incorrect" and a not in i["choices"] for a, lab in zip(per, labs)) / k
           for i, per, labs in zip(items, answers, labels)]
    result = {"bins": sampled["bins"],
              "sampled": {label: sampled[label] for label in LABELS} | {"samples": sampled["samples"]},
              "probability": mean_probs_by_bin(probs, scores, edges),
              "off_choices": mean_probs_by_bin([{"correct": o, "incorrect": o, "abstain": o} for o in off],
                                               scores, edges)["correct"],
              "overall_sampled": overall_fractions(labels)}
    rows = [dict(r, probs=p) for r, p in zip(held.rows(answers, labels), probs)]
    return result, rows


def run(cfg: ExperimentConfig, strategies: tuple[str, ...] = STRATEGIES) -> dict:
    with experiment(cfg, "mcq-experiment", "mcq") as ex:
        for step, strategy, summary, model in sft_arms(cfg, strategies, "mcq", "mcq-experiment"):
            result, rows = evaluate_model(model, ex.held, cfg)
            ex.results[strategy] = {**result, **sft_outcome(summary)}
            ex.answer_rows += [dict(r, strategy=strategy) for r in rows]
            ex.logger.log(step, strategy=strategy, **bucket_metrics(result["sampled"]))
            for reading in ("sampled", "probability"):
                print(f"mcq-experiment [{strategy}, {reading}]: " + bucket_line(result["bins"], result[reading]))
        threshold, scores = cfg.unfamiliarity.mcq_threshold, ex.held.scores
        return ex.finish(ex.layout.mcq_experiment_dir, "mcq_sft.png",
                         lambda r, path: figure(r, list(strategies), path), max_new_tokens=MAX_NEW_TOKENS,
                         threshold=threshold, heldout_unfamiliar_rate=sum(s > threshold for s in scores) / len(scores),
                         score=mcq_score_note(cfg),
                         sft=sft_settings(cfg))


def figure(results: dict, strategies: list[str], path: Path) -> None:
    """Top row: sampled answers (stacked fractions); bottom row: mean probability of each outcome, per bucket."""
    ticks = {s: [f"{b}\nn={n}" for b, n in zip(rounded_bins(results["edges"], results[s]["bins"]), results["counts"])]
             for s in strategies}
    outcome_figure([[OutcomePanel(results[s]["sampled"], ticks[s], f"{s} (relabeled {results[s]['relabeled']})")
                     for s in strategies],
                    [OutcomePanel(results[s]["probability"], ticks[s], xlabel="unfamiliarity (MCQ NLL of the correct "
                                  "choice) →", lines=True) for s in strategies]],
                   path, ylabels=["fraction of sampled answers", "mean predicted probability"], panel_width=4,
                   height=6.6, legend_space=0.04,
                   title="Multiple-choice answers of SFT models on held-out items by unfamiliarity (paper Fig. 2 top, "
                         f"world MCQ); n = items, {results['samples_per_prompt']} samples each")

