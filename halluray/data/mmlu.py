"""MMLU prompts (paper §4): a question with its choices -> the correct choice.

Default columns, tried in order (override any with `data.fields`):
- topic: `id`, `question_id` (optional: without one, the topic is "<subject>-<row>" or "<split>-<row>");
- question: `question`, `input`;
- choices: `choices` (HF `cais/mmlu`, a list column), or the four columns `A`, `B`, `C`, `D`
  (`lukaemon/mmlu`-style CSV); a list of column names is accepted in `data.fields.choices`;
- answer: `answer` (an index, as in `cais/mmlu`, or a letter A-D), `answer_index`, `target`;
- subject: `subject` (optional, used only for the fallback topic).
Records: topic, prompt ("QUESTION\nA. ...\nB. ...\nAnswer:"), target (the correct choice's text), choices and
answer_index.
"""

from __future__ import annotations

from pathlib import Path

from halluray.data.source import Column, Fields, clean, open_source, to_dataset
from halluray.errors import InputError

DEFAULT_FIELDS: dict[str, tuple[Column, ...]] = {
    "topic": ("id", "question_id"),
    "question": ("question", "input"),
    "choices": ("choices", ("A", "B", "C", "D")),
    "answer": ("answer", "answer_index", "target"),
    "subject": ("subject",),
}
LETTERS = "ABCDEFGHIJ"


def mcq_prompt(question: str, choices: list[str]) -> str:
    lines = [question] + [f"{LETTERS[i]}. {c}" for i, c in enumerate(choices)] + ["Answer:"]
    return "\n".join(lines)


def answer_index(answer, choices: list[str]) -> int | None:
    """An answer given as an index (int or digits), a letter (A, b, ...) or the choice's text; None if neither."""
    if isinstance(answer, bool):
        return None
    if isinstance(answer, int):
        index = answer
    else:
        text = clean(answer)
        if text.isdigit():
            index = int(text)
        elif len(text) == 1 and text.upper() in LETTERS:
            index = LETTERS.index(text.upper())
        elif text in choices:
            index = choices.index(text)
        else:
            return None
    return index if 0 <= index < len(choices) else None


def load_mmlu(path: str | Path, split: str | None = None, *, fields: dict[str, Column] | None = None,
              subset: str | None = None, cache_dir: str | None = None):
    ds, where = open_source(path, split, subset=subset, cache_dir=cache_dir)
    cols = Fields(ds, where, "mmlu", DEFAULT_FIELDS, fields, optional=("topic", "subject"))
    records, skipped = [], 0
    for i, row in cols.read(ds):
        question = clean(row["question"])
        raw = row["choices"]
        choices = [clean(c) for c in raw] if isinstance(raw, (list, tuple)) else []
        if not question or len(choices) < 2 or not all(choices):
            skipped += 1
            continue
        index = answer_index(row["answer"], choices)
        if index is None:
            raise InputError(f"{where}: row {i}: answer {row['answer']!r} is neither an index nor a letter of "
                             f"its {len(choices)} choices")
        topic = clean(row["topic"]) or f"{clean(row['subject']) or split or 'mmlu'}-{i}"
        records.append({"topic": topic, "prompt": mcq_prompt(question, choices), "target": choices[index],
                        "choices": choices, "answer_index": index})
    return to_dataset(records, where, skipped)
