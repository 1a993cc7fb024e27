"""Opening a prompt source with the `datasets` library and reading its fields by configurable column names.

A source (`path`) is one of:
- a local data file: .jsonl / .json / .csv / .tsv / .parquet / .arrow (optionally compressed: .gz, .bz2, .xz,
  .zst), read with `datasets.load_dataset(<builder>, data_files=path)`. A `{split}` in the path is replaced by
  the requested split, so `bios_{split}.jsonl` gives one file per split;
- a local directory written by `Dataset.save_to_disk` / `DatasetDict.save_to_disk` (read with `load_from_disk`),
  or any other local directory of data files, whose splits `datasets` infers from the file names
  (`train.jsonl`, `validation.csv`, ...);
- anything else is taken as a dataset name for `datasets.load_dataset(name, subset)`. That needs the Hugging
  Face hub or a populated local `datasets` cache, neither of which exists at run time here: use a local file
  or a `save_to_disk` directory instead.

Splits: a local file or a saved single `Dataset` is one split, called "train" (the name `datasets` gives a
lone data file); asking it for another split is an error (put `{split}` in the path, or map pipeline splits
onto source splits with `data.split_map`). A `DatasetDict` is asked for the split by name.

Bad input raises `InputError` naming the file: not found, unreadable, no records, a missing field (with the
available columns).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from halluray.errors import InputError

log = logging.getLogger(__name__)

BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".tsv": "csv", ".parquet": "parquet",
            ".arrow": "arrow"}
COMPRESSION = (".gz", ".bz2", ".xz", ".zst", ".zip")
LONE_SPLIT = "train"

# A column spec: one column name (dotted names reach into struct columns) or a list of columns read together.
Column = str | Sequence[str]


def _builder(path: Path) -> tuple[str, dict]:
    suffixes = [s.lower() for s in path.suffixes]
    while suffixes and suffixes[-1] in COMPRESSION:
        suffixes.pop()
    suffix = suffixes[-1] if suffixes else ""
    if suffix not in BUILDERS:
        raise InputError(f"{path}: unsupported data file type '{suffix or path.name}' "
                         f"(expected one of {', '.join(sorted(BUILDERS))})")
    return BUILDERS[suffix], ({"delimiter": "\t"} if suffix == ".tsv" else {})


def _has_no_rows(path: Path) -> bool:
    """A data file or save_to_disk directory with no rows at all (which `datasets` reports obscurely)."""
    if path.is_dir():
        state = path / "state.json"
        try:
            return state.is_file() and not json.loads(state.read_text()).get("_data_files")
        except ValueError:
            return False
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".json", ".csv", ".tsv") or path.stat().st_size > 1 << 16:
        return False
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    if suffix == ".json" and "".join(lines).replace(" ", "") == "[]":
        return True
    return len(lines) <= (1 if suffix in (".csv", ".tsv") else 0)


def looks_like_path(text: str) -> bool:
    p = Path(text)
    return text.startswith((".", "/", "~")) or "\\" in text or text.count("/") > 1 or \
        any(s.lower() in BUILDERS or s.lower() in COMPRESSION for s in p.suffixes)


def _select(data, split: str | None, where: str):
    import datasets

    if isinstance(data, datasets.DatasetDict):
        if split is None:
            if len(data) == 1:
                return next(iter(data.values()))
            raise InputError(f"{where}: has splits {', '.join(data)}; say which one to use")
        if split not in data:
            raise InputError(f"{where}: no split '{split}' (available: {', '.join(data) or 'none'}); "
                             f"map pipeline splits onto these with data.split_map")
        return data[split]
    own = getattr(data, "split", None)
    if split is not None and split not in (LONE_SPLIT, str(own) if own is not None else LONE_SPLIT):
        raise InputError(f"{where}: is a single split ('{own or LONE_SPLIT}'), so it has no split '{split}'; put "
                         f"'{{split}}' in the path, use a directory with one file per split, or map pipeline "
                         f"splits onto '{own or LONE_SPLIT}' with data.split_map")
    return data


def open_source(path: str | Path, split: str | None = None, *, subset: str | None = None,
                cache_dir: str | None = None):
    """Return (`datasets.Dataset`, a description of where it came from for messages)."""
    import datasets

    if path is None or not str(path).strip():
        raise InputError("no dataset path given (set data.path)")
    text = str(path)
    if "{split}" in text:
        if split is None:
            raise InputError(f"{text}: the path has a '{{split}}' placeholder but no split was asked for")
        text, split = text.replace("{split}", split), None
    local = Path(text).expanduser()
    where = str(local)
    if local.exists() and _has_no_rows(local):
        raise InputError(f"{where}: no records")
    try:
        if local.is_file():
            builder, kwargs = _builder(local)
            data = datasets.load_dataset(builder, data_files=str(local), split=LONE_SPLIT, cache_dir=cache_dir,
                                         **kwargs)
        elif local.is_dir():
            if (local / "dataset_dict.json").is_file() or (local / "state.json").is_file():
                data = datasets.load_from_disk(str(local))
            else:
                data = datasets.load_dataset(str(local), cache_dir=cache_dir)
        elif looks_like_path(text):
            raise InputError(f"{where}: dataset file or directory not found")
        else:
            where = f"dataset '{text}'" + (f" ({subset})" if subset else "")
            try:
                data = datasets.load_dataset(text, subset, cache_dir=cache_dir)
            except Exception as e:
                raise InputError(f"{where}: could not load it from the Hugging Face hub or the local datasets "
                                 f"cache ({type(e).__name__}: {e}); without hub access, point data.path at a "
                                 f"local file or a save_to_disk directory") from None
    except InputError:
        raise
    except Exception as e:
        raise InputError(f"{where}: could not read it as a dataset ({type(e).__name__}: {e})") from None
    ds = _select(data, split, where)
    if len(ds) == 0:
        raise InputError(f"{where}: no records" + (f" in split '{split}'" if split else ""))
    return ds, where


def column_paths(features, prefix: str = "") -> list[str]:
    """Every readable column name, with dotted paths into struct columns: ['answer', 'answer.value', ...]."""
    out = []
    for name, feature in features.items():
        out.append(prefix + name)
        if isinstance(feature, dict):
            out += column_paths(feature, f"{prefix}{name}.")
    return out


def _getter(features, name: str) -> Callable[[dict], Any] | None:
    if name in features:
        return lambda row: row[name]
    parts = name.split(".")
    feature = features
    for part in parts:
        if not isinstance(feature, dict) or part not in feature:
            return None
        feature = feature[part]

    def get(row: dict) -> Any:
        value = row
        for part in parts:
            value = value.get(part) if isinstance(value, dict) else None
        return value
    return get


class Fields:
    """Reads logical fields (name, text, question, ...) from a dataset's rows by configurable column names.

    `defaults` maps each logical field to its candidate columns, tried in order (so one default fits the
    common versions of a dataset); `overrides` (the config's `data.fields`) replaces a field's candidates
    with one exact column. A required field with no matching column raises `InputError` naming the field,
    the columns tried, the available columns and the file.
    """

    def __init__(self, ds, where: str, dataset: str, defaults: dict[str, tuple[Column, ...]],
                 overrides: dict[str, Column] | None = None, optional: Sequence[str] = ()):
        overrides = dict(overrides or {})
        unknown = sorted(set(overrides) - set(defaults))
        if unknown:
            raise InputError(f"data.fields: unknown field(s) {', '.join(unknown)} for the {dataset} loader "
                             f"(known: {', '.join(defaults)})")
        self.where = where
        self.available = column_paths(ds.features)
        self._get: dict[str, Callable[[dict], Any] | None] = {}
        for field, candidates in defaults.items():
            tried = (overrides[field],) if field in overrides else candidates
            getter = None
            for column in tried:
                getter = self._column(ds.features, column)
                if getter:
                    break
            if getter is None and (field not in optional or field in overrides):
                names = " or ".join(repr(c if isinstance(c, str) else ",".join(c)) for c in tried)
                raise InputError(f"{where}: missing field '{field}' (looked for column {names}); available "
                                 f"columns: {', '.join(self.available) or 'none'}; set data.fields.{field} "
                                 f"to the column that holds it")
            self._get[field] = getter

    def _column(self, features, column: Column) -> Callable[[dict], Any] | None:
        if isinstance(column, str):
            return _getter(features, column)
        getters = [_getter(features, c) for c in column]
        if not getters or not all(getters):
            return None
        return lambda row: [g(row) for g in getters]

    def has(self, field: str) -> bool:
        return self._get.get(field) is not None

    def read(self, ds) -> Iterator[tuple[int, dict]]:
        """(row index, {field: value}) for every row; absent optional fields read as None."""
        for i, row in enumerate(ds):
            yield i, {field: (get(row) if get else None) for field, get in self._get.items()}


def clean(value: Any) -> str:
    """A field value as one line of text: None -> "", whitespace collapsed."""
    if value is None:
        return ""
    return " ".join(str(value).split())


def to_dataset(records: list[dict], where: str, skipped: int = 0):
    """A `datasets.Dataset` of prompt records; rows skipped for empty values are logged, none left is an error."""
    import datasets

    if skipped:
        log.warning("%s: skipped %d of %d rows with an empty prompt or target", where, skipped, skipped + len(records))
    if not records:
        raise InputError(f"{where}: no usable records (all {skipped} rows have an empty prompt or target)")
    return datasets.Dataset.from_list(records)
