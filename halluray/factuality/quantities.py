"""Quantities stated in text ("3.7 million", "about 33,000,000", "over 2 million", "2,131 thousand") and whether
one agrees with a table's number: within `TOLERANCE`, or on the right side of an "over"/"under" bound. Ordinals,
percentages and bare years are not quantities. Used by the entity checker for populations and areas."""

from __future__ import annotations

import re
from dataclasses import dataclass

TOLERANCE = 0.25
"""A stated population or area within 25% of the table's is true: geonames' figures are a few years old and the
model rounds."""
BOUND_SLACK = 0.05
"""An "over X" or "under X" holds when the table's value is on its side of X, give or take 5% (rounding)."""
SQUARE_MILE_KM2 = 2.589988

_SCALES = {"thousand": 1e3, "million": 1e6, "billion": 1e9}
_WORD_NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
                 "nine": 9, "ten": 10, "a": 1}
_NUMBER = re.compile(r"(?<![\w.])(?P<qual>(?:over|more than|exceeding|above|at least|nearly|almost|under|less than|"
                     r"below|fewer than|roughly|about|around|approximately|some|an estimated)\s+)?"
                     r"(?P<num>\d[\d,]*(?:\.\d+)?|(?:one|two|three|four|five|six|seven|eight|nine|ten|a))"
                     r"(?P<ord>st|nd|rd|th)?(?:\s*(?P<scale>thousand|million|billion))?(?P<pct>\s*(?:%|percent))?",
                     re.I)
_LOWER_BOUND = ("over", "more than", "exceeding", "above", "at least")
_UPPER_BOUND = ("under", "less than", "below", "fewer than")

@dataclass(frozen=True)
class Quantity:
    value: float
    qualifier: str
    start: int
    end: int


def stated_quantities(text: str) -> list[Quantity]:
    """Numbers stated in `text` (not ordinals, percentages or bare years), with their scale and qualifier."""
    out = []
    for m in _NUMBER.finditer(text):
        raw, scale = m.group("num").lower(), m.group("scale")
        if m.group("ord") or m.group("pct") or (raw in _WORD_NUMBERS and not scale):
            continue
        value = float(_WORD_NUMBERS[raw]) if raw in _WORD_NUMBERS else float(raw.replace(",", ""))
        if not scale and "," not in raw and "." not in raw and 1000 <= value <= 2100:
            continue  # a year ("As of 2021", "since 1991")
        value *= _SCALES.get((scale or "").lower(), 1.0)
        out.append(Quantity(value, (m.group("qual") or "").strip().lower(), m.start("num"), m.end()))
    return out


def quantity_holds(stated: Quantity, actual: float) -> bool:
    if stated.qualifier in _LOWER_BOUND:
        return actual >= stated.value * (1 - BOUND_SLACK)
    if stated.qualifier in _UPPER_BOUND:
        return actual <= stated.value * (1 + BOUND_SLACK)
    return abs(stated.value - actual) <= TOLERANCE * actual
