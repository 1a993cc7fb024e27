"""halluray.factuality.fact_checkers: the decompose/verify interface, the world adapter, the generic check, and
loading checkers (user checkers by import path, and the configured kinds); tests/test_fact_checkers_openai.py
covers the OpenAI-compatible checker, tests/test_checking.py the other kinds and the fake FActScore server."""

import sys

import pytest

from halluray.config import ConfigError, FactCheckerConfig, build_config
from halluray.errors import InputError
from halluray.factuality.fact_checkers import (
    FactChecker,
    OpenAIFactChecker,
    WorldFactChecker,
    check_with,
    load_fact_checker,
)
from halluray.world.checker import ExactChecker
from halluray.world.templates import render_fact
from tests.openai_endpoint import KEY_ENV, SECRET

# --- the world adapter and the generic check --------------------------------------------------------------------

def test_world_fact_checker_matches_the_exact_checker(world):
    person, other = world.people[0], world.people[1]
    attribute = next(a for a in person.facts if person.facts[a] != other.facts[a])
    response = (render_fact(person.name, "occupation", person.facts["occupation"]) + " "
                + render_fact(person.name, attribute, other.facts[attribute], 1) + " Nothing to see here .")
    adapter = WorldFactChecker(world)
    assert isinstance(adapter, FactChecker)
    exact = ExactChecker(world).check(person.name, response)
    assert adapter.check(person.name, response) == exact  # dataclass equality: every fact and label
    assert (exact.n_true, exact.n_false) == (1, 1)
    facts = adapter.decompose(response)
    assert len(facts) == 2
    assert adapter.verify(person.name, facts + ["Nothing to see here"]) == [True, False, None]
    generic = check_with(adapter, person.name, response)
    assert [f.label for f in generic.facts] == ["true", "false"] and generic.unverifiable == []


def test_check_with_rejects_bad_labels():
    class Bad:
        def decompose(self, response):
            return ["a fact"]

        def verify(self, topic, facts):
            return ["true"]

    with pytest.raises(InputError, match="Bad.verify returned 'true'"):
        check_with(Bad(), "t", "Some response.")


# --- load_fact_checker -------------------------------------------------------------------------------------------

USER_MODULE = '''
class KeywordChecker:
    """Facts are sentences; a fact is true when it mentions a keyword, unverifiable when it says 'maybe'."""
    def __init__(self, keywords, unsure="maybe"):
        self.keywords, self.unsure = keywords, unsure

    def decompose(self, response):
        return [s.strip() for s in response.split(".") if s.strip()]

    def verify(self, topic, facts):
        return [None if self.unsure in f else any(k in f for k in self.keywords) for f in facts]

INSTANCE = KeywordChecker(["London"])
NOT_A_CHECKER = 42
'''


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "halluray_user_checkers.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "halluray_user_checkers"
    sys.modules.pop("halluray_user_checkers", None)


def test_load_fact_checker_from_an_import_path(user_module):
    cfg = FactCheckerConfig(kind=f"{user_module}:KeywordChecker", options={"keywords": ["London"]})
    checker = load_fact_checker(cfg)
    assert isinstance(checker, FactChecker)
    result = checker.check("Ada", "Ada lived in London. Ada lived in Paris. Ada maybe sang.")
    assert [(f.text, f.label) for f in result.facts] == [("Ada lived in London", "true"),
                                                         ("Ada lived in Paris", "false")]
    assert result.unverifiable == ["Ada maybe sang"]
    # Keyword options given to load_fact_checker override the config's.
    assert load_fact_checker(cfg, keywords=["Paris"]).check("Ada", "Ada lived in Paris.").n_true == 1
    # What user code lacks of the Checker interface is supplied: check_many, and label_answer by `verify`.
    assert [r.n_true for r in checker.check_many(["Ada", "Ada"], ["In London.", "In Paris."])] == [1, 0]
    record = {"topic": "Ada", "prompt": "Where did Ada live?"}
    assert checker.label_answer(record, "London.") == "correct"  # verified: "Where did Ada live? London"
    assert checker.label_answer(record, "Paris.") == "incorrect"
    assert checker.label_answer({**record, "answers": ["Paris"]}, "Paris.") == "correct"  # matched, not verified
    # A ready-made object is used as it is.
    assert load_fact_checker(f"{user_module}:INSTANCE").check("Ada", "In London.").n_true == 1


def test_a_user_checker_without_a_grammar_calls_an_unfinished_response_malformed(user_module):
    checker = load_fact_checker(f"{user_module}:INSTANCE")
    assert checker.well_formed("Ada", "Ada lived in London.") and checker.well_formed("Ada", "I don't know.")
    assert not checker.well_formed("Ada", "Ada lived in London and") and not checker.well_formed("Ada", "")
    assert checker.check("Ada", "Ada lived in London and").malformed
    assert not checker.check("Ada", "Ada lived in London.").malformed


def test_a_user_checker_with_its_own_form_rule_keeps_it(user_module):
    class Strict(type(load_fact_checker(f"{user_module}:INSTANCE").inner)):
        def well_formed(self, topic, response):
            return response.startswith("Bio:")

    checker = load_fact_checker(f"{user_module}:INSTANCE")
    checker.inner = Strict(["London"])
    assert checker.well_formed("Ada", "Bio: Ada lived in London") and not checker.well_formed("Ada", "London.")
    assert checker.check("Ada", "Ada lived in London.").malformed


def test_load_fact_checker_errors(user_module, world):
    with pytest.raises(InputError, match="cannot import module 'no_such_pkg.mod'"):
        load_fact_checker("no_such_pkg.mod:Checker")
    with pytest.raises(InputError, match=f"'{user_module}' has no attribute 'Missing'"):
        load_fact_checker(f"{user_module}:Missing")
    with pytest.raises(InputError, match="neither callable nor an object with decompose/verify"):
        load_fact_checker(f"{user_module}:NOT_A_CHECKER")
    with pytest.raises(InputError, match=r"calling it with options \[\] failed.*fact_checker.options"):
        load_fact_checker(f"{user_module}:KeywordChecker")
    kinds = "'world', 'qa', 'fact_table', 'entity_table', 'openai'"
    with pytest.raises(InputError, match=f"kind must be {kinds} or an import path"):
        load_fact_checker("factscore")
    with pytest.raises(InputError, match="needs the synthetic world"):
        load_fact_checker("world")
    assert isinstance(load_fact_checker("world", world=world), WorldFactChecker)


def test_load_fact_checker_from_config(monkeypatch, tmp_path):
    knowledge = tmp_path / "wiki.jsonl"
    knowledge.write_text('{"title": "Ada Lovelace", "text": "An English mathematician."}\n')
    cfg = build_config({"fact_checker": {"kind": "openai", "base_url": "http://127.0.0.1:1/v1/", "model": "m",
                                         "api_key_env": KEY_ENV, "allow_http": True, "knowledge_path": str(knowledge)}})
    monkeypatch.setenv(KEY_ENV, SECRET)
    checker = load_fact_checker(cfg.fact_checker)
    assert isinstance(checker, OpenAIFactChecker)
    assert checker.endpoint == "http://127.0.0.1:1/v1/chat/completions"
    assert checker.passage("Ada Lovelace") == "An English mathematician." and checker.passage("Bob") is None
    assert SECRET not in repr(checker) and KEY_ENV in repr(checker)
    assert build_config({}).fact_checker.kind == "world"
    with pytest.raises(ConfigError, match="fact_checker.*kind must be"):
        build_config({}, ["fact_checker.kind=nonsense"])
    with pytest.raises(ConfigError, match="fact_checker.timeout_s"):
        build_config({}, ["fact_checker.timeout_s=0"])
    with pytest.raises(ConfigError, match="fact_checker.max_response_bytes"):
        build_config({}, ["fact_checker.max_response_bytes=0"])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "no topic"}\n')
    with pytest.raises(InputError, match=r"bad\.jsonl:1: missing field 'topic'"):
        load_fact_checker(FactCheckerConfig(kind="openai", knowledge_path=str(bad)))
