"""The exact fact checker: decompose a response into atomic facts and label each against the world.

It plays FActScore's role. A response is split into sentences; a sentence that matches one of the
world's fact paraphrases becomes an atomic fact (subject, attribute, value); anything else is
unverifiable. A fact about a different entity than the one asked about is false.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from halluray.world.entities import World
from halluray.world.templates import ABSTAIN_ANSWER, EOS, FACT_TEMPLATES, MENTION_TEMPLATES
from halluray.world.vocab import ATTRIBUTE_VALUES

TRUE, FALSE = "true", "false"


@dataclass(frozen=True)
class AtomicFact:
    text: str
    subject: str
    attribute: str
    value: str
    label: str


@dataclass
class CheckResult:
    facts: list[AtomicFact] = field(default_factory=list)
    unverifiable: list[str] = field(default_factory=list)
    abstained: bool = False
    # Not the expected form of an answer (the checker's `well_formed`): the reward may replace the facts' sum
    # with a fixed penalty (`ppo.reward.malformed_penalty`).
    malformed: bool = False

    @property
    def n_true(self) -> int:
        return sum(f.label == TRUE for f in self.facts)

    @property
    def n_false(self) -> int:
        return sum(f.label == FALSE for f in self.facts)

    @property
    def fraction_true(self) -> float | None:
        """Precision of the stated facts; None when nothing checkable was stated."""
        return self.n_true / len(self.facts) if self.facts else None


def _compile_patterns() -> list[tuple[str, re.Pattern[str]]]:
    patterns = []
    for attribute, templates in FACT_TEMPLATES.items():
        values = "|".join(re.escape(v) for v in ATTRIBUTE_VALUES[attribute])
        for template in templates:
            body = re.escape(template.rstrip(" .")).replace(r"\{name\}", r"(?P<name>[A-Z][a-z]+)")
            body = body.replace(r"\{value\}", rf"(?P<value>{values})")
            patterns.append((attribute, re.compile(rf"^{body}$")))
    return patterns


_PATTERNS = _compile_patterns()
_MENTIONS = [re.compile("^" + re.escape(t.rstrip(" .")).replace(r"\{name\}", r"(?P<name>[A-Z][a-z]+)") + "$")
             for t in MENTION_TEMPLATES]


def split_sentences(response: str) -> list[str]:
    text = response.replace(EOS, " ")
    return [" ".join(s.split()) for s in text.split(" .") if s.strip(" .")]


def decompose(response: str) -> tuple[list[tuple[str, str, str, str]], list[str]]:
    """(sentence, subject, attribute, value) for each fact-bearing sentence, and the leftover sentences.

    Needs no knowledge of the world: the two-stage reward model uses it as its fact decomposer.
    """
    facts, rest = [], []
    for sentence in split_sentences(response):
        for attribute, pattern in _PATTERNS:
            m = pattern.match(sentence)
            if m:
                facts.append((sentence, m["name"], attribute, m["value"]))
                break
        else:
            rest.append(sentence)
    return facts, rest


def is_abstention(sentence: str) -> bool:
    return sentence.startswith(ABSTAIN_ANSWER)


def _subject(sentence: str) -> str | None:
    """The name a sentence of the world's grammar is about (a fact or a fact-free mention); None otherwise."""
    for pattern in [p for _, p in _PATTERNS] + _MENTIONS:
        m = pattern.match(sentence)
        if m:
            return m["name"]
    return None


def well_formed(topic: str, response: str) -> bool:
    """A biography in the world's grammar (the authors' rule, "Bio: ... .", in the world's terms): at least one
    sentence, the last one finished, every sentence a fact, a mention or the abstention. A fragment
    ("letter ."), a garbled sentence or a response cut off mid-sentence is malformed. A fact about someone else
    is not: it is the hallucination the paper studies, and `check` counts it as a false fact (`topic` is the
    interface's; this grammar does not need it)."""
    text = " ".join(response.replace(EOS, " ").split())
    if not text.endswith("."):
        return False
    sentences = split_sentences(text)
    return bool(sentences) and all(is_abstention(s) or _subject(s) is not None for s in sentences)


class ExactChecker:
    def __init__(self, world: World):
        self.world = world

    def decompose(self, response: str) -> tuple[list[tuple[str, str, str, str]], list[str]]:
        return decompose(response)

    def well_formed(self, topic: str, response: str) -> bool:
        return well_formed(topic, response)

    def check(self, topic: str, response: str) -> CheckResult:
        """Label every atomic fact of `response`, a reply to a question about `topic`.

        Repeated facts count once, so restating a true fact cannot inflate a reward.
        """
        result = CheckResult(malformed=not well_formed(topic, response))
        seen = set()
        facts, rest = self.decompose(response)
        for sentence, subject, attribute, value in facts:
            if (subject, attribute, value) in seen:
                continue
            seen.add((subject, attribute, value))
            correct = subject == topic and self.world.has(topic) and self.world.person(topic).facts[attribute] == value
            result.facts.append(AtomicFact(sentence, subject, attribute, value, TRUE if correct else FALSE))
        for sentence in rest:
            if is_abstention(sentence):
                result.abstained = True
            else:
                result.unverifiable.append(sentence)
        return result

    def check_answer(self, name: str, attribute: str, answer: str) -> str:
        """Short-QA label: 'correct', 'abstain' or 'incorrect'."""
        answer = " ".join(answer.replace(EOS, " ").split()).rstrip(" .")
        if answer.startswith(ABSTAIN_ANSWER):
            return "abstain"
        return "correct" if answer == self.world.person(name).facts[attribute] else "incorrect"
