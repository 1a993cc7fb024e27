"""Short-answer grading for real QA data: TriviaQA-style normalised exact match against accepted aliases.

`normalize_answer` is TriviaQA's official normalisation (lower-case, `_` and punctuation to spaces, drop the
articles a/an/the, collapse whitespace); an answer is correct when it equals one alias after normalisation.

`extract_answer` takes the answer phrase out of a model's sentence-style response, in this order:
1. an abstention ("I don't know ...", `is_abstention`) is no answer (None);
2. the first non-empty line, cut at its first sentence end (`halluray.data.text.split_sentences`, so
   "St. Louis", initials and decimals do not end it; "Paris. he was ..." with a lower-case word after the
   period does not end there either);
3. the record's `answer_prefix` ("The capital of France is") is removed when the sentence starts with it,
   compared after normalisation (so case, articles and punctuation may differ);
4. the rest is cut at its first ",", ";" or " (" (an apposition or aside: "Paris, the capital" -> "Paris").
Nothing cleverer: a response that restates the question in other words, or hedges ("I think it is Paris"),
is graded on what is left and is usually incorrect.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping
from typing import Any

from halluray.data.text import split_sentences
from halluray.errors import InputError
from halluray.world.templates import EOS

CORRECT, INCORRECT, ABSTAIN = "correct", "incorrect", "abstain"

# Responses that begin with one of these are abstentions: nothing is decomposed or verified (as in FActScore).
ABSTAIN_PHRASES = ("i do not know", "i don't know", "i dont know", "i'm not sure", "i am not sure",
                   "i could not find any information", "i cannot find any information",
                   "i have no information", "there is no information", "i'm sorry", "i am sorry")

_PUNCTUATION = frozenset(string.punctuation + "‘’´`")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_CLAUSE_END = re.compile(r",|;| \(")


def is_abstention(response: str) -> bool:
    text = " ".join(response.replace(EOS, " ").replace("’", "'").split()).lower()
    return text.startswith(ABSTAIN_PHRASES)


def normalize_answer(text: str) -> str:
    """TriviaQA's normalisation (triviaqa_evaluation.normalize_answer)."""
    text = text.replace("_", " ").lower()
    text = "".join(" " if ch in _PUNCTUATION else ch for ch in text)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _strip_prefix(text: str, prefix: str) -> str:
    """`text` without a leading `prefix`, matched word by word after normalisation; `text` when it has none."""
    target = normalize_answer(prefix)
    if not target:
        return text
    for word in re.finditer(r"\S+", text):
        head = normalize_answer(text[: word.end()])
        if head == target:
            return text[word.end():]
        if not target.startswith(head):
            break
    return text


def extract_answer(response: str, answer_prefix: str | None = None) -> str | None:
    """The answer phrase of `response` (module docstring), "" when nothing is left, None for an abstention."""
    if is_abstention(response):
        return None
    line = next((line for line in response.replace(EOS, "\n").splitlines() if line.strip()), "")
    sentences = split_sentences(line)
    first = sentences[0] if sentences else ""
    answer = _strip_prefix(first, answer_prefix) if answer_prefix else first
    return _CLAUSE_END.split(answer, 1)[0].strip(" .!?")


def accepted_answers(record: Mapping[str, Any]) -> list[str]:
    """The record's `answers` as a list (a lone string is one answer); [] when it has none."""
    answers = record.get("answers") or []
    return [answers] if isinstance(answers, str) else [str(a) for a in answers]


def matches(answer: str, answers: Iterable[str]) -> bool:
    normalized = normalize_answer(answer)
    return bool(normalized) and any(normalized == normalize_answer(a) for a in answers)


def label_short_answer(response: str, answers: Iterable[str], answer_prefix: str | None = None) -> str:
    """'abstain', 'correct' (the extracted answer equals an alias after normalisation) or 'incorrect'."""
    answer = extract_answer(response, answer_prefix)
    if answer is None:
        return ABSTAIN
    return CORRECT if matches(answer, answers) else INCORRECT


def phrases(text: str, max_words: int) -> set[str]:
    """Every run of 1..`max_words` words of `text` after normalisation: a value is in `text`, on word
    boundaries, when its normalised form is in this set."""
    words = normalize_answer(text).split()
    return {" ".join(words[i:i + n]) for n in range(1, max_words + 1) for i in range(len(words) - n + 1)}


def record_field(record: Mapping[str, Any], key: str, why: str) -> str:
    value = record.get(key)
    if not value:
        raise InputError(f"a short-QA record (topic {record.get('topic')!r}) has no {key!r}, which {why}")
    return str(value)
