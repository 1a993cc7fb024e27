"""A small rule-based sentence splitter for encyclopedic text (first sentence of a Wikipedia entry).

It handles the cases first sentences of Wikipedia bios and plots are full of: initials ("John F. Kennedy",
"J. R. R. Tolkien", "U.S."), titles and abbreviations ("Dr.", "St.", "Jr.", "c.", "Feb."), parentheses
("(born c. 1950 in St. Louis)"), decimals, closing quotes, and PTB-tokenized text as in the HF `wiki_bio`
dataset ("... baseball player . he ..."), where a space-separated period always ends a sentence.
"""

from __future__ import annotations

import re

# Lower-cased, without the final period. A period after one of these does not end a sentence.
ABBREVIATIONS = frozenset("""
mr mrs ms dr prof sr jr st mt ft gen col lt sgt capt cmdr adm gov sen rep rev hon pres fr br
inc ltd co corp bros ed eds est approx ca c fl b d vs etc al e.g i.e cf viz
jan feb mar apr jun jul aug sep sept oct nov dec
""".split())
# Abbreviations that end a sentence unless a number follows: "No. 5", "vol. 2", "pp. 10".
NUMBER_ABBREVIATIONS = frozenset({"no", "nos", "vol", "vols", "p", "pp"})

_BOUNDARY = re.compile(r"[.!?]+[\"'”’)\]]*(?=\s|$)")
_INITIALS = re.compile(r"^(?:[A-Za-z]\.)*[A-Za-z]$")


def _ends_sentence(text: str, start: int, m: re.Match) -> bool:
    before = text[start:m.start()]
    if before.count("(") > before.count(")"):
        return False  # inside an unclosed parenthesis: "(born c. 1950 in St. Louis)"
    rest = text[m.end():].lstrip()
    if not rest:
        return True
    if m.group()[0] != ".":
        return True  # "!" or "?"
    if before.endswith((" ", "\n", "\t")) or not before:
        return True  # tokenized text: "player . he"
    word = before.split()[-1].lstrip("(\"'“‘[")
    if word.lower() in ABBREVIATIONS or _INITIALS.match(word):
        return False
    if word.lower() in NUMBER_ABBREVIATIONS and rest[0].isdigit():
        return False
    return not rest[0].islower()


def split_sentences(text: str) -> list[str]:
    """Split `text` into sentences, whitespace-normalised; blank lines always separate sentences."""
    sentences = []
    for paragraph in re.split(r"\n\s*\n", text or ""):
        paragraph = " ".join(paragraph.split())
        start = 0
        for m in _BOUNDARY.finditer(paragraph):
            if _ends_sentence(paragraph, start, m):
                sentences.append(paragraph[start:m.end()].strip())
                start = m.end()
        if paragraph[start:].strip():
            sentences.append(paragraph[start:].strip())
    return [s for s in sentences if s]


def first_sentence(text: str) -> str:
    """The first sentence of `text`, or "" when it has none."""
    sentences = split_sentences(text)
    return sentences[0] if sentences else ""
