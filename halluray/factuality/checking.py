"""The one fact-checking interface every stage uses, and its factory.

`build_checker(cfg)` returns the checker `fact_checker.kind` names (fact_checkers.py lists the kinds); every
one has the four methods below, so a stage never asks which kind it holds. A method a kind cannot do raises
InputError naming the kind (e.g. long-form `check` of 'qa', which only grades short answers).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from halluray.config import ExperimentConfig
from halluray.data.fact_table import read_fact_tables
from halluray.errors import InputError
from halluray.factuality.fact_checkers import load_fact_checker
from halluray.factuality.qa_matching import Values, answer_values
from halluray.layout import RunLayout
from halluray.world.checker import CheckResult
from halluray.world.entities import World


@runtime_checkable
class Checker(Protocol):
    def check(self, topic: str, response: str) -> CheckResult:
        """Long form: the labeled atomic facts of `response`, a reply to a prompt about `topic`."""

    def check_many(self, topics: list[str], responses: list[str]) -> list[CheckResult]:
        """`check` of each (topic, response), in order; an HTTP checker overlaps its requests."""

    def label_answer(self, record: Mapping[str, Any], response: str) -> str:
        """Short QA: 'correct', 'incorrect' or 'abstain' for `response` to the prompt record `record` (`topic`,
        and as the kind needs them `attribute`, `answers` (canonical first), `answer_prefix`, `prompt`)."""

    def well_formed(self, topic: str, response: str) -> bool:
        """Long form: whether `response` has the form of an answer about `topic` (the world: its grammar; other
        kinds: a finished last sentence). `check` sets `CheckResult.malformed` from it; a learned RM's reward
        reads it directly (`ppo.reward.malformed_penalty`)."""


def build_checker(cfg: ExperimentConfig, world_path: str | Path | None = None,
                  cache_path: str | Path | None = None) -> Checker:
    """The run's checker. `world_path` (the world's JSON) is read only by kind 'world'; `cache_path` is where
    an HTTP checker caches its replies unless `fact_checker.cache_path` names a file (None: memory only)."""
    world = None
    if cfg.fact_checker.kind == "world":
        if world_path is None or not Path(world_path).is_file():
            where = f" ({world_path} does not exist)" if world_path is not None else ""
            raise InputError(f"fact_checker.kind 'world' needs the synthetic world's file{where}; run "
                             f"`halluray world` first, or pick a real-data kind (qa, fact_table, openai)")
        world = World.load(world_path)
    return load_fact_checker(cfg.fact_checker, world=world, cache_path=cache_path, values=data_answer_values(cfg))


def data_answer_values(cfg: ExperimentConfig) -> Values | None:
    """For fact tables: attribute -> every accepted answer in the tables (all splits), the values a short answer
    to such a question can name (qa_matching.py); None for other data."""
    if cfg.data.dataset != "fact_table" or not cfg.data.path:
        return None
    return _table_values(str(cfg.data.path), tuple(sorted(cfg.data.fields.items())))


@lru_cache(maxsize=4)
def _table_values(path: str, fields: tuple[tuple[str, str], ...]) -> Values:
    """Read once per process: a stage's checker and its P(gold) lead-ins need the same values (the built-in
    tables take ~1.3 s to generate)."""
    return answer_values(read_fact_tables(path, dict(fields)))


def checker_for(cfg: ExperimentConfig) -> Checker:
    """The run's fact checker (`fact_checker`): the world's exact checker reads the run's world file; an HTTP
    checker caches its replies in the run directory, so a re-run stage sends nothing twice."""
    layout = RunLayout(cfg)
    return build_checker(cfg, world_path=layout.world_json, cache_path=layout.fact_checker_cache)
