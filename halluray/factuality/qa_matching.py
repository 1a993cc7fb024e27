"""Short-answer grading for real QA data: which value a full-sentence answer names, matched against aliases.

`normalize_answer` is TriviaQA's official normalisation (lower-case, `_` and punctuation to spaces, drop the
articles a/an/the, collapse whitespace). A real instruct model answers in sentences ("The capital of France
is Paris.", "Lahore is a city in Pakistan."), so the grade is about the value the sentence *names*, as
generative-QA evaluations grade beside exact match (`label_short_answer`):
1. an abstention ("I don't know ...", `is_abstention`) abstains;
2. only the first non-empty line counts, sentence by sentence (`halluray.data.text.split_sentences`: "St.
   Louis", initials and decimals do not end one); the first sentence that names a value decides, so a
   sentence about something else before the answer is passed over;
3. the record's `answer_prefix` ("The capital of France is"), an optional hint, is removed when the first
   sentence starts with it (compared after normalisation);
4. the question's entity is masked wherever the sentence echoes it ("Mexico City is in Mexico" asked about
   Mexico City names Mexico; an entity that is itself a possible answer, "Singapore", is masked only where
   it first appears), and a possessive "'s" is dropped ("Tin's symbol is Sn");
5. the values a sentence can name are the accepted answers of every record of the same attribute in the
   data (`answer_values`: every capital, every country), or, without such a vocabulary, the record's own
   aliases; the named value is the first of them (longest match at each word) in the predicate, after the
   first copula ("is", "are", "was", "were") or "answer:" outside the entity, and failing that in the whole
   sentence ("Paris is the capital of France" names Paris); a value of one or two letters ("Fe", "In",
   "US") counts only where it is written with a capital letter ("known as" does not name arsenic, As);
6. correct when that value is an accepted answer of the record; incorrect when it is another value or no
   sentence names one.
What it does not read: negation ("not Paris but Lyon" names Paris first) and hedges ("either Paris or Lyon").
Yes/no questions work only when the answer says "yes" or "no" (with answers yes|no). Adjectives are not
nouns: "a South American country" names South America only if the table lists "South American" as an alias.

`extract_answer` is the span a verifier checks when a record has no aliases: after the prefix or the first
copula, cut at its first ",", ";" or " (".
"""

from __future__ import annotations

import re
import string
from collections.abc import Collection, Iterable, Mapping
from typing import Any, NamedTuple

from halluray.data.text import first_sentence as text_first_sentence
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
_POSSESSIVE = re.compile(r"['’]s$", re.IGNORECASE)
COPULAS = frozenset({"is", "are", "was", "were"})
_ANSWER_MARK = re.compile(r"^answer:$", re.IGNORECASE)

Values = Mapping[str, Collection[str]]
"""attribute -> the normalised values its records accept (`answer_values`)."""


def is_abstention(response: str) -> bool:
    text = " ".join(response.replace(EOS, " ").replace("’", "'").split()).lower()
    return text.startswith(ABSTAIN_PHRASES)


def normalize_answer(text: str) -> str:
    """TriviaQA's normalisation (triviaqa_evaluation.normalize_answer)."""
    text = text.replace("_", " ").lower()
    text = "".join(" " if ch in _PUNCTUATION else ch for ch in text)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _first_line(response: str) -> str:
    """The first non-empty line of `response`, whitespace collapsed ("" when there is none)."""
    return " ".join(next((line for line in response.replace(EOS, "\n").splitlines() if line.strip()), "").split())


def first_sentence(response: str) -> str:
    """The first sentence of the first non-empty line of `response` ("" when there is none)."""
    return text_first_sentence(_first_line(response))


def copula_end(sentence: str) -> int | None:
    """Where the word of the first copula ("is", "are", "was", "were") or "answer:" in `sentence` ends."""
    return next((m.end() for m in re.finditer(r"\S+", sentence)
                 if normalize_answer(m.group()) in COPULAS or _ANSWER_MARK.match(m.group())), None)


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


class Word(NamedTuple):
    text: str
    """One normalised word."""
    start: int
    """Where the original word it came from starts in the sentence."""
    marks_predicate: bool
    """An "answer:" marker (the original word, before normalisation)."""
    cased: bool
    """The original word has a capital letter."""


def _words(sentence: str) -> list[Word]:
    """The normalised words of `sentence`, each with where it starts (normalising word by word gives the same
    words as normalising the whole sentence)."""
    out = []
    for m in re.finditer(r"\S+", sentence):
        mark, cased = bool(_ANSWER_MARK.match(m.group())), m.group() != m.group().lower()
        for w in normalize_answer(_POSSESSIVE.sub("", m.group())).split():
            out.append(Word(w, m.start(), mark, cased))
    return out


def _is_short_word(value: str) -> bool:
    """One or two letters ("Fe", "In", "US"): named only where written with a capital ("known as" is not
    arsenic's "As")."""
    return len(value) <= 2 and value.isalpha()


def _entity_mask(words: list[str], entity: str, values: Collection[str]) -> list[bool]:
    target = normalize_answer(entity).split()
    mask = [False] * len(words)
    if not target:
        return mask
    hits = [i for i in range(len(words) - len(target) + 1) if words[i:i + len(target)] == target]
    if " ".join(target) in values:
        hits = hits[:1]  # a repeated "Singapore" after the first is the answer
    for i in hits:
        mask[i:i + len(target)] = [True] * len(target)
    return mask


class Named(NamedTuple):
    value: str
    """The normalised value."""
    start: int
    """Where it starts in the sentence (a character offset)."""


def named_value(sentence: str, values: Collection[str], entity: str = "") -> Named | None:
    """The first of `values` (normalised) that `sentence` names, its predicate first (module docstring, 4-5)."""
    if not values:
        return None
    words = _words(sentence)
    texts = [w.text for w in words]
    masked = _entity_mask(texts, entity, values)
    longest = max(len(v.split()) for v in values)
    predicate = next((i + 1 for i, w in enumerate(words)
                      if not masked[i] and (w.text in COPULAS or w.marks_predicate)), 0)
    for lo in dict.fromkeys((predicate, 0)):
        for i in range(lo, len(texts)):
            for n in range(min(longest, len(texts) - i), 0, -1):
                phrase = " ".join(texts[i:i + n])
                if phrase in values and not all(masked[i:i + n]) and (words[i].cased or not _is_short_word(phrase)):
                    return Named(phrase, words[i].start)
    return None


def first_named(response: str, values: Collection[str], entity: str = "", answer_prefix: str | None = None) \
        -> Named | None:
    """The first value of `values` that a sentence of `response`'s first line names (`named_value`, sentence by
    sentence; a sentence that names none is passed over), `start` an offset into that line with its whitespace
    collapsed; the `answer_prefix` is removed from the first sentence when it starts with it."""
    line = _first_line(response)
    offset = 0
    for i, sentence in enumerate(split_sentences(line)):
        offset = line.index(sentence, offset)
        span = _strip_prefix(sentence, answer_prefix) if answer_prefix and i == 0 else sentence
        named = named_value(span, values, entity)
        if named is not None:
            return Named(named.value, offset + len(sentence) - len(span) + named.start)
        offset += len(sentence)
    return None


def answer_values(records: Iterable[Mapping[str, Any]]) -> dict[str, set[str]]:
    """attribute -> every normalised accepted answer of the records that ask for it: the values an answer to
    such a question can name."""
    values: dict[str, set[str]] = {}
    for r in records:
        values.setdefault(str(r.get("attribute") or ""), set()).update(
            normalize_answer(a) for a in accepted_answers(r))
    for v in values.values():
        v.discard("")
    return values


def extract_answer(response: str, answer_prefix: str | None = None) -> str | None:
    """The answer span of `response` (module docstring), "" when nothing is left, None for an abstention."""
    if is_abstention(response):
        return None
    first = first_sentence(response)
    if answer_prefix and (rest := _strip_prefix(first, answer_prefix)) != first:
        answer = rest
    else:
        end = copula_end(first)
        answer = first if end is None else first[end:]
    return _CLAUSE_END.split(answer, 1)[0].strip(" .!?")


def accepted_answers(record: Mapping[str, Any]) -> list[str]:
    """The record's `answers` as a list (a lone string is one answer); [] when it has none."""
    answers = record.get("answers") or []
    return [answers] if isinstance(answers, str) else [str(a) for a in answers]


def label_short_answer(response: str, answers: Iterable[str], answer_prefix: str | None = None, *,
                       entity: str = "", values: Collection[str] = ()) -> str:
    """'abstain', 'correct' (the value the first sentence names is an accepted answer) or 'incorrect'; `values`
    are the other normalised values such an answer may name (module docstring)."""
    if is_abstention(response):
        return ABSTAIN
    accepted = {normalize_answer(a) for a in answers} - {""}
    named = first_named(response, accepted | set(values), entity, answer_prefix)
    return CORRECT if named is not None and named.value in accepted else INCORRECT


def _record_terms(record: Mapping[str, Any], values: Values | None, answers: Iterable[str] | None) -> dict:
    """`label_short_answer`'s arguments for a prompt record: its aliases (or `answers`), `answer_prefix`,
    entity (`topic`) and the values of its `attribute` in `values`."""
    return {"answers": accepted_answers(record) if answers is None else list(answers),
            "answer_prefix": record.get("answer_prefix"), "entity": str(record.get("topic") or ""),
            "values": (values or {}).get(str(record.get("attribute") or ""), ())}


def label_record_answer(record: Mapping[str, Any], response: str, values: Values | None = None,
                        answers: Iterable[str] | None = None) -> str:
    """`label_short_answer` of a prompt record's response; `answers` overrides the record's own."""
    return label_short_answer(response, **_record_terms(record, values, answers))


def named_in_record_answer(record: Mapping[str, Any], response: str, values: Values | None = None) -> Named | None:
    """The value `label_record_answer` reads from `response` (None when it names none)."""
    t = _record_terms(record, values, None)
    accepted = {normalize_answer(a) for a in t["answers"]} - {""}
    return first_named(response, accepted | set(t["values"]), t["entity"], t["answer_prefix"])


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
