"""Unfamiliarity scores (paper §4.1, App. B–D): few-shot prompt the *pretrained* model, grade its answers.

- long form: mean number of false facts over k sampled bios (paper: k = 2);
- short QA: number of incorrect answers among k samples (paper: k = 12, unfamiliar if > 6);
- multiple choice: NLL of the correct choice under the model's distribution over the choices
  (paper: unfamiliar if > 0.36).

The scoring functions take the model as plain callables, so they are tested with fixed answers.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import NamedTuple

from halluray.factuality.qa_matching import copula_end, first_named, first_sentence, is_abstention, normalize_answer
from halluray.world.checker import ExactChecker
from halluray.world.corpus import MCQItem, QAItem, few_shot_examples, joined, reference_bio
from halluray.world.entities import Person
from halluray.world.templates import EOS, bio_prompt, mcq_prompt, qa_prompt

SampleFn = Callable[[list[str]], list[str]]
"""prompts -> one sampled response per prompt."""
LogprobFn = Callable[[list[str], list[str]], list[float]]
"""(prompts, continuations) -> log P(continuation | prompt)."""


@dataclass
class Score:
    name: str
    score: float
    samples: list[str] = field(default_factory=list)
    details: dict = field(default_factory=dict)


def _repeat(prompts: list[str], k: int) -> list[str]:
    return [p for p in prompts for _ in range(k)]


def long_form_scores(topics: list[str], prompts: list[str], sample_fn: SampleFn, checker: ExactChecker,
                     k: int, score: str = "false_facts") -> list[Score]:
    responses = sample_fn(_repeat(prompts, k))
    return checked_long_form_scores(topics, responses,
                                    lambda ts, rs: [checker.check(t, r) for t, r in zip(ts, rs)], k, score)


def answer_of(response: str) -> str:
    """A short answer ends at its first full stop."""
    return response.split(" .")[0].strip()


def first_line(response: str) -> str:
    """A real model's answer is its first line (what follows a newline is not part of it)."""
    return response.strip().split("\n")[0]


def short_qa_scores(items: list[QAItem], prompts: list[str], sample_fn: SampleFn, checker: ExactChecker,
                    k: int) -> list[Score]:
    responses = sample_fn(_repeat(prompts, k))
    scores = []
    for i, item in enumerate(items):
        answers = [answer_of(r) for r in responses[i * k:(i + 1) * k]]
        labels = [checker.check_answer(item.name, item.attribute, a) for a in answers]
        incorrect = sum(label != "correct" for label in labels)
        scores.append(Score(item.name, float(incorrect), answers, {"attribute": item.attribute, "labels": labels}))
    return scores


def mcq_scores(items: list[MCQItem], prompts: list[str], logprob_fn: LogprobFn) -> list[Score]:
    flat_prompts = [p for p, item in zip(prompts, items) for _ in item.choices]
    flat_choices = [c for item in items for c in item.choices]
    logps = logprob_fn(flat_prompts, flat_choices)
    scores, start = [], 0
    for item in items:
        lp = logps[start:start + len(item.choices)]
        start += len(item.choices)
        top = max(lp)
        log_norm = top + math.log(sum(math.exp(x - top) for x in lp))
        probs = [math.exp(x - log_norm) for x in lp]
        nll = log_norm - lp[item.answer_index]
        scores.append(Score(item.name, nll, [], {"attribute": item.attribute, "choice_probs": probs}))
    return scores


# Few-shot prompts: `n_shots` examples from other train people, then the query.

def long_form_prompt(query: Person, pool: list[Person], n_shots: int, rng: random.Random) -> str:
    shots = few_shot_examples(pool, query.name, n_shots, rng)
    return joined([f"{bio_prompt(s.name)} {reference_bio(s)}" for s in shots], bio_prompt(query.name))


def short_qa_prompt(item: QAItem, pool: list[Person], n_shots: int, rng: random.Random) -> str:
    shots = few_shot_examples(pool, item.name, n_shots, rng)
    return joined([f"{qa_prompt(s.name, item.attribute)} {s.facts[item.attribute]} ." for s in shots], item.prompt)


def mcq_prompt_for(item: MCQItem, pool: list[Person], n_shots: int, rng: random.Random) -> str:
    shots = few_shot_examples(pool, item.name, n_shots, rng)
    examples = []
    for s in shots:
        choices = list(item.choices)
        if s.facts[item.attribute] not in choices:
            choices[rng.randrange(len(choices))] = s.facts[item.attribute]
        examples.append(f"{mcq_prompt(s.name, item.attribute, choices)} {s.facts[item.attribute]}")
    return joined(examples, item.prompt)


# Real data: records that carry their accepted answers (fact tables, TriviaQA), graded by any checker.

LabelFn = Callable[[dict, str], str]
"""(prompt record, response) -> 'correct' | 'incorrect' | 'abstain' (a checker's `label_answer`)."""


class LeadIn(NamedTuple):
    """Where a model's own sentence answer starts, and the answer to score there."""

    text: str
    """Its words before the answer ("The capital of Australia is")."""
    answer: str | None = None
    """The accepted answer it named there, in the record's spelling (an alias: "European" for Europe); None:
    the canonical answer."""


def answer_context(record: dict, lead_in: str = "") -> str:
    """The prompt followed by where the answer starts: the record's answer prefix ("The capital of France is"),
    else `lead_in` (the model's own words before its answer, `lead_in_of`), else nothing."""
    start = record.get("answer_prefix") or lead_in
    if not start:
        return record["prompt"]
    return record["prompt"] + ("" if record["prompt"].endswith(("\n", " ")) else " ") + start


def lead_in_of(reply: str, record: dict, values: Collection[str]) -> LeadIn:
    """What a model's (greedy) `reply` says before its answer: up to the first value of `values` (what an
    answer to the record's question can name) it names, else its first sentence up to and including the first
    copula ("The capital of Australia is"); "" when it has neither (or abstains).

    A model that answers in sentences puts almost no probability on a bare answer right after the question;
    after its own lead-in it puts there what it would say."""
    if is_abstention(reply):
        return LeadIn("")
    text = " ".join(reply.replace(EOS, " ").split())
    accepted = {normalize_answer(a): a for a in record["answers"]}
    named = first_named(text, set(values) | accepted.keys(), str(record.get("topic") or ""))
    if named is not None:
        return LeadIn(text[:named.start].rstrip(), accepted.get(named.value))
    sentence = first_sentence(text)
    end = copula_end(sentence)
    return LeadIn("" if end is None else sentence[:end])


def p_gold_scores(records: list[dict], logprob_fn: LogprobFn, lead_ins: list[LeadIn] | None = None) -> list[float]:
    """P(gold answer | prompt + answer prefix or lead-in) of each record, from one forward pass: the canonical
    answer, or the accepted alias the lead-in's reply named (when the record has no prefix).

    One deterministic pass instead of k samples; on a real 135M model it correlated 0.75-0.95 with the
    sampled accuracy, so it orders queries by familiarity nearly as the sampled score does."""
    leads = lead_ins or [LeadIn("")] * len(records)
    gold = [(lead.answer if not r.get("answer_prefix") else None) or r["answers"][0] for r, lead in zip(records, leads)]
    logps = logprob_fn([answer_context(r, lead.text) for r, lead in zip(records, leads)], gold)
    return [math.exp(lp) for lp in logps]


def sampled_answer_scores(records: list[dict], sample_fn: SampleFn, label_fn: LabelFn, k: int) -> list[Score]:
    """Incorrect answers among k samples per record (the paper's short-QA score), labeled by `label_fn`.

    Sampling starts after the answer prefix, so a sample is the answer itself; the label sees prefix + sample."""
    responses = sample_fn(_repeat([answer_context(r) for r in records], k))
    scores = []
    for i, record in enumerate(records):
        samples = responses[i * k:(i + 1) * k]
        prefix = record.get("answer_prefix") or ""
        labels = [label_fn(record, f"{prefix} {s}".strip()) for s in samples]
        scores.append(Score(record["topic"], float(sum(label != "correct" for label in labels)), samples,
                            {"labels": labels}))
    return scores


def long_form_score(n_true: list[int], n_false: list[int], score: str = "false_facts") -> float:
    """One prompt's score from its samples' true and false fact counts (`unfamiliarity.long_form_score`):
    false_facts, the mean false facts per sample; false_fraction, (false + 0.5) / (true + false + 1) pooled."""
    if score == "false_fraction":
        return (sum(n_false) + 0.5) / (sum(n_true) + sum(n_false) + 1)
    return sum(n_false) / len(n_false)


def checked_long_form_scores(topics: list[str], responses: list[str], check_many, k: int,
                             score: str = "false_facts") -> list[Score]:
    """`long_form_score` of each topic's k responses (responses[i*k:(i+1)*k]), checked by `check_many`; the
    details keep each response's true, false and unverifiable (not checkable) claim counts."""
    checks = check_many(_repeat(topics, k), responses)
    scores = []
    for i, topic in enumerate(topics):
        part = checks[i * k:(i + 1) * k]
        n_false, n_true = [c.n_false for c in part], [c.n_true for c in part]
        scores.append(Score(topic, long_form_score(n_true, n_false, score), responses[i * k:(i + 1) * k],
                            {"n_true": n_true, "n_false": n_false,
                             "n_unverifiable": [len(c.unverifiable) for c in part]}))
    return scores
