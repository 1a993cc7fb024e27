"""Unfamiliarity of real prompt records (any dataset but the world's), graded by the configured fact checker.

- short QA (records with `answers`: fact tables, TriviaQA): P(canonical answer) from one forward pass for every
  record, and the paper's k-sample score (incorrect of `short_qa_samples`) on `sampled_splits`; which one
  decides `unfamiliar` is `unfamiliarity.short_qa_score`;
- long form (WikiBios, WikiPlots, entity tables): false facts over `long_form_samples` responses (their mean or
  their fraction of the checkable facts, `long_form_score`), checked by the fact checker (FActScore's role);
- multiple choice (MMLU): NLL of the correct choice among the choices, as for the world.
Prompts are zero-shot: a real pretrained model answers a question (in its chat format where it has one); the
world's few-shot prompts exist because its tiny model was never taught a question format.
"""

from __future__ import annotations

from typing import NamedTuple

from halluray.config import ExperimentConfig
from halluray.data import prompts_for
from halluray.eval.metrics import pearson, spearman
from halluray.eval.qa import LABELS
from halluray.eval.report import fmt
from halluray.factuality import unfamiliarity as unf
from halluray.factuality.checking import Checker, data_answer_values
from halluray.logging import progress
from halluray.models.generation import continuation_logprobs, sample

QA_MAX_NEW_TOKENS = 12
"""Tokens of a sampled short answer after the answer prefix ("Ouagadougou." is a few tokens)."""
QA_SENTENCE_NEW_TOKENS = 32
"""Tokens of a sampled answer without a prefix: a whole sentence ("Lahore is a city in Pakistan.")."""


class _Choice(NamedTuple):  # the shape unf.mcq_scores reads
    name: str
    attribute: str
    choices: tuple
    answer_index: int


def task_of(record: dict) -> str:
    if "choices" in record:
        return "mcq"
    return "short_qa" if record.get("answers") else "long_form"


def score_records(cfg: ExperimentConfig, model, tokenizer, checker: Checker) -> list[dict]:
    """One unfamiliarity row per scored record: task, name, attribute, split, fame, score, unfamiliar, ..."""
    u = cfg.unfamiliarity
    values = data_answer_values(cfg) or {}
    rows: list[dict] = []
    for split in u.splits:
        records = list(prompts_for(cfg, split))
        by_task: dict[str, list[dict]] = {}
        for r in records:
            by_task.setdefault(task_of(r), []).append(r)
        for task, recs in by_task.items():
            if task not in u.tasks:
                continue
            sampled = u.sampled_splits is None or split in u.sampled_splits
            if task == "short_qa":
                scored = _short_qa(cfg, model, tokenizer, checker, recs, sampled, split, values)
            else:
                scored = {"long_form": _long_form, "mcq": _mcq}[task](cfg, model, tokenizer, checker, recs, split)
            rows += [dict(row, task=task, split=split) for row in scored]
    return rows


def _chunks(records: list[dict], size: int, desc: str):
    for start in progress(range(0, len(records), size), desc=desc):
        yield start, records[start:start + size]


def _lead_ins(cfg, model, tokenizer, records, split, values) -> list[unf.LeadIn]:
    """Where each record's answer starts (unf.lead_in_of of the model's greedy reply) when it has no
    `answer_prefix`; an empty one for a record that has one."""
    u = cfg.unfamiliarity
    todo = [i for i, r in enumerate(records) if not r.get("answer_prefix")]
    leads = [unf.LeadIn("")] * len(records)
    if not todo:
        return leads
    for start, part in _chunks([records[i] for i in todo], u.batch_size, f"unfamiliarity: greedy lead-ins, {split}"):
        replies = sample(model, tokenizer, [r["prompt"] for r in part], max_new_tokens=QA_SENTENCE_NEW_TOKENS,
                         temperature=0, batch_size=u.batch_size)
        for j, (r, reply) in enumerate(zip(part, replies)):
            leads[todo[start + j]] = unf.lead_in_of(reply, r, values.get(r.get("attribute") or "", ()))
    return leads


def _short_qa(cfg, model, tokenizer, checker, records, sampled, split, values) -> list[dict]:
    u = cfg.unfamiliarity
    logprob_fn = lambda ps, cs: continuation_logprobs(model, tokenizer, ps, cs, u.batch_size)  # noqa: E731
    leads = _lead_ins(cfg, model, tokenizer, records, split, values)
    p_gold = []
    for start, part in _chunks(records, u.batch_size, f"unfamiliarity: P(gold), {split}"):
        p_gold += unf.p_gold_scores(part, logprob_fn, leads[start:start + len(part)])
    samples: list[unf.Score | None] = [None] * len(records)
    if sampled:
        chunk = max(1, u.batch_size // u.short_qa_samples)
        for start, part in _chunks(records, chunk, f"unfamiliarity: {u.short_qa_samples} samples, {split}"):
            tokens = QA_MAX_NEW_TOKENS if all(r.get("answer_prefix") for r in part) else QA_SENTENCE_NEW_TOKENS

            def cut(ps: list[str], seed: int = cfg.seed + start, tokens: int = tokens) -> list[str]:
                answers = sample(model, tokenizer, ps, max_new_tokens=tokens, temperature=u.temperature,
                                 batch_size=u.batch_size, seed=seed)  # this chunk's seed and length, bound here
                return [unf.first_line(s) for s in answers]

            samples[start:start + len(part)] = unf.sampled_answer_scores(part, cut, checker.label_answer,
                                                                         u.short_qa_samples)
    threshold = u.short_qa_threshold if u.short_qa_threshold is not None else u.short_qa_samples / 2
    rows = []
    for r, p, s, lead in zip(records, p_gold, samples, leads):
        row = {"name": r["topic"], "attribute": r.get("attribute"), "fame": r.get("fame"), "p_gold": p,
               "lead_in": lead.text,
               "sampled_incorrect": s.score if s else None, "samples": s.samples if s else [],
               "labels": s.details["labels"] if s else []}
        if u.short_qa_score == "p_gold":
            row.update(score=1.0 - p, unfamiliar=p < u.p_gold_threshold)
        elif s is None:
            raise ValueError(f"unfamiliarity.short_qa_score=samples needs '{split}' in unfamiliarity.sampled_splits")
        else:
            row.update(score=s.score, unfamiliar=s.score > threshold)
        rows.append(row)
    return rows


def _long_form(cfg, model, tokenizer, checker, records, split) -> list[dict]:
    u = cfg.unfamiliarity
    k = u.long_form_samples
    responses = []
    for start, part in _chunks(records, max(1, u.batch_size // k), f"unfamiliarity: long form, {split}"):
        responses += sample(model, tokenizer, [r["prompt"] for r in part for _ in range(k)],
                            max_new_tokens=u.max_new_tokens, temperature=u.temperature, batch_size=u.batch_size,
                            seed=cfg.seed + start)
    scores = unf.checked_long_form_scores([r["topic"] for r in records], responses, checker.check_many, k,
                                          u.long_form_score)
    return [{"name": s.name, "attribute": None, "fame": r.get("fame"), "score": s.score,
             "unfamiliar": s.score > u.long_form_threshold, "samples": s.samples, **s.details}
            for r, s in zip(records, scores)]


def _mcq(cfg, model, tokenizer, checker, records, split) -> list[dict]:
    u = cfg.unfamiliarity
    items = [_Choice(r["topic"], r.get("subject", ""), tuple(r["choices"]), r["answer_index"]) for r in records]
    logprob_fn = lambda ps, cs: continuation_logprobs(model, tokenizer, ps, cs, u.batch_size)  # noqa: E731
    scores = unf.mcq_scores(items, [r["prompt"] for r in records], logprob_fn)
    return [{"name": s.name, "attribute": None, "fame": r.get("fame"), "score": s.score,
             "unfamiliar": s.score > u.mcq_threshold, **s.details} for r, s in zip(records, scores)]


def summarize_records(rows: list[dict], k: int, long_form_score: str = "false_facts") -> dict:
    """Per task: how many, the unfamiliar rate, and for short QA how P(gold) and the sampled accuracy agree
    and how both fall with fame (quartiles of the records' `fame`, most famous first); for long form the true,
    false and not-checkable claims per response overall and by fame quartile, the score's Spearman correlation
    with fame and its split-half reliability (`long_form_score` names the score)."""
    summary: dict = {}
    for task in sorted({r["task"] for r in rows}):
        part = [r for r in rows if r["task"] == task]
        s = {"n": len(part), "unfamiliar_rate": sum(r["unfamiliar"] for r in part) / len(part),
             "mean_score": sum(r["score"] for r in part) / len(part)}
        if task == "short_qa":
            sampled = [r for r in part if r["sampled_incorrect"] is not None]
            acc = [1 - r["sampled_incorrect"] / k for r in sampled]
            s["mean_p_gold"] = sum(r["p_gold"] for r in part) / len(part)
            s["n_sampled"] = len(sampled)
            s["sampled_accuracy"] = sum(acc) / len(acc) if acc else None
            s["corr_p_gold_sampled_accuracy"] = pearson([r["p_gold"] for r in sampled], acc)
            s["correct_of_k_histogram"] = [sum(round(k - r["sampled_incorrect"]) == c for r in sampled)
                                           for c in range(k + 1)]
            labels = [label for r in sampled for label in r["labels"]]
            s["n_answers"] = len(labels)
            s["label_shares"] = {label: labels.count(label) / len(labels) for label in LABELS} if labels else None
            p_gold = sorted(r["p_gold"] for r in part)
            s["p_gold_p10"], s["p_gold_p90"] = p_gold[len(p_gold) // 10], p_gold[(9 * len(p_gold)) // 10]
            s["by_fame_quartile"] = _by_fame(part, k)
        if task == "long_form":
            s.update(_claims(part))
            s["spearman_score_fame"] = spearman([r["score"] for r in part if r.get("fame") is not None],
                                                 [r["fame"] for r in part if r.get("fame") is not None])
            s["score_split_half_r"] = _split_half(part, long_form_score)
            s["by_fame_quartile"] = _long_form_by_fame(part)
        summary[task] = s
    return summary


def _claims(rows: list[dict]) -> dict:
    """Per response, over every sample of `rows`: mean true, false and not-checkable claims, and the share of
    responses with at least one checkable (true or false) claim."""
    per = [(t, f, u) for r in rows for t, f, u in zip(r["n_true"], r["n_false"], r["n_unverifiable"])]
    n = len(per)
    return {"responses": n, "true_per_response": sum(t for t, _, _ in per) / n if n else None,
            "false_per_response": sum(f for _, f, _ in per) / n if n else None,
            "not_checkable_per_response": sum(u for _, _, u in per) / n if n else None,
            "with_checkable_claim": sum(t + f > 0 for t, f, _ in per) / n if n else None}


def _split_half(rows: list[dict], score: str) -> float | None:
    """Pearson r over prompts of the score (`unfamiliarity.long_form_score`) of their first and of their second
    half of samples: how much of the score is the prompt's and not the sampling's (None below 2 samples)."""
    if any(len(r["n_false"]) < 2 for r in rows):
        return None
    halves = [[unf.long_form_score(r["n_true"][part], r["n_false"][part], score)
               for part in (slice(0, len(r["n_false"]) // 2), slice(len(r["n_false"]) // 2, None))] for r in rows]
    return pearson([a for a, _ in halves], [b for _, b in halves])


def _quarters(rows: list[dict]) -> list[list[dict]] | None:
    """`rows` with a fame in four quarters by fame, most famous first; None for fewer than four."""
    famed = sorted((r for r in rows if r.get("fame") is not None), key=lambda r: -r["fame"])
    if len(famed) < 4:
        return None
    return [famed[i * len(famed) // 4:(i + 1) * len(famed) // 4] for i in range(4)]


def _by_fame(rows: list[dict], k: int) -> dict | None:
    quarters = _quarters(rows)
    if quarters is None:
        return None
    mean = lambda xs: sum(xs) / len(xs) if xs else None  # noqa: E731
    return {"p_gold": [mean([r["p_gold"] for r in q]) for q in quarters],
            "sampled_accuracy": [mean([1 - r["sampled_incorrect"] / k for r in q
                                       if r["sampled_incorrect"] is not None]) for q in quarters],
            "unfamiliar_rate": [mean([float(r["unfamiliar"]) for r in q]) for q in quarters]}


def _long_form_by_fame(rows: list[dict]) -> dict | None:
    """`_claims` and the mean score (false claims per response) of each fame quarter, most famous first."""
    quarters = _quarters(rows)
    if quarters is None:
        return None
    claims = [_claims(q) for q in quarters]
    out = {key: [c[key] for c in claims] for key in claims[0]}
    out["score"] = [sum(r["score"] for r in q) / len(q) for q in quarters]
    out["fame_range"] = [[min(r["fame"] for r in q), max(r["fame"] for r in q)] for q in quarters]
    return out


def summary_lines(summary: dict) -> list[str]:
    lines = []
    for task, s in summary.items():
        if not isinstance(s, dict):
            continue
        line = f"unfamiliarity [{task}]: {s['n']} queries, unfamiliar {fmt(s['unfamiliar_rate'], 2)}"
        if task == "short_qa":
            line += (f", mean P(gold) {fmt(s['mean_p_gold'], 3)}, sampled accuracy {fmt(s['sampled_accuracy'], 3)} "
                     f"over {s['n_sampled']}, corr(P(gold), sampled accuracy) "
                     f"{fmt(s['corr_p_gold_sampled_accuracy'], 2)}")
            q = s["by_fame_quartile"]
            if q:
                line += ("; sampled accuracy by fame quartile (most famous first) "
                         f"{[fmt(v, 2) for v in q['sampled_accuracy']]}")
        if task == "long_form":
            line += (f"; per response over {s['responses']}: true {fmt(s['true_per_response'], 2)}, false "
                     f"{fmt(s['false_per_response'], 2)}, not checkable {fmt(s['not_checkable_per_response'], 2)}, "
                     f"{fmt(s['with_checkable_claim'], 2)} with a checkable claim; Spearman(score, fame) "
                     f"{fmt(s['spearman_score_fame'], 2)}; split-half r of the score {fmt(s['score_split_half_r'], 2)}")
            q = s["by_fame_quartile"]
            if q:
                line += "; by fame quartile (most famous first) true/false " + ", ".join(
                    f"{fmt(t, 2)}/{fmt(f, 2)}" for t, f in zip(q["true_per_response"], q["false_per_response"]))
        lines.append(line)
    return lines
