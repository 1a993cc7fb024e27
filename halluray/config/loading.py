"""Reading a config: YAML file or defaults, dotted overrides, and one-line errors naming the key and file.

Errors (unknown key, wrong type, missing file, bad override) raise `ConfigError`; the CLI turns it into
exit code 2.
"""

from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from halluray.config.base import ConfigError
from halluray.config.schema import ExperimentConfig
from halluray.secrets import redact


def _known_keys(model: type[BaseModel]) -> list[str]:
    return list(model.model_fields)


def _section_at(loc: tuple) -> type[BaseModel] | None:
    model: type[BaseModel] = ExperimentConfig
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        ann = field.annotation if field else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return None
        model = ann
    return model


def _describe(err: dict) -> str:
    loc = tuple(err["loc"])
    key = ".".join(str(p) for p in loc)
    if err["type"] == "extra_forbidden":
        section = _section_at(loc[:-1])
        hint = ""
        if section is not None:
            close = difflib.get_close_matches(str(loc[-1]), _known_keys(section), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f" (known keys: {', '.join(_known_keys(section))})"
        return f"unknown key '{key}'{hint}"
    if err["type"] == "missing":
        return f"missing key '{key}'"
    where = f"'{key}'" if key else "config"
    # The message reaches stderr and job logs: a key pasted into the wrong place is not echoed.
    got = f" (got {redact(err['input'])!r})" if "input" in err and not isinstance(err["input"], dict) else ""
    return f"invalid value for {where}: {err['msg'].removeprefix('Value error, ')}{got}"


def parse_override(text: str) -> tuple[list[str], Any]:
    """'ppo.kl_coef=0.5' -> (['ppo', 'kl_coef'], 0.5); the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like section.key=value")
    key, _, raw = text.partition("=")
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(f"override '{text}' has an empty key part")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as e:
        raise ConfigError(f"override '{text}': value is not valid YAML ({e.__class__.__name__})") from None
    return parts, value


def apply_override(data: dict, parts: list[str], value: Any) -> None:
    node = data
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override key '{'.'.join(parts)}': '{'.'.join(parts[: i + 1])}' is not a section")
        node = child
    node[parts[-1]] = value


def build_config(data: dict, overrides: list[str] = (), source: str = "<config>") -> ExperimentConfig:
    data = copy.deepcopy(data)
    for text in overrides:
        apply_override(data, *parse_override(text))
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(_describe(err) for err in e.errors())
        raise ConfigError(f"{source}: {problems}") from None


def load_config(path: str | Path | None, overrides: list[str] = ()) -> ExperimentConfig:
    """Load a YAML config (or the defaults when `path` is None) and apply dotted overrides."""
    if path is None:
        return build_config({}, overrides, source="<defaults>")
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections, got {type(data).__name__}")
    return build_config(data, overrides, source=str(path))
