"""One task's held-out items, how their answers are labeled, and the bucket edges every model of an experiment
shares (`load_heldout`: the world's items, or on real data the records of `eval.split` with the unfamiliarity
stage's scores, labeled by the run's fact checker from the whole first-line answer)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from halluray.config import ExperimentConfig
from halluray.data import prompts_for
from halluray.errors import InputError
from halluray.eval.qa import LABELS, bin_counts, bin_labels, bucket_edges, fractions_by_bin
from halluray.experiments.shared.heldout_items import (
    MAX_NEW_TOKENS,
    N_BINS,
    REAL_MAX_NEW_TOKENS,
    mcq_items,
    qa_items,
)
from halluray.factuality import unfamiliarity as unf
from halluray.factuality.checking import checker_for
from halluray.factuality.relabel import item_key
from halluray.io import read_jsonl
from halluray.layout import WORLD_DATASETS, RunLayout, require
from halluray.world import ExactChecker, World


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
        items, n_scored_here = mcq_items(cfg, layout, world, cfg.eval.split)
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
