"""`halluray inspect-table`: a few questions of a short-QA table with the base model's answers and their grades.

A minute's look before an hour's run: questions spread over the table's attributes and fame, each answered
greedily and `--samples` times at T=1 by the base model in the pipeline's prompt format, each answer with the
value the grader read from it (qa_matching.py) and its grade, and P(gold) after the model's own lead-in. Then
the grade shares over the shown answers, with a warning where one grade is so common that the unfamiliarity
gate would stop the run (pipeline/shared/unfamiliarity_gates.py). Writes nothing.
"""

from __future__ import annotations

import torch

from halluray.config import ExperimentConfig
from halluray.data import prompts_for
from halluray.errors import InputError
from halluray.eval.qa import LABELS
from halluray.eval.report import fmt
from halluray.factuality import unfamiliarity as unf
from halluray.factuality.checking import checker_for, data_answer_values
from halluray.factuality.qa_matching import accepted_answers, named_in_record_answer
from halluray.layout import RunLayout, require
from halluray.models.build import load_model
from halluray.models.generation import continuation_logprobs, sample
from halluray.pipeline.shared.record_unfamiliarity import QA_SENTENCE_NEW_TOKENS
from halluray.pipeline.shared.unfamiliarity_gates import CHECK, one_grade


def pick(records: list[dict], n: int) -> list[dict]:
    """`n` records evenly spaced over the records ordered by attribute, then fame (most famous first)."""
    ordered = sorted(records, key=lambda r: (str(r.get("attribute") or ""), -(r.get("fame") or 0.0)))
    if len(ordered) <= n:
        return ordered
    return [ordered[(i * (len(ordered) - 1)) // max(1, n - 1)] for i in range(n)]


def run(cfg: ExperimentConfig, n: int = 12, samples: int = 2) -> dict:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    records = [r for split in cfg.unfamiliarity.splits for r in prompts_for(cfg, split) if r.get("answers")]
    if not records:
        raise InputError(f"inspect-table: {cfg.data.path} has no short-QA records (rows with answers) in the "
                         f"splits {', '.join(cfg.unfamiliarity.splits)} (unfamiliarity.splits)")
    chosen = pick(records, n)
    model, tokenizer = load_model(require(RunLayout(cfg).base_model, "import-model"), cfg.model.trust_remote_code)
    checker, values = checker_for(cfg), data_answer_values(cfg) or {}
    prompts = [r["prompt"] for r in chosen]
    greedy = sample(model, tokenizer, prompts, max_new_tokens=QA_SENTENCE_NEW_TOKENS, temperature=0)
    sampled = sample(model, tokenizer, [p for p in prompts for _ in range(samples)],
                     max_new_tokens=QA_SENTENCE_NEW_TOKENS, temperature=1.0, seed=cfg.seed)
    leads = [unf.lead_in_of(g, r, values.get(r.get("attribute") or "", ())) for r, g in zip(chosen, greedy)]
    p_gold = unf.p_gold_scores(chosen, lambda ps, cs: continuation_logprobs(model, tokenizer, ps, cs), leads)
    print(f"inspect-table: {len(chosen)} of {len(records)} questions from {cfg.data.path}, model "
          f"{RunLayout(cfg).base_model}; greedy and {samples} sample(s) at T=1 each")
    grades = []
    for i, r in enumerate(chosen):
        start = r.get("answer_prefix") or leads[i].text
        print(f"\n[{r.get('attribute')}] {r['topic']}: accepted {' | '.join(accepted_answers(r))}; fame "
              f"{fmt(r.get('fame'), 2)}; P(gold) {fmt(p_gold[i], 3)} after {start!r}")
        for how, answer in [("greedy", greedy[i])] + [("T=1", s) for s in sampled[i * samples:(i + 1) * samples]]:
            grade = checker.label_answer(r, answer)
            grades.append(grade)
            named = named_in_record_answer(r, answer, values)
            print(f"  {how:>6}: {answer[:100]!r} -> {grade} (names {named.value if named else 'nothing'!r})")
    shares = {label: grades.count(label) / len(grades) for label in LABELS}
    print(f"\ngrades over {len(grades)} answers: " + ", ".join(f"{k} {v:.2f}" for k, v in shares.items()))
    one_way = one_grade(shares, cfg.unfamiliarity)
    if one_way:
        print(f"warning: {one_way[1]:.0%} of these answers are graded {one_way[0]}, which would stop a run "
              f"(unfamiliarity.gate_max_label_share {cfg.unfamiliarity.gate_max_label_share:g}); {CHECK}")
    return {"questions": len(chosen), "grades": shares}
