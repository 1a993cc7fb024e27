"""Fact checkers by kind, and the loader: the synthetic world's checker, the QA answer matcher, user code.

Every checker here has the `halluray.factuality.checking.Checker` interface: `check` labels the atomic facts of
a long-form response (the same `CheckResult` as the synthetic world's exact checker, so rewards and metrics do
not care which one produced it), `check_many` does so for a batch, `label_answer` grades a short answer as
correct, incorrect or abstain. Kinds (`fact_checker.kind`):

- 'world': `WorldFactChecker`, the synthetic world's exact checker (`halluray.world.checker.ExactChecker`);
- 'qa': `QAChecker`, the value a short answer names against the record's aliases (qa_matching.py);
- 'fact_table': `FactTableChecker`, a table of accepted answers (fact_table_checker.py);
- 'entity_table': `EntityTableChecker`, closed-domain FActScore of long-form text about the entities of an entity
  table, `options.path` (default builtin:countries; entity_checker.py);
- 'openai': `OpenAIFactChecker`, FActScore over an OpenAI-compatible endpoint (openai_checker.py, which also
  has `OpenAIResponder`, the independent source of "standard" reward-model data);
- user code: 'package.module:callable', returning (or being) an object with `decompose(response) -> list[str]`
  and `verify(topic, facts) -> list[bool | None]`; what it lacks of the interface is supplied
  (base.DecomposeVerify), `well_formed(topic, response) -> bool` included (base.ends_a_sentence).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from halluray.config import FactCheckerConfig
from halluray.errors import InputError
from halluray.factuality.base import CheckerBase, DecomposeVerify, FactChecker, check_with
from halluray.factuality.entity_checker import EntityTableChecker
from halluray.factuality.fact_table_checker import FactTableChecker
from halluray.factuality.openai_checker import OpenAIFactChecker, OpenAIResponder
from halluray.factuality.qa_matching import (
    ABSTAIN,
    INCORRECT,
    Values,
    accepted_answers,
    is_abstention,
    label_record_answer,
    record_field,
)
from halluray.factuality.unfamiliarity import answer_of
from halluray.world.checker import TRUE, CheckResult, ExactChecker
from halluray.world.checker import is_abstention as is_world_abstention
from halluray.world.entities import World

__all__ = ["FactChecker", "CheckResult", "WorldFactChecker", "QAChecker", "FactTableChecker", "EntityTableChecker",
           "OpenAIFactChecker", "OpenAIResponder", "load_fact_checker", "check_with", "is_abstention"]


class WorldFactChecker(CheckerBase):
    """The synthetic world's exact checker; `check` is exactly the world checker's."""

    def __init__(self, world: World | ExactChecker):
        self.exact = world if isinstance(world, ExactChecker) else ExactChecker(world)

    def decompose(self, response: str) -> list[str]:
        facts, _ = self.exact.decompose(response)
        return [sentence for sentence, *_ in facts]

    def verify(self, topic: str, facts: list[str]) -> list[bool | None]:
        labels = []
        for fact in facts:
            found = self.exact.check(topic, fact).facts
            labels.append(found[0].label == TRUE if len(found) == 1 else None)
        return labels

    def check(self, topic: str, response: str) -> CheckResult:
        return self.exact.check(topic, response)

    def well_formed(self, topic: str, response: str) -> bool:
        return self.exact.well_formed(topic, response)

    def label_answer(self, record: Mapping[str, Any], response: str) -> str:
        """`ExactChecker.check_answer` of the response's answer; a topic the world does not know is incorrect
        unless the answer abstains."""
        topic = record_field(record, "topic", "names the person asked about")
        attribute = record_field(record, "attribute", "names the fact the world's checker grades")
        answer = answer_of(response)
        world = self.exact.world
        if not world.has(topic):
            return ABSTAIN if is_world_abstention(" ".join(answer.split())) else INCORRECT
        if attribute not in world.person(topic).facts:
            raise InputError(f"a short-QA record asks for {attribute!r} of {topic!r}; the world's people have "
                             f"{', '.join(sorted(world.person(topic).facts))}")
        return self.exact.check_answer(topic, attribute, answer)


class QAChecker(CheckerBase):
    """Grades short answers by the record's accepted `answers` (qa_matching.py); no long form. `values`
    (attribute -> normalised answers, `qa_matching.answer_values` of the data) are what else an answer may
    name: with them "Lahore is in India, near Pakistan" names India first and is incorrect."""

    def __init__(self, values: Values | None = None):
        self.values = values or {}

    def check(self, topic: str, response: str) -> CheckResult:
        raise InputError("fact_checker.kind 'qa' grades short answers only; use 'world', 'fact_table', 'openai' "
                         "or a callable for long-form responses")

    def label_answer(self, record: Mapping[str, Any], response: str) -> str:
        answers = accepted_answers(record)
        if not answers:
            record_field(record, "answers", "fact_checker.kind 'qa' matches the response against")
        return label_record_answer(record, response, self.values)


class _Adapter(DecomposeVerify):
    """User code with the full interface from what it has: its own check, check_many and label_answer when
    it defines them, else DecomposeVerify's from its decompose and verify."""

    def __init__(self, inner: Any):
        self.inner = inner

    def _own(self, name: str):
        method = getattr(self.inner, name, None)
        return method if callable(method) else None

    def decompose(self, response: str) -> list[str]:
        return list(self.inner.decompose(response))

    def verify(self, topic: str, facts: list[str]) -> list[bool | None]:
        return list(self.inner.verify(topic, facts))

    def check(self, topic: str, response: str) -> CheckResult:
        own = self._own("check")
        return own(topic, response) if own else super().check(topic, response)

    def well_formed(self, topic: str, response: str) -> bool:
        own = self._own("well_formed")
        return bool(own(topic, response)) if own else super().well_formed(topic, response)

    def check_many(self, topics: list[str], responses: list[str]) -> list[CheckResult]:
        own = self._own("check_many")
        return list(own(topics, responses)) if own else super().check_many(topics, responses)

    def label_answer(self, record: Mapping[str, Any], response: str) -> str:
        own = self._own("label_answer")
        return own(record, response) if own else super().label_answer(record, response)

    def __repr__(self) -> str:
        return f"_Adapter({self.inner!r})"


def _import(spec: str) -> Any:
    module_name, _, attr = spec.partition(":")
    try:
        obj = importlib.import_module(module_name.strip())
    except ModuleNotFoundError as e:
        raise InputError(f"fact checker '{spec}': cannot import module '{module_name}' ({e})") from None
    except Exception as e:
        raise InputError(f"fact checker '{spec}': importing '{module_name}' failed ({type(e).__name__}: {e})") from None
    for part in attr.strip().split("."):
        if not hasattr(obj, part):
            raise InputError(f"fact checker '{spec}': '{module_name}' has no attribute '{attr}'")
        obj = getattr(obj, part)
    return obj


def _is_checker(obj: Any) -> bool:
    return not isinstance(obj, type) and callable(getattr(obj, "decompose", None)) and \
        callable(getattr(obj, "verify", None))


def load_fact_checker(spec, *, world: World | ExactChecker | None = None, cache_path: str | Path | None = None,
                      values: Values | None = None, **options):
    """A checker (the `checking.Checker` interface) from a `FactCheckerConfig` or a kind string: 'world' (needs
    `world`), 'qa' (`values`: what else an answer may name), 'fact_table', 'entity_table', 'openai' (replies
    cached in `cache_path` when the config names no cache), or an import path 'package.module:callable'
    (called with the config's `options` updated by `options`, unless it already is a checker object)."""

    if isinstance(spec, str):
        try:
            cfg = FactCheckerConfig(kind=spec)
        except ValueError as e:
            raise InputError(f"fact checker '{spec}': {e.errors()[0]['msg'] if hasattr(e, 'errors') else e}") \
                from None
    else:
        cfg = spec
    if cfg.kind == "world":
        if world is None:
            raise InputError("the 'world' fact checker needs the synthetic world (run `halluray world` first)")
        return WorldFactChecker(world)
    if cfg.kind == "qa":
        return QAChecker(values)
    if cfg.kind == "fact_table":
        return FactTableChecker.from_file(cfg.table_path)
    if cfg.kind == "entity_table":
        return EntityTableChecker.from_path(**cfg.options)
    if cfg.kind == "openai":
        return OpenAIFactChecker.from_config(cfg, cache_path=cache_path)
    obj = _import(cfg.kind)
    if not _is_checker(obj):
        if not callable(obj):
            raise InputError(f"fact checker '{cfg.kind}' is neither callable nor an object with decompose/verify")
        kwargs = {**cfg.options, **options}
        try:
            obj = obj(**kwargs)
        except TypeError as e:
            raise InputError(f"fact checker '{cfg.kind}': calling it with options {sorted(kwargs)} failed ({e}); "
                             f"set fact_checker.options to its keyword arguments") from None
    missing = [m for m in ("decompose", "verify") if not callable(getattr(obj, m, None))]
    if missing:
        raise InputError(f"fact checker '{cfg.kind}' returned a {type(obj).__name__} without {', '.join(missing)}()")
    complete = all(callable(getattr(obj, m, None)) for m in ("check", "check_many", "label_answer", "well_formed"))
    return obj if complete else _Adapter(obj)
