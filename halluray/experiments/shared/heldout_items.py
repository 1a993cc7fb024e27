"""The held-out short-QA and MCQ items of the world experiments and their unfamiliarity scores.

The world stores one QA item and one MCQ item per person, so 20 % of 400 people give only 80 held-out queries,
about 25 per bucket: too few to see a flat line as flat (measured: the random-idk abstain rate read 0.48 / 0.40 /
0.34 over 80 items, 0.33 / 0.37 / 0.34 over all 480). The experiments therefore ask about every attribute of
every held-out person (the "eval" split, or "val" with `eval.split: val` while tuning). A query the
unfamiliarity stage scored keeps that score; the others are scored here by the same procedure with the base
model (pipeline/shared/world_unfamiliarity.py builds the few-shot prompts for both):
- short QA (`qa_items`): few-shot prompt, `unfamiliarity.short_qa_samples` samples, number incorrect;
- MCQ (`mcq_items`): the item the world stores (world/mcq.jsonl) keeps its choices; the other attributes get
  seeded distractors (`mcq_item`) and the score is the NLL of the correct choice among the four. mcq-letters
  builds its training items the same way, from the people of the sft split.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from halluray.config import ExperimentConfig
from halluray.errors import InputError
from halluray.factuality import unfamiliarity as unf
from halluray.io import read_jsonl
from halluray.layout import RunLayout, require
from halluray.models.build import load_model
from halluray.pipeline.shared.world_unfamiliarity import (
    SHORT_QA_NEW_TOKENS,
    check_context,
    choice_logprobs,
    few_shot_prompts,
    sampler,
)
from halluray.world import ExactChecker, World
from halluray.world.corpus import MCQItem, QAItem, mcq_item
from halluray.world.entities import Person
from halluray.world.templates import mcq_prompt, qa_prompt
from halluray.world.vocab import ATTRIBUTES

N_BINS = 3
MAX_NEW_TOKENS = SHORT_QA_NEW_TOKENS
REAL_MAX_NEW_TOKENS = 24
"""New tokens of a real model's answer: a sentence ("The capital of Burkina Faso is Ouagadougou.")."""
MCQ_RESERVE = 2
"""Context an MCQ few-shot prompt leaves for the scored continuation (a choice and " .")."""

Key = tuple[str, str]  # (name, attribute)


def _key(item: dict) -> Key:
    return item["name"], item["attribute"]




def stored_scores(layout: RunLayout, task: str) -> dict[Key, float]:
    """The unfamiliarity stage's scores of `task` (short_qa or mcq), by (name, attribute)."""
    path = require(layout.unfamiliarity_scores, "unfamiliarity")
    stored = {(r["name"], r["attribute"]): r["score"] for r in read_jsonl(path) if r["task"] == task}
    if not stored:
        raise InputError(f"{path} has no {task} scores: run `halluray unfamiliarity` with {task} in "
                         f"unfamiliarity.tasks")
    return stored


def eval_people(world: World, split: str) -> list[Person]:
    """The people of `split`: held out, `eval.split` ("eval" to report, "val" to tune), or a training split."""
    people = world.split(split)
    if not people:
        raise InputError(f"the world has no {split}-split people")
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


def mcq_items(cfg: ExperimentConfig, layout: RunLayout, world: World, split: str) -> tuple[list[dict], int]:
    """Every attribute of every person of `split` as an MCQ item {name, attribute, choices, answer_index, prompt,
    score} (the world's item where it stores one, else `mcq_item`); and how many were scored here."""
    stored = stored_scores(layout, "mcq")
    world_items = {_key(i): i for i in read_jsonl(require(layout.world_mcq_items, "world"))}
    items = []
    for p in eval_people(world, split):
        for a in ATTRIBUTES:
            w = world_items.get((p.name, a))
            item = ({k: w[k] for k in ("name", "attribute", "choices", "answer_index")} if w
                    else mcq_item(p.name, a, p.facts[a], cfg.seed))
            items.append(dict(item, prompt=mcq_prompt(p.name, a, item["choices"])))
    todo = [i for i in items if _key(i) not in stored or _key(i) not in world_items]
    return _with_scores(items, stored, todo, lambda todo: score_mcq_items(cfg, layout, world, todo))


def _base_model(cfg: ExperimentConfig, layout: RunLayout):
    return load_model(require(layout.base_model, "world"), cfg.model.trust_remote_code)


def score_qa_items(cfg: ExperimentConfig, layout: RunLayout, world: World, checker: ExactChecker,
                   items: list[dict]) -> dict[Key, float]:
    """Short-QA unfamiliarity scores of `items` with the base model (as `halluray unfamiliarity` computes them)."""
    u = cfg.unfamiliarity
    qa = [QAItem(i["name"], i["attribute"], i["answer"]) for i in items]
    model, tokenizer = _base_model(cfg, layout)
    prompts = few_shot_prompts(world, qa, unf.short_qa_prompt, u.n_shots, random.Random(cfg.seed + 1))
    check_context(model, tokenizer, prompts, MAX_NEW_TOKENS, "prompts")
    sample_fn = sampler(model, tokenizer, cfg, MAX_NEW_TOKENS, cfg.seed)
    scores = unf.short_qa_scores(qa, prompts, sample_fn, checker, u.short_qa_samples)
    return {(i.name, i.attribute): s.score for i, s in zip(qa, scores)}


def score_mcq_items(cfg: ExperimentConfig, layout: RunLayout, world: World, items: list[dict]) -> dict[Key, float]:
    """MCQ unfamiliarity scores of `items` with the base model (as `halluray unfamiliarity` computes them)."""
    mcq = [MCQItem(i["name"], i["attribute"], tuple(i["choices"]), i["answer_index"]) for i in items]
    model, tokenizer = _base_model(cfg, layout)
    prompts = few_shot_prompts(world, mcq, unf.mcq_prompt_for, cfg.unfamiliarity.n_shots, random.Random(cfg.seed + 2))
    check_context(model, tokenizer, prompts, MCQ_RESERVE, "MCQ prompts")
    scores = unf.mcq_scores(mcq, prompts, choice_logprobs(model, tokenizer, cfg))
    return {(i.name, i.attribute): s.score for i, s in zip(mcq, scores)}
