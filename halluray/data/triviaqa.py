"""TriviaQA prompts (paper §4): the question -> the answer value; `answers` lists every accepted alias.

Default columns, tried in order (override any with `data.fields`):
- topic: `question_id`, `id` (optional: without one, the topic is "<split>-<row>");
- question: `question`;
- answer: `answer.value` (HF `trivia_qa`, e.g. subset `rc.nocontext`; also a flattened `answer.value` column),
  `answer`, `value`;
- aliases: `answer.aliases`, `aliases`, `answers` (optional).
`answers` is the target followed by its aliases, without duplicates.
"""

from __future__ import annotations

from pathlib import Path

from halluray.data.source import Column, Fields, clean, open_source, to_dataset

DEFAULT_FIELDS: dict[str, tuple[Column, ...]] = {
    "topic": ("question_id", "id"),
    "question": ("question",),
    "answer": ("answer.value", "answer", "value"),
    "aliases": ("answer.aliases", "aliases", "answers"),
}


def _as_list(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, dict):  # a whole `answer` struct
        return _as_list(value.get("value")) + _as_list(value.get("aliases"))
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value if clean(v)]
    return [clean(value)] if clean(value) else []


def load_triviaqa(path: str | Path, split: str | None = None, *, fields: dict[str, Column] | None = None,
                  subset: str | None = None, cache_dir: str | None = None):
    ds, where = open_source(path, split, subset=subset, cache_dir=cache_dir)
    cols = Fields(ds, where, "triviaqa", DEFAULT_FIELDS, fields, optional=("topic", "aliases"))
    records, skipped = [], 0
    for i, row in cols.read(ds):
        question, answers = clean(row["question"]), _as_list(row["answer"])
        if not (question and answers):
            skipped += 1
            continue
        answers = list(dict.fromkeys(answers + _as_list(row["aliases"])))
        topic = clean(row["topic"]) or f"{split or 'triviaqa'}-{i}"
        records.append({"topic": topic, "prompt": question, "target": answers[0], "answers": answers})
    return to_dataset(records, where, skipped)
