"""Held-out short-QA and MCQ evaluation shared by `qa-experiment`, `qa-rl`, `mcq-experiment`, `mcq-rl` and
`qa-rm`.

The world stores one QA item and one MCQ item per person, so 20 % of 400 people give only 80 held-out queries,
about 25 per bucket: too few to see a flat line as flat (measured: the random-idk abstain rate read 0.48 / 0.40 /
0.34 over 80 items, 0.33 / 0.37 / 0.34 over all 480). The experiments therefore ask about every attribute of
every held-out person (`load_heldout`: the "eval" split, or "val" with `eval.split: val` while tuning). A query
the unfamiliarity stage scored keeps that score; the others are scored here by the same procedure with the base
model:
- short QA (`qa_items`): few-shot prompt, `unfamiliarity.short_qa_samples` samples, number incorrect;
- MCQ (`mcq_items`): the item the world stores (world/mcq.jsonl) keeps its choices; the other attributes get
  seeded distractors (`mcq_item`) and the score is the NLL of the correct choice among the four.

On real data (a fact table, TriviaQA) the held-out items are the records of `eval.split` ("eval"; "val" for
tuning), each with the score the
unfamiliarity stage stored (`_real_heldout`); answers are whole sentences (at most REAL_MAX_NEW_TOKENS) and the
run's fact checker labels them (`Checker.label_answer`).

A model under test samples `eval.samples_per_prompt` answers per item at `eval.temperature` (at most
MAX_NEW_TOKENS new tokens, each cut at its first full stop: `sample_answers`); the world's checker labels them
correct / incorrect / abstain (`HeldOut.label`) and `HeldOut.distribution` gives the label fractions per bucket of
the item's score (halluray/eval/qa.py; the edges are computed once from the held-out scores and shared by every
model of an experiment).
"""

from __future__ import annotations

import random
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from halluray.config import ExperimentConfig
from halluray.data import prompts_for
from halluray.errors import InputError
from halluray.eval.qa import LABELS, bin_counts, bin_labels, bucket_edges, fractions_by_bin
from halluray.factuality import unfamiliarity as unf
from halluray.factuality.relabel import item_key
from halluray.io import atomic_dir, atomic_write_json, read_jsonl, write_jsonl
from halluray.layout import WORLD_DATASETS, RunLayout, require
from halluray.logging import RunLogger
from halluray.models.build import load_model
from halluray.models.generation import continuation_logprobs, sample
from halluray.stages.common import checker_for, prepare
from halluray.world import ExactChecker, World
from halluray.world.corpus import MCQItem, QAItem, mcq_item
from halluray.world.entities import Person
from halluray.world.templates import mcq_prompt, qa_prompt
from halluray.world.vocab import ATTRIBUTES

N_BINS = 3
MAX_NEW_TOKENS = 4
"""New tokens of a sampled short answer: one word and " ." ("I do not know" fills all four)."""
REAL_MAX_NEW_TOKENS = 24
"""New tokens of a real model's answer: a sentence ("The capital of Burkina Faso is Ouagadougou.")."""
MCQ_RESERVE = 2
"""Context an MCQ few-shot prompt leaves for the scored continuation (a choice and " .")."""

Key = tuple[str, str]  # (name, attribute)


def _key(item: dict) -> Key:
    return item["name"], item["attribute"]


# --- the held-out items and their unfamiliarity scores ----------------------------------------------------------


def stored_scores(layout: RunLayout, task: str) -> dict[Key, float]:
    """The unfamiliarity stage's scores of `task` (short_qa or mcq), by (name, attribute)."""
    path = require(layout.unfamiliarity_scores, "unfamiliarity")
    stored = {(r["name"], r["attribute"]): r["score"] for r in read_jsonl(path) if r["task"] == task}
    if not stored:
        raise InputError(f"{path} has no {task} scores: run `halluray unfamiliarity` with {task} in "
                         f"unfamiliarity.tasks")
    return stored


def eval_people(world: World, split: str) -> list[Person]:
    """The held-out people: `eval.split` ("eval" to report, "val" to tune)."""
    people = world.split(split)
    if not people:
        raise InputError(f"the world has no held-out ({split} split) people")
    return people


def _with_scores(items: list[dict], stored: dict[Key, float], todo: list[dict],
                 score_fn: Callable[[list[dict]], dict[Key, float]]) -> tuple[list[dict], int]:
    """`items` with a "score" (stored, or from `score_fn` for the `todo` ones); and how many were scored here."""
    scored = dict(stored)
    if todo:
        scored.update(score_fn(todo))
    return [dict(i, score=scored[_key(i)]) for i in items], len(todo)


def qa_items(cfg: ExperimentConfig, layout: RunLayout, world: World,
             checker: ExactChecker) -> tuple[list[dict], int]:
    """Every attribute of every held-out person as a QA item {name, attribute, answer, score}; and how many of
    them were scored here (the world stores one per person)."""
    stored = stored_scores(layout, "short_qa")
    items = [{"name": p.name, "attribute": a, "answer": p.facts[a], "prompt": qa_prompt(p.name, a)}
             for p in eval_people(world, cfg.eval.split) for a in ATTRIBUTES]
    todo = [i for i in items if _key(i) not in stored]
    return _with_scores(items, stored, todo, lambda todo: score_qa_items(cfg, layout, world, checker, todo))


def mcq_items(cfg: ExperimentConfig, layout: RunLayout, world: World) -> tuple[list[dict], int]:
    """Every attribute of every held-out person as an MCQ item {name, attribute, choices, answer_index, prompt, score}
    (the world's item where it stores one, else `mcq_item`); and how many were scored here."""
    stored = stored_scores(layout, "mcq")
    world_items = {_key(i): i for i in read_jsonl(require(layout.world_mcq_items, "world"))}
    items = []
    for p in eval_people(world, cfg.eval.split):
        for a in ATTRIBUTES:
            w = world_items.get((p.name, a))
            item = ({k: w[k] for k in ("name", "attribute", "choices", "answer_index")} if w
                    else mcq_item(p.name, a, p.facts[a], cfg.seed))
            items.append(dict(item, prompt=mcq_prompt(p.name, a, item["choices"])))
    todo = [i for i in items if _key(i) not in stored or _key(i) not in world_items]
    return _with_scores(items, stored, todo, lambda todo: score_mcq_items(cfg, layout, world, todo))


def _few_shot(cfg: ExperimentConfig, layout: RunLayout, world: World, items: list, prompt_fn, seed_offset: int,
              reserve: int, what: str):
    """The base model, its tokenizer and a few-shot prompt per item (as the unfamiliarity stage builds them)."""
    u = cfg.unfamiliarity
    model, tokenizer = load_model(require(layout.base_model, "world"), cfg.model.trust_remote_code)
    pool = [p for p in world.people if p.split != "eval"]
    rng = random.Random(cfg.seed + seed_offset)
    prompts = [prompt_fn(i, pool, u.n_shots, rng) for i in items]
    longest = max(len(x) for x in tokenizer(prompts)["input_ids"])
    if longest > model.config.n_positions - reserve:
        raise InputError(f"few-shot {what} ({longest} tokens) exceed the model context "
                         f"({model.config.n_positions}) minus {reserve}; lower unfamiliarity.n_shots")
    return model, tokenizer, prompts


def score_qa_items(cfg: ExperimentConfig, layout: RunLayout, world: World, checker: ExactChecker,
                   items: list[dict]) -> dict[Key, float]:
    """Short-QA unfamiliarity scores of `items` with the base model (as `halluray unfamiliarity` computes them)."""
    u = cfg.unfamiliarity
    qa = [QAItem(i["name"], i["attribute"], i["answer"]) for i in items]
    model, tokenizer, prompts = _few_shot(cfg, layout, world, qa, unf.short_qa_prompt, 1, MAX_NEW_TOKENS, "prompts")

    def sample_fn(ps: list[str]) -> list[str]:
        return sample(model, tokenizer, ps, max_new_tokens=MAX_NEW_TOKENS, temperature=u.temperature,
                      batch_size=u.batch_size, seed=cfg.seed)

    scores = unf.short_qa_scores(qa, prompts, sample_fn, checker, u.short_qa_samples)
    return {(i.name, i.attribute): s.score for i, s in zip(qa, scores)}


def score_mcq_items(cfg: ExperimentConfig, layout: RunLayout, world: World, items: list[dict]) -> dict[Key, float]:
    """MCQ unfamiliarity scores of `items` with the base model (as `halluray unfamiliarity` computes them)."""
    u = cfg.unfamiliarity
    mcq = [MCQItem(i["name"], i["attribute"], tuple(i["choices"]), i["answer_index"]) for i in items]
    model, tokenizer, prompts = _few_shot(cfg, layout, world, mcq, unf.mcq_prompt_for, 2, MCQ_RESERVE,
                                          "MCQ prompts")
    scores = unf.mcq_scores(mcq, prompts, lambda ps, cs: continuation_logprobs(model, tokenizer, ps, cs,
                                                                               u.batch_size))
    return {(i.name, i.attribute): s.score for i, s in zip(mcq, scores)}


@dataclass
class HeldOut:
    """One task's held-out items with their scores, how answers are sampled and labeled, and the bucket edges
    every model shares."""

    label_fn: Callable[[dict, str], str]
    """(item, answer) -> correct / incorrect / abstain."""
    items: list[dict]
    n_scored_here: int
    edges: list[float]
    bin_method: str
    max_new_tokens: int = MAX_NEW_TOKENS
    cut: Callable[[str], str] = unf.answer_of
    """A sampled response -> the answer that is labeled (the world's answers end at " .")."""

    @property
    def scores(self) -> list[float]:
        return [i["score"] for i in self.items]

    def summary(self, cfg: ExperimentConfig) -> dict:
        """The results keys every experiment reports about its held-out items."""
        return {"edges": self.edges, "bin_method": self.bin_method, "counts": bin_counts(self.scores, self.edges),
                "n_items": len(self.items), "n_scored_here": self.n_scored_here,
                "samples_per_prompt": cfg.eval.samples_per_prompt, "temperature": cfg.eval.temperature}

    def label(self, answers: list[list[str]]) -> list[list[str]]:
        """correct / incorrect / abstain of each answer (answers[j]: the answers to items[j])."""
        return [[self.label_fn(i, a) for a in per_item] for i, per_item in zip(self.items, answers)]

    def distribution(self, labels: list[list[str]]) -> dict:
        """{"bins", "correct", "incorrect", "abstain", "samples"}: label fractions and answer counts per bucket."""
        flat = [x for per_item in labels for x in per_item]
        dist = fractions_by_bin(flat, [i["score"] for i, per_item in zip(self.items, labels) for _ in per_item],
                                self.edges)
        return {"bins": bin_labels(self.scores, self.edges), **{label: dist[label] for label in LABELS},
                "samples": dist["counts"]}

    def rows(self, answers: list[list[str]], labels: list[list[str]], **first) -> list[dict]:
        """answers.jsonl rows: `first` (which model), then the item, its score, answers and labels."""
        return [{**first, "name": i["name"], "attribute": i["attribute"], "score": i["score"], "answers": a,
                 "labels": lab} for i, a, lab in zip(self.items, answers, labels)]


def load_heldout(cfg: ExperimentConfig, layout: RunLayout, task: str) -> HeldOut:
    """The held-out items of `task` (short_qa or mcq), scored, with their bucket edges."""
    if cfg.data.dataset not in WORLD_DATASETS:
        return _real_heldout(cfg, layout, task)
    world = World.load(require(layout.world_json, "world"))
    checker = ExactChecker(world)
    if task == "short_qa":
        items, n_scored_here = qa_items(cfg, layout, world, checker)
    elif task == "mcq":
        items, n_scored_here = mcq_items(cfg, layout, world)
    else:
        raise ValueError(f"unknown held-out task {task!r} (short_qa or mcq)")
    edges, method = bucket_edges([i["score"] for i in items], N_BINS)
    return HeldOut(lambda i, a: checker.check_answer(i["name"], i["attribute"], a), items, n_scored_here, edges,
                   method)


def _real_heldout(cfg: ExperimentConfig, layout: RunLayout, task: str) -> HeldOut:
    """Real data: the records of `eval.split` ("eval", or "val" while tuning) with the unfamiliarity stage's
    scores, labeled by the fact checker from the whole (first-line) response."""
    if task != "short_qa":
        raise InputError(f"the {task} experiment runs on the world only; real data has short QA (fact tables, "
                         f"TriviaQA)")
    path = require(layout.unfamiliarity_scores, "unfamiliarity")
    stored = {item_key(r["name"], r.get("attribute")): r["score"] for r in read_jsonl(path) if r["task"] == task}
    split = cfg.eval.split
    records = list(prompts_for(cfg, split))
    keys = [item_key(r["topic"], r.get("attribute")) for r in records]
    missing = [k for k in keys if k not in stored]
    if missing:
        raise InputError(f"{path}: no {task} score for {len(missing)} {split} queries (e.g. {missing[0]!r}); run "
                         f"`halluray unfamiliarity` with '{split}' in unfamiliarity.splits")
    items = [dict(r, name=r["topic"], score=stored[k]) for r, k in zip(records, keys)]
    edges, method = bucket_edges([i["score"] for i in items], N_BINS)
    checker = checker_for(cfg)
    return HeldOut(checker.label_answer, items, 0, edges, method, REAL_MAX_NEW_TOKENS, unf.first_line)


# --- one experiment run --------------------------------------------------------------------------------------


@dataclass
class Experiment:
    """One run of a QA/MCQ experiment: its layout, metrics logger, held-out items and the results it collects."""

    cfg: ExperimentConfig
    stage: str
    layout: RunLayout
    logger: RunLogger
    held: HeldOut
    t0: float
    results: dict = field(default_factory=dict)
    answer_rows: list[dict] = field(default_factory=list)

    def finish(self, out: Path, figure_name: str, draw: Callable[[dict, Path], None], **extra) -> dict:
        """Complete the results (the held-out summary, then `extra`, then the seconds since the start), write
        out/{results.json, answers.jsonl, heldout_items.jsonl, <figure_name>} (drawn by `draw(results, path)`) all
        or nothing, print a summary line; return the results."""
        held, results = self.held, self.results
        results.update({**held.summary(self.cfg), **extra, "seconds": round(time.time() - self.t0, 1)})
        with atomic_dir(out) as tmp:
            atomic_write_json(tmp / "results.json", results)
            write_jsonl(tmp / "answers.jsonl", self.answer_rows)
            write_jsonl(tmp / "heldout_items.jsonl", held.items)
            draw(results, tmp / figure_name)
        print(f"{self.stage}: {len(held.items)} held-out items, buckets {results['counts']} ({held.bin_method} "
              f"edges {[round(e, 3) for e in held.edges]}); results in {out} ({results['seconds']} s)")
        return results


@contextmanager
def experiment(cfg: ExperimentConfig, stage: str, task: str) -> Iterator[Experiment]:
    """Prepare the run directory for `stage`, open its metrics logger and load the held-out items of `task`."""
    layout = prepare(cfg, stage)
    t0 = time.time()
    with RunLogger(layout.run_dir, cfg, stage) as logger:
        yield Experiment(cfg, stage, layout, logger, load_heldout(cfg, layout, task), t0)


# --- answers of a model under test ------------------------------------------------------------------------------


def sample_answers(model, tokenizer, prompts: list[str], cfg: ExperimentConfig, max_new_tokens: int = MAX_NEW_TOKENS,
                   cut: Callable[[str], str] = unf.answer_of) -> list[list[str]]:
    """`eval.samples_per_prompt` sampled answers per prompt, each `cut` (the world's: at its first full stop)."""
    k = cfg.eval.samples_per_prompt
    responses = sample(model, tokenizer, [p for p in prompts for _ in range(k)], max_new_tokens=max_new_tokens,
                       temperature=cfg.eval.temperature, batch_size=64, seed=cfg.seed)
    return [[cut(r) for r in responses[j * k:(j + 1) * k]] for j in range(len(prompts))]


def held_answers(model_dir: Path, held: HeldOut, cfg: ExperimentConfig) -> list[list[str]]:
    """The answers of the model in `model_dir` to each held-out item's prompt (see `sample_answers`)."""
    model, tokenizer = load_model(model_dir, cfg.model.trust_remote_code)
    return sample_answers(model, tokenizer, [i["prompt"] for i in held.items], cfg, held.max_new_tokens, held.cut)


def overall_fractions(labels: list[list[str]]) -> dict[str, float]:
    """The fraction of each label over all answers."""
    flat = [x for per_item in labels for x in per_item]
    return {label: flat.count(label) / len(flat) for label in LABELS}


# --- reporting -------------------------------------------------------------------------------------------------


def bucket_metrics(fractions: dict) -> dict[str, float | None]:
    """{"<label>/bin<b>": fraction} for the metrics log."""
    return {f"{label}/bin{b}": v for label in LABELS for b, v in enumerate(fractions[label])}


def bucket_line(bins: list[str], fractions: dict, samples: list[int] | None = None) -> str:
    """'<bin> (<n> answers): correct 0.50 incorrect 0.25 abstain 0.25; ...' for the console."""
    return "; ".join((f"{b} ({samples[j]} answers): " if samples is not None else f"{b}: ") +
                     " ".join(f"{label} {fractions[label][j]:.2f}" for label in LABELS) for j, b in enumerate(bins))


def rounded_bins(edges: list[float], bins: list[str]) -> list[str]:
    """Bin labels with the edges rounded for an axis (MCQ NLLs)."""
    if not edges:
        return bins
    lo = [f"{e:.2f}" for e in edges]
    return [f"< {lo[0]}"] + [f"{a}-{b}" for a, b in zip(lo, lo[1:])] + [f"≥ {lo[-1]}"]


def short_qa_score_note(cfg: ExperimentConfig) -> str:
    return f"short_qa: incorrect of {cfg.unfamiliarity.short_qa_samples} few-shot samples"


def mcq_score_note(cfg: ExperimentConfig) -> str:
    return "mcq: NLL of the correct choice among the four (few-shot base model)"


# --- the SFT models the experiments compare ----------------------------------------------------------------------


def sft_variant(cfg: ExperimentConfig, strategy: str, task: str) -> ExperimentConfig:
    """`cfg` with the SFT target strategy and task of one experiment arm (its model: RunLayout(...).sft_model())."""
    return cfg.model_copy(update={"sft": cfg.sft.model_copy(update={"strategy": strategy, "task": task})})


def sft_arms(cfg: ExperimentConfig, strategies: tuple[str, ...], task: str,
             train: Callable[[ExperimentConfig], dict]) -> Iterator[tuple[int, str, dict, Path]]:
    """(index, strategy, SFT summary, model path) per strategy, each arm trained by `train` (the sft stage's
    `run`; passed in, since a stage helper imports no stage) just before it is yielded."""
    for step, strategy in enumerate(strategies):
        scfg = sft_variant(cfg, strategy, task)
        summary = train(scfg)
        yield step, strategy, summary, RunLayout(scfg).sft_model()


def sft_outcome(summary: dict) -> dict:
    """The results keys of an arm's SFT run."""
    return {"relabeled": summary["relabeled"], "sft_examples": summary["examples"], "sft_seconds": summary["seconds"]}


def sft_settings(cfg: ExperimentConfig) -> dict:
    return {"steps": cfg.sft.steps, "lr": cfg.sft.lr, "batch_size": cfg.sft.batch_size}
