"""A closed-domain FActScore checker for long-form text about the entities of an entity table.

`decompose` splits a response into atomic claims: sentences (and ";"), then clauses at a comma before a
participle, relative word or "its" ("..., bordering Chad", "..., which ...", "..., its currency is ..."), and
before an "and" or "with" that starts another attribute ("... and languages spoken there include ...", "... with
a population of ..."), then lists after a border or language cue into one claim per item ("It is bordered by A, B
and C" -> three claims; a name such as "Bosnia and Herzegovina" stays whole). A claim whose subject is a
pronoun or "the country" gets the name of the entity the text is currently about, so every claim reads on its
own ("Albania borders Kosovo to the northwest.").

`verify` (and `check`) label each claim against the table:
- who it is about: the entity named in the subject (before the first main verb: "The capital of Albania is",
  "Saudi Arabia, also known as ..., is"), by name or alias; a pronoun, "the country" or an unknown name (the
  model garbling the asked one) -> the asked entity. A claim about another entity of the table is checked
  against that entity's row (a true fact about a neighbour is a true fact); a claim whose subject is a continent
  or region ("Africa covers ...") is not checkable;
- which attribute and value, by cue words and lexicons built from every value of every row: neighbours
  ("border", "neighbour": each country named after the cue), capital (the capital of the table, or the
  proper name after "capital": a wrong one is false even when no row has it), population and area (numbers:
  "3.7 million", "about 33,000,000", "2,131 thousand", "over 2 million", square miles converted; within
  `quantities.TOLERANCE` of the table's value, or on the right side of an "over"/"under" bound), languages (after
  "language", "speak", "spoken"), currency (after "currency") and continent;
- a continent is checkable only as a continent: "an African country", "in South America" are true or false;
  a region below a continent ("West Africa", "southeastern Europe", "the Caribbean") or a ranking within one
  ("Africa's largest state") is false when its continent is wrong and otherwise not checkable, because the
  table has no regions;
- negation ("not", "n't", "never", "neither") flips the label ("is not a neighbouring state of Tanzania");
- any other claim (climate, coast, "landlocked", islands, history, culture, a largest city, relative positions
  such as "between Kenya and Tanzania" or "north of Russia") is not checkable: `verify` returns None and
  `check` puts it in `CheckResult.unverifiable`, counted, never dropped. What the reward does with them is the
  reward's choice (FActScore counts only supported facts as true, so unverifiable claims earn nothing).
A claim naming several checkable values is false if any of them is false.

What it cannot do: directions of a border ("Tanzania to the west") are not checked, only the border; regions
below a continent are never true; a misspelt name ("Côte d'Ivoa") is not recognised (a misspelt capital is
false, a misspelt neighbour not checkable); hedges ("may", "about" beyond the tolerance) and irony are read
literally; a subject is found only before the first main verb, so nested clauses about another entity count
for the current one; numbers are read only next to their cue words. A topic not in the table makes every claim
not checkable.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from halluray.data.entity_table import DEFAULT_TABLE, Entity, read_entity_table
from halluray.data.text import split_sentences
from halluray.factuality.base import DecomposeVerify
from halluray.factuality.qa_matching import is_abstention, normalize_answer
from halluray.factuality.quantities import SQUARE_MILE_KM2, Quantity, quantity_holds, stated_quantities
from halluray.world.checker import FALSE, TRUE, AtomicFact, CheckResult
from halluray.world.templates import EOS

_PRONOUN = re.compile(r"^(?:it|its|it's|it’s|they|their|this|these|the|a|an)?\s*(?:country|nation|state|republic|"
                      r"kingdom|island|land|territory)?(?:'s|’s)?$|^(?:it|its|it's|it’s|they|their)\b", re.I)
_LEADING_PRONOUN = re.compile(r"^(?:its|it|(?:the|this) (?:country|nation)(?:'s)?)\b", re.I)
_MAIN_VERB = re.compile(r"\b(?:is|are|was|were|has|have|had|borders|lies|sits|covers|spans|boasts|remains|"
                        r"serves|includes?|comprises|shares|stretches|occupies)\b")
# Also the reference texts' shape, which SFT teaches: "Peru is a country in South America with a population of
# about 32 million. Its capital is Lima, its currency is the sol and languages spoken there include Spanish." holds
# five claims (continent, population, capital, currency, languages), one clause each.
_CLAUSE_BREAK = re.compile(r",\s+(?=(?:bordering|bordered|spanning|covering|located|situated|stretching|making|"
                           r"while|which|where|whose|known|home to|with|its|and (?:it|its|is|has|was|covers|borders|"
                           r"lies))\b)|;\s+|\s+and\s+(?=(?:it|its|it's|is|has|was|covers|borders|lies)\b)"
                           r"|\s+and\s+(?=(?:the\s+)?(?:languages?|currency|capital|population)\b)"
                           r"|\s+(?=with\s+(?:a|an)\s+(?:population|area)\b)", re.I)
_BORDER = re.compile(r"\b(?:borders|bordered|bordering|(?<=not )border|(?<=n't )border|"
                     r"shares?\s+(?:a\s+|its\s+)?borders?\s+with|neighbou?r(?:s|ing)?|adjacent\s+to)\b"
                     r"(?:\s+(?:by|with))?", re.I)
_LANGUAGE = re.compile(r"\b(?:languages?|speak|speaks|speaking|spoken|tongue)\b", re.I)
_CAPITAL = re.compile(r"\bcapital(?:\s+city)?\b", re.I)
_CURRENCY = re.compile(r"\b(?:currency|monetary unit|legal tender)\b", re.I)
_POPULATION = re.compile(r"\b(?:population|people|inhabitants|residents|citizens|populated)\b", re.I)
_AREA_UNIT = re.compile(r"\b(?:square\s+kilomet(?:er|re)s?|sq\.?\s*km|km2|km²|square\s+miles?|sq\.?\s*mi)\b", re.I)
_AREA_WORD = re.compile(r"\b(?:area|size)\b", re.I)
_NOT_ENTITY = re.compile(r"^(?:the|this|that)\s+(?:continent|region|world|sea|ocean|river|gulf|bay|lake|mountains?)\b",
                         re.I)
_CONTRACTION = re.compile(r"\b([Ii]t)'s\b")
_LEADING_CONJUNCTION = re.compile(r"^(?:and|but|while|whereas)\s+", re.I)
MIN_CLAIM_WORDS = 3
"""Fewer words state nothing: a lone "The" or "Tajikistan." left at the end of a response cut off mid-sentence."""
_NEGATION = re.compile(r"\b(?:not|never|neither|nor|no longer)\b|n't\b|n’t\b", re.I)
_NOT_NEGATION = re.compile(r"\bnot only\b", re.I)
_RANKING = re.compile(r"\b(?:largest|biggest|smallest|most|least|first|last|final|second|third|fourth|fifth|"
                      r"only|one of|\d+(?:st|nd|rd|th))\b|-largest|-smallest", re.I)
_LIST_SPLIT = re.compile(r",\s*(?:and|or)\s+|,\s*|\s+and\s+|\s+or\s+")
_CONNECTOR = r"(?:\s+(?:de|del|da|do|of|la|el|al|es)\s+|\s+|-)"
_PROPER = re.compile(rf"[A-Z][\w'’.-]*(?:{_CONNECTOR}[A-Z][\w'’.-]*)*(?:\s+(?:de|del|da))?")

CONTINENT_FORMS = {"Africa": ("Africa", "African"), "Asia": ("Asia", "Asian"), "Europe": ("Europe", "European"),
                   "North America": ("North America", "North American"),
                   "South America": ("South America", "South American"), "Oceania": ("Oceania",),
                   "Antarctica": ("Antarctica",)}
_AMERICAS = ("North America", "South America")
REGIONS = {"Latin America": _AMERICAS, "Latin American": _AMERICAS, "Americas": _AMERICAS,
           "Central America": ("North America",), "Central American": ("North America",),
           "Caribbean": ("North America",), "Middle East": ("Asia", "Africa"), "Middle Eastern": ("Asia", "Africa"),
           "Balkan": ("Europe",), "Balkans": ("Europe",), "Scandinavia": ("Europe",), "Scandinavian": ("Europe",),
           "Nordic": ("Europe",), "Eurasia": ("Europe", "Asia"), "Eurasian": ("Europe", "Asia"),
           "Arabian Peninsula": ("Asia",), "Indian subcontinent": ("Asia",), "Horn of Africa": ("Africa",),
           "Far East": ("Asia",), "Sahel": ("Africa",), "Caucasus": ("Asia", "Europe")}
"""Regions below a continent (or across two) the table cannot check, and the continents they lie in."""
_DIRECTION = r"(?:north|south|east|west|central|northern|southern|eastern|western|north-?east(?:ern)?|" \
             r"north-?west(?:ern)?|south-?east(?:ern)?|south-?west(?:ern)?|sub-saharan)"
_PART_OF = r"(?:coast|part|region|corner|heart|end|tip|edge|center|centre|side|south|north|east|west)"
_LOCATION_BEFORE = re.compile(r"\b(?:in|within|across|between|located|situated|lies|lying|nestled|continent|"
                              r"member|of|on)\b[\w\s'’-]{0,25}$|,\s*$", re.I)
_LOCATION_AFTER = re.compile(r"^\s+(?:\w+\s+)?(?:country|countries|nation|nations|state|states|republic|island|"
                             r"territory|kingdom)\b", re.I)


def fold(text: str) -> str:
    """`text` without accents, with straight apostrophes and "it's" spelt "it is": what the rules read."""
    text = unicodedata.normalize("NFKD", " ".join(text.replace("’", "'").split()))
    return _CONTRACTION.sub(r"\1 is", "".join(c for c in text if not unicodedata.combining(c)))


def _alternation(names: Iterable[str]) -> str:
    return "|".join(re.escape(n) for n in sorted(set(names), key=len, reverse=True))


@dataclass(frozen=True)
class Verdict:
    """How one claim was read: its label (True, False, or None: not checkable) and what it was about."""
    label: bool | None
    subject: str
    attribute: str = ""
    value: str = ""


@dataclass(frozen=True)
class _Reading:
    """What a claim says about one attribute: the value it names and whether the row has it (None: cannot tell)."""
    attribute: str
    value: str
    ok: bool | None


class EntityTableChecker(DecomposeVerify):
    """Decomposes long-form text about a table's entities and labels each claim by the table (module docstring)."""

    def __init__(self, entities: list[Entity], source: str = "the entity table"):
        self.rows = {e.name: e for e in entities}
        self.source = source
        names: dict[str, str] = {}
        for e in entities:
            for name in (e.name, *e.aliases):
                names.setdefault(fold(name), e.name)
            if e.name.startswith("The "):
                names.setdefault(fold(e.name[4:]), e.name)
        for e in entities:  # neighbours outside the table (Montenegro, Bhutan) are names too
            for value in e.attributes.get("neighbours", []):
                names.setdefault(fold(str(value)), str(value))
        self.names = names
        self._entity = re.compile(rf"(?<![\w-])(?:{_alternation(names)})(?![\w-])")
        text_values: dict[str, set[str]] = {}
        self.numeric: set[str] = set()
        for e in entities:
            for attribute, values in e.attributes.items():
                if all(isinstance(v, float) for v in values):
                    self.numeric.add(attribute)
                text_values.setdefault(attribute, set()).update(fold(str(v)) for v in values if isinstance(v, str))
        self._capitals = self._lexicon(text_values.get("capital", set()))
        self._languages = self._lexicon(text_values.get("languages", set()), edge=r"\w")
        currencies = text_values.get("currency", set())
        self._currencies = self._lexicon(currencies | {c.split()[-1] for c in currencies}, edge=r"\w", flags=re.I)
        forms = {form: (continent,) for continent, pair in CONTINENT_FORMS.items() for form in pair}
        self.regions = {**forms, **REGIONS}
        self._region_key = {name.lower(): name for name in self.regions}
        self._region = re.compile(rf"(?:(?P<dir>{_DIRECTION})[\s-]+)?(?P<name>{_alternation(self.regions)})(?![\w])"
                                  rf"(?P<poss>'s)?", re.I)

    @staticmethod
    def _lexicon(values: Iterable[str], edge: str = r"[\w-]", flags: int = 0) -> re.Pattern[str] | None:
        """A regex of `values` as whole words: not inside a longer word, nor (by default) a hyphenated name."""
        values = [v for v in values if v]
        return re.compile(rf"(?<!{edge})(?:{_alternation(values)})(?!{edge})", flags) if values else None

    @classmethod
    def from_path(cls, path: str | Path = DEFAULT_TABLE) -> EntityTableChecker:
        """The checker of a .jsonl entity table or `builtin:countries` (`fact_checker.kind: entity_table`)."""
        return cls(read_entity_table(path), source=str(path))

    def __repr__(self) -> str:
        return f"EntityTableChecker({self.source!r}, {len(self.rows)} entities)"

    # --- who a claim is about -------------------------------------------------------------------------------

    def _regions(self, text: str) -> list[re.Match[str]]:
        """Continents and regions named in `text`, capitalised, that are not also an entity ("South Africa") nor
        part of an entity's name ("Central African" in "Central African Republic")."""
        names = [(m.start(), m.end()) for m in self._entity.finditer(text)]
        return [m for m in self._region.finditer(text)
                if m.group("name")[0].isupper() and m.group().rstrip("'s") not in self.names
                and not any(a <= m.start() and m.end() <= b and b - a > m.end() - m.start() for a, b in names)]

    def _mentions(self, text: str) -> list[tuple[str, int, int]]:
        """(entity, start, end) of each entity named in `text`, in order; not "America" in "South America", nor
        "Guinea" in "Gulf of Guinea"."""
        regions = [(m.start(), m.end()) for m in self._regions(text)]
        return [(self.names[m.group()], m.start(), m.end()) for m in self._entity.finditer(text)
                if not text[:m.start()].endswith("Gulf of ")
                and not any(a <= m.start() and m.end() <= b for a, b in regions)]

    def _subject_span(self, clause: str) -> str:
        verb = _MAIN_VERB.search(clause)
        return clause[:verb.start()] if verb else ""

    def _subject(self, clause: str) -> tuple[str, str | None]:
        """('entity', name), ('pronoun', None), ('region', None) or ('none', None) for the clause's subject:
        scanning the comma-separated parts before the first main verb from the last one back."""
        span = self._subject_span(clause)
        parts = [p.strip(" \"'") for p in span.split(",") if p.strip(" \"'")] if span else []
        if not parts:
            first = self._mentions(clause)
            return ("entity", first[0][0]) if first and first[0][1] == 0 else ("none", None)
        for part in reversed(parts):
            if _PRONOUN.match(part):
                return "pronoun", None
            if _NOT_ENTITY.match(part) or any(m.start() <= 4 for m in self._regions(part)):
                return "region", None
            mentions = self._mentions(part)
            if mentions:
                return "entity", mentions[0][0]
        return "none", None

    # --- decomposition ----------------------------------------------------------------------------------------

    def decompose(self, response: str) -> list[str]:
        """Atomic claims, each readable on its own (module docstring)."""
        text = fold(response.replace(EOS, " "))
        claims, current = [], None
        for sentence in split_sentences(text):
            for clause in _CLAUSE_BREAK.split(sentence):
                clause = _LEADING_CONJUNCTION.sub("", clause.strip(" ,;:-"))
                if len(clause.split()) < MIN_CLAIM_WORDS:
                    continue
                kind, who = self._subject(clause)
                if kind == "entity":
                    current = who
                elif kind == "pronoun" and current is not None:
                    clause = self._name_pronoun(clause, current)
                elif kind == "none" and current is not None:
                    # a clause without its subject ("bordering Chad", "has an area of ...") is about the current one
                    clause = f"{current} {clause}" if _MAIN_VERB.match(clause) else f"{current}, {clause}"
                claims += self._expand(clause)
        return list(dict.fromkeys(claims))

    @staticmethod
    def _name_pronoun(clause: str, name: str) -> str:
        """A leading "It"/"Its"/"The country's" replaced by `name`, so the claim reads on its own."""
        m = _LEADING_PRONOUN.match(clause)
        if not m:
            return clause
        word = m.group().lower()
        named = f"{name}'s" if word == "its" or word.endswith("'s") else name
        return named + clause[m.end():]

    def _expand(self, clause: str) -> list[str]:
        """One claim per item of a list after a border or language cue, when at least two items name a value
        ("bordered by A, B and the sea" -> three claims); the clause itself otherwise."""
        for cue, names in ((_BORDER, self._mentions), (_LANGUAGE, self._language_names)):
            m = cue.search(clause)
            if not m:
                continue
            items = [i.strip(" .") for i in self._list_items(clause[m.end():]) if i.strip(" .")]
            if sum(bool(names(item)) for item in items) > 1:
                return [f"{clause[:m.end()]} {item}" for item in items]
        return [clause]

    def _list_items(self, text: str) -> list[str]:
        """`text` cut at list separators, except inside a name ("Bosnia and Herzegovina", "Trinidad and Tobago")."""
        names = [(start, end) for _, start, end in self._mentions(text)]
        cuts = [m for m in _LIST_SPLIT.finditer(text) if not any(a < m.start() < b for a, b in names)]
        edges = [0, *(x for m in cuts for x in (m.start(), m.end())), len(text)]
        return [text[edges[i]:edges[i + 1]] for i in range(0, len(edges), 2)]

    def _language_names(self, text: str) -> list[str]:
        return [m.group() for m in self._languages.finditer(text)] if self._languages else []

    # --- verification -----------------------------------------------------------------------------------------

    def judge(self, topic: str, claim: str) -> Verdict:
        """The label of one claim about `topic` and what it was read as."""
        text = fold(" ".join(claim.split()))
        kind, who = self._subject(text)
        subject = who if kind == "entity" else topic
        row = self.rows.get(subject)
        if kind == "region" or row is None:
            return Verdict(None, subject)
        readings = [*self._neighbours(row, text), *self._capital(row, text), *self._quantities(row, text),
                    *self._named(row, text, _LANGUAGE, self._languages, "languages"),
                    *self._named(row, text, _CURRENCY, self._currencies, "currency"), *self._continent(row, text)]
        decided = [r for r in readings if r.ok is not None]
        chosen = next((r for r in decided if r.ok is False), None) or next(iter(decided + readings), None)
        if chosen is None:
            return Verdict(None, subject)
        predicate = _NOT_NEGATION.sub("", text[len(self._subject_span(text)):])
        ok = chosen.ok if chosen.ok is None or not _NEGATION.search(predicate) else not chosen.ok
        return Verdict(ok, subject, chosen.attribute, chosen.value)

    def verify(self, topic: str, facts: list[str]) -> list[bool | None]:
        return [self.judge(topic, fact).label for fact in facts]

    def check(self, topic: str, response: str) -> CheckResult:
        """`decompose` + `judge`: true and false claims in `facts` (with the subject, attribute and value they
        were read as), the rest in `unverifiable`; an abstention states nothing."""
        result = CheckResult(malformed=not self.well_formed(topic, response))
        if is_abstention(" ".join(response.replace(EOS, " ").split())):
            result.abstained = True
            return result
        for claim in self.decompose(response):
            verdict = self.judge(topic, claim)
            if verdict.label is None:
                result.unverifiable.append(claim)
            else:
                result.facts.append(AtomicFact(claim, verdict.subject, verdict.attribute, verdict.value,
                                               TRUE if verdict.label else FALSE))
        return result

    # --- attribute readers: what a claim says about one attribute of `row` ---------------------------------------

    def _neighbours(self, row: Entity, text: str) -> list[_Reading]:
        cue = _BORDER.search(text)
        if not cue:
            return []
        named = [name for name, start, _ in self._mentions(text) if start >= cue.start() and name != row.name]
        if not named:
            return [_Reading("neighbours", "", None)]
        borders = set(row.attributes.get("neighbours", []))
        return [_Reading("neighbours", name, name in borders) for name in dict.fromkeys(named)]

    def _capital(self, row: Entity, text: str) -> list[_Reading]:
        cue = _CAPITAL.search(text)
        if not cue:
            return []
        if re.search(r"(?<!^)(?<![.!?] )\b(?!The\b|Its\b|Their\b|This\b)[A-Z]\w+\s+$", text[:cue.start()]) and \
                not text[:cue.start()].rstrip().endswith("'s"):
            return [_Reading("capital", "", None)]  # "the Bolivian capital": someone else's, by a demonym
        after = text[cue.end():]
        owner = re.match(rf"\s+of\s+(?:the\s+)?(?:{self._entity.pattern})", after)
        if owner:
            after = after[owner.end():]
        known = self._capitals.search(after) if self._capitals else None
        proper = _PROPER.search(after)
        before = self._capitals.search(text[:cue.start()]) if self._capitals else None
        value = (known or proper or before).group().strip() if (known or proper or before) else ""
        if not value:
            return [_Reading("capital", "", None)]
        capitals = {normalize_answer(fold(str(c))) for c in row.attributes.get("capital", [])}
        return [_Reading("capital", value, normalize_answer(value) in capitals)] if capitals else []

    def _quantities(self, row: Entity, text: str) -> list[_Reading]:
        numbers, readings, used = stated_quantities(text), [], None
        unit = _AREA_UNIT.search(text)
        word = _AREA_WORD.search(text)
        if unit:
            used = next((n for n in reversed(numbers) if n.end <= unit.start() and unit.start() - n.end <= 3), None)
            if used and "mi" in unit.group().lower():
                used = Quantity(used.value * SQUARE_MILE_KM2, used.qualifier, used.start, used.end)
        elif word:
            used = next((n for n in numbers if n.start >= word.end()), None)
        if used and row.attributes.get("area_km2"):
            readings.append(_Reading("area_km2", f"{used.value:,.0f}",
                                     quantity_holds(used, float(row.attributes["area_km2"][0]))))
        cue = _POPULATION.search(text)
        rest = [n for n in numbers if used is None or n.start != used.start]
        stated = next((n for n in rest if cue and n.start >= cue.end()), None) or \
            next((n for n in reversed(rest) if cue and n.end <= cue.start()), None)
        if stated and row.attributes.get("population"):
            readings.append(_Reading("population", f"{stated.value:,.0f}",
                                     quantity_holds(stated, float(row.attributes["population"][0]))))
        return readings

    @staticmethod
    def _named(row: Entity, text: str, cue: re.Pattern[str], lexicon: re.Pattern[str] | None,
               attribute: str) -> list[_Reading]:
        """Readings of a named-value attribute (languages, currency): each lexicon value in a clause with the cue."""
        if not cue.search(text):
            return []
        found = list(dict.fromkeys(m.group() for m in lexicon.finditer(text))) if lexicon else []
        if not found:
            return [_Reading(attribute, "", None)]
        accepted = {normalize_answer(fold(str(v))) for v in row.attributes.get(attribute, [])}
        return [_Reading(attribute, value, any(normalize_answer(value) == a or a.endswith(" " + normalize_answer(value))
                                               for a in accepted)) for value in found]

    def _continent(self, row: Entity, text: str) -> list[_Reading]:
        continents = set(row.attributes.get("continent", []))
        if not continents:
            return []
        ranked = bool(_RANKING.search(text))
        readings = []
        for m in self._regions(text):
            before, after = text[:m.start()], text[m.end():]
            if not (_LOCATION_BEFORE.search(before) or _LOCATION_AFTER.match(after) or m.group("poss")):
                continue
            key = self._region_key[m.group("name").lower()]
            below = bool(m.group("dir") or key in REGIONS or m.group("poss") or ranked
                         or re.search(rf"\b{_PART_OF}\s+of\s+(?:the\s+)?$", before, re.I))
            inside = bool(continents & set(self.regions[key]))
            readings.append(_Reading("continent", m.group().strip(), None if inside and below else inside))
        return readings


__all__ = ["EntityTableChecker", "Verdict"]
