"""What every fact checker shares: the decompose/verify protocol, `check` built from it, batched checking and
short-answer labels.

`DecomposeVerify` turns a checker that can only `decompose(response)` and `verify(topic, facts)` into a full
`halluray.factuality.checking.Checker`: `check` (FActScore's recipe, `check_with`), `check_many` and
`label_answer` (QA matching when the record lists its accepted answers, else one verification of the stated
answer as a fact).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

from halluray.errors import InputError
from halluray.factuality.qa_matching import (
    ABSTAIN,
    CORRECT,
    INCORRECT,
    accepted_answers,
    extract_answer,
    is_abstention,
    label_record_answer,
    normalize_answer,
    record_field,
)
from halluray.world.checker import FALSE, TRUE, AtomicFact, CheckResult
from halluray.world.templates import EOS

SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
"""Where one sentence ends and the next begins (the world's " ." included)."""


@runtime_checkable
class FactChecker(Protocol):
    def decompose(self, response: str) -> list[str]:
        """The atomic facts stated in `response`."""

    def verify(self, topic: str, facts: list[str]) -> list[bool | None]:
        """For each fact about `topic`: True, False, or None when it cannot be verified."""

    def check(self, topic: str, response: str) -> CheckResult:
        """Decompose and verify a response to a prompt about `topic`."""


def ends_a_sentence(topic: str, response: str) -> bool:
    """The rule for checkers without a grammar of their own (the authors': a biography ends with "."): a
    response is well formed when it is an abstention, or is not empty and its last sentence is finished, so an
    answer cut off at the token limit or an empty one is malformed."""
    text = " ".join(response.replace(EOS, " ").split())
    return is_abstention(text) or text.endswith((".", "!", "?"))


def well_formed_prefix(well_formed: Callable[[str, str], bool], topic: str, response: str) -> str | None:
    """None when `response` is well formed; else its longest run of leading whole sentences that `well_formed`
    accepts as a response of its own ("" when not even the first sentence is). A rule that rejects a response
    for any bad sentence (the world's grammar) gives the sentences before the first bad one; the finished-last-
    sentence rule gives the text up to the last full stop."""
    if well_formed(topic, response):
        return None
    sentences = SENTENCE_END.split(" ".join(response.replace(EOS, " ").split()))
    for n in range(len(sentences) - 1, 0, -1):
        prefix = " ".join(sentences[:n])
        if well_formed(topic, prefix):
            return prefix
    return ""


def check_with(checker: Any, topic: str, response: str) -> CheckResult:
    """`check` from `decompose` + `verify`: an abstention states nothing, a repeated fact counts once,
    and a fact verified as None is unverifiable. `malformed` comes from the checker's own `well_formed` where
    it has one, else `ends_a_sentence`."""
    rule = getattr(checker, "well_formed", None)
    result = CheckResult(malformed=not (rule if callable(rule) else ends_a_sentence)(topic, response))
    text = " ".join(response.replace(EOS, " ").split())
    if is_abstention(text):
        result.abstained = True
        return result
    facts = list(dict.fromkeys(" ".join(f.split()) for f in (checker.decompose(text) if text else []) if f.strip()))
    labels = list(checker.verify(topic, facts)) if facts else []
    name = type(checker).__name__
    if len(labels) != len(facts):
        raise InputError(f"{name}.verify returned {len(labels)} labels for {len(facts)} facts")
    for fact, label in zip(facts, labels):
        if label is None:
            result.unverifiable.append(fact)
        elif isinstance(label, bool):
            result.facts.append(AtomicFact(fact, topic, "", "", TRUE if label else FALSE))
        else:
            raise InputError(f"{name}.verify returned {label!r} for a fact; expected True, False or None")
    return result


def same_length(topics: list[str], responses: list[str]) -> None:
    if len(topics) != len(responses):
        raise ValueError(f"check_many got {len(topics)} topics for {len(responses)} responses")


class CheckerBase:
    """`check_many` as a loop over `check`, for checkers that send no requests (nothing to overlap), and the
    generic `well_formed` rule."""

    def well_formed(self, topic: str, response: str) -> bool:
        return ends_a_sentence(topic, response)

    def check_many(self, topics: list[str], responses: list[str]) -> list[CheckResult]:
        same_length(topics, responses)
        return [self.check(topic, response) for topic, response in zip(topics, responses)]


class DecomposeVerify(CheckerBase):
    """Base for checkers that implement `decompose` and `verify`: supplies `check` and `label_answer`."""

    def check(self, topic: str, response: str) -> CheckResult:
        return check_with(self, topic, response)

    def label_answer(self, record: Mapping[str, Any], response: str) -> str:
        """QA matching against the record's `answers`; without them, the answer is verified as the fact
        "{answer_prefix} {answer}" (or "{prompt} {answer}") about the record's topic, and anything but a
        True verdict is incorrect."""
        answers, prefix = accepted_answers(record), record.get("answer_prefix")
        if answers:
            return label_record_answer(record, response)
        answer = extract_answer(response, prefix)
        if answer is None:
            return ABSTAIN
        if not normalize_answer(answer):
            return INCORRECT
        stem = prefix or record_field(record, "prompt", "states the answer as a fact when it has no 'answers'")
        topic = record_field(record, "topic", "names what the answer is verified against")
        return CORRECT if self.verify(topic, [f"{stem} {answer}"]) == [True] else INCORRECT
