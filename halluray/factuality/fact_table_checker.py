"""A fact checker from a table of accepted answers: (entity, attribute) -> aliases, read from CSV or JSONL.

Short answers (`label_answer`) are graded exactly as `qa_matching` grades them, against the table's aliases
for the record's (topic, attribute), or the record's own `answers` when the table has no such row; every
value the table lists for the attribute is what else an answer may name.

Long form (`check`) is a string-matching heuristic, not a decomposition:
- the response is split into sentences (`halluray.data.text.split_sentences`);
- a sentence that contains an accepted answer of one of the topic's attributes (normalised as in
  `qa_matching`, on word boundaries) states a true fact for that attribute;
- failing that, a sentence that contains a value the table lists for that attribute of some *other* entity,
  and that is not one of the topic's own answers, states a false fact ("born in Cork" when the topic was
  born in Dublin and someone else in the table in Cork);
- a sentence with neither is unverifiable; a sentence may state several facts (one per attribute).
What it cannot see: who a sentence is about (a true fact about someone else counts against the topic), a
wrong value the table never lists (unverifiable, not false), negation ("was not born in Cork" is true), and
short common values (a year, "English") matching where they mean something else. A topic missing from the
table makes every sentence unverifiable. It is a cheap, deterministic proxy; FActScore (kind 'openai') is
the measure to report.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from halluray.data.text import split_sentences
from halluray.errors import InputError
from halluray.factuality.base import CheckerBase
from halluray.factuality.qa_matching import (
    accepted_answers,
    is_abstention,
    label_record_answer,
    normalize_answer,
    phrases,
    record_field,
)
from halluray.world.checker import FALSE, TRUE, AtomicFact, CheckResult
from halluray.world.templates import EOS

Table = dict[str, dict[str, list[str]]]
"""entity -> attribute -> accepted answers (canonical first)."""
COLUMNS = ("entity", "attribute", "answers")


def _rows(path: Path) -> Iterator[tuple[str, dict]]:
    """(where, row) for each row of a .csv or .jsonl table."""
    if path.suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as f:
            for n, row in enumerate(csv.DictReader(f), 2):
                yield f"{path}:{n}", row
    elif path.suffix in (".jsonl", ".json"):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    yield f"{path}:{n}", json.loads(line)
                except json.JSONDecodeError:
                    raise InputError(f"{path}:{n}: not valid JSON") from None
    else:
        raise InputError(f"{path}: a fact table must be a .csv or .jsonl file (fact_checker.table_path)")


def load_fact_table(path: str | Path) -> Table:
    """The table at `path`: rows with `entity`, `attribute` and `answers` (a list, or one string of
    `|`-separated aliases); other columns are ignored, and rows of the same (entity, attribute) are merged."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"{path}: fact table not found (fact_checker.table_path)")
    table: Table = {}
    for where, row in _rows(path):
        missing = [c for c in COLUMNS if not isinstance(row, dict) or row.get(c) in (None, "")]
        if missing:
            raise InputError(f"{where}: missing {', '.join(missing)} (a fact table row has {', '.join(COLUMNS)})")
        answers = row["answers"].split("|") if isinstance(row["answers"], str) else row["answers"]
        if not isinstance(answers, list) or not all(isinstance(a, (str, int, float)) for a in answers):
            raise InputError(f"{where}: 'answers' must be a list of strings or a '|'-separated string")
        known = table.setdefault(str(row["entity"]).strip(), {}).setdefault(str(row["attribute"]).strip(), [])
        known += [a for a in dict.fromkeys(str(a).strip() for a in answers) if a and a not in known]
    return table


class FactTableChecker(CheckerBase):
    """Grades short answers and (heuristically, see the module docstring) long-form sentences by a table."""

    def __init__(self, table: Mapping[str, Mapping[str, list[str]]], source: str = "the fact table"):
        self.table, self.source = table, source
        # attribute -> normalised value -> the value as the table writes it, over all entities.
        self.values: dict[str, dict[str, str]] = {}
        for attributes in table.values():
            for attribute, answers in attributes.items():
                for answer in answers:
                    self.values.setdefault(attribute, {}).setdefault(normalize_answer(answer), answer)
        for values in self.values.values():
            values.pop("", None)
        self.max_words = max((len(v.split()) for values in self.values.values() for v in values), default=1)

    @classmethod
    def from_file(cls, path: str | Path) -> FactTableChecker:
        return cls(load_fact_table(path), source=str(path))

    def __repr__(self) -> str:
        return f"FactTableChecker({self.source!r}, {len(self.table)} entities)"

    def label_answer(self, record: Mapping[str, Any], response: str) -> str:
        topic = record_field(record, "topic", "names the row of the fact table")
        attribute = record.get("attribute") or ""
        answers = self.table.get(topic, {}).get(attribute) or accepted_answers(record)
        if not answers:
            raise InputError(f"{self.source} has no row for ({topic!r}, {attribute!r}) and the record lists no "
                             f"'answers'")
        return label_record_answer(record, response, self.values, answers)

    def _facts(self, topic: str, sentence: str) -> list[AtomicFact]:
        found = phrases(sentence, self.max_words)
        facts = []
        for attribute, answers in self.table.get(topic, {}).items():
            accepted = {normalize_answer(a) for a in answers}
            true = next((a for a in answers if normalize_answer(a) in found), None)
            if true is not None:
                facts.append(AtomicFact(sentence, topic, attribute, true, TRUE))
                continue
            values = self.values.get(attribute, {})
            wrong = sorted(v for v in found & values.keys() if v not in accepted)
            if wrong:
                facts.append(AtomicFact(sentence, topic, attribute, values[wrong[0]], FALSE))
        return facts

    def check(self, topic: str, response: str) -> CheckResult:
        """Sentence-level facts by string matching; a repeated (attribute, value) counts once."""
        result = CheckResult(malformed=not self.well_formed(topic, response))
        text = " ".join(response.replace(EOS, " ").split())
        if is_abstention(text):
            result.abstained = True
            return result
        seen = set()
        for sentence in split_sentences(text):
            facts = self._facts(topic, sentence)
            if not facts:
                result.unverifiable.append(sentence)
            for fact in facts:
                if (fact.attribute, normalize_answer(fact.value)) not in seen:
                    seen.add((fact.attribute, normalize_answer(fact.value)))
                    result.facts.append(fact)
        return result
