"""halluray.factuality.checking: one Checker interface over the world, QA matching, a fact table and FActScore
(against the fake FActScore server process, tests/factscore_server.py)."""

from __future__ import annotations

import json
import logging

import pytest

from halluray.config import ConfigError, build_config
from halluray.errors import InputError
from halluray.factuality.chat_client import ResponseCache
from halluray.factuality.checking import Checker, build_checker
from halluray.factuality.fact_checkers import QAChecker, WorldFactChecker
from halluray.factuality.fact_table_checker import FactTableChecker, load_fact_table
from halluray.factuality.openai_checker import OpenAIFactChecker, OpenAIResponder
from halluray.factuality.qa_matching import extract_answer, label_short_answer, normalize_answer
from halluray.world.checker import ExactChecker
from tests.factscore_fixtures import PEOPLE, server_stats

KEY_ENV = "HALLURAY_TEST_FACTSCORE_KEY"
PREFIX = "The capital of France is"


# --- QA matching ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("response, answers, prefix, label", [
    ("Paris", ["Paris"], None, "correct"),
    ("paris.", ["Paris"], None, "correct"),
    ("The capital of France is Paris.", ["Paris"], PREFIX, "correct"),
    ("the capital of  France is PARIS, a big city.", ["Paris"], PREFIX, "correct"),  # prefix case, apposition
    ("The Beatles", ["Beatles"], None, "correct"),  # articles
    ("NYC!", ["New York City", "NYC"], None, "correct"),  # any alias
    ("O'Neill", ["O Neill"], None, "correct"),  # punctuation becomes a space, as in TriviaQA
    ("St. Louis, Missouri", ["St. Louis"], None, "correct"),  # "St." does not end the sentence
    ("Washington (the state)", ["Washington"], None, "correct"),
    ("Mount Everest; the tallest", ["Mount Everest"], None, "correct"),
    ("Paris\nThe city of light.", ["Paris"], None, "correct"),  # the first line
    ("Paris. It is also the largest city.", ["Paris"], None, "correct"),  # the first sentence
    ("France . </s>", ["France"], None, "correct"),  # the synthetic world's format
    ("I don't know.", ["Paris"], PREFIX, "abstain"),
    ("I’m not sure, maybe Paris.", ["Paris"], None, "abstain"),
    ("Lyon.", ["Paris"], None, "incorrect"),
    ("The capital of France is Lyon.", ["Paris"], PREFIX, "incorrect"),
    ("Paris is the answer.", ["Paris"], None, "correct"),  # the value named, wherever in the sentence
    ("", ["Paris"], None, "incorrect"),
    ("The capital of France is.", ["Paris"], PREFIX, "incorrect"),  # nothing after the prefix
])
def test_qa_matching(response, answers, prefix, label):
    assert label_short_answer(response, answers, prefix) == label


def test_normalisation_and_extraction():
    assert normalize_answer("  The Beatles'_Song! ") == "beatles song"
    assert normalize_answer("An apple, a day") == "apple day"
    assert extract_answer("The capital of France is Paris, of course.", PREFIX) == "Paris"
    assert extract_answer("Paris (France)") == "Paris"
    assert extract_answer("I do not know .") is None
    assert extract_answer("   ") == ""


# --- the fact table -------------------------------------------------------------------------------------------

TABLE_CSV = """entity,attribute,answers,question
France,capital,Paris,What is the capital of France?
Germany,capital,Berlin,What is the capital of Germany?
Aoife Brennan,birth_place,Cork,
Aoife Brennan,birth_year,1970,
Aoife Brennan,club,Leeds United|Leeds,
Jonas Weber,birth_place,Hamburg,
Jonas Weber,birth_year,1979,
Jonas Weber,club,Werder Bremen,
"""


@pytest.fixture
def table_path(tmp_path):
    path = tmp_path / "facts.csv"
    path.write_text(TABLE_CSV)
    return path


def test_fact_table_loads_csv_and_jsonl_alike(table_path, tmp_path):
    table = load_fact_table(table_path)
    assert table["Aoife Brennan"]["club"] == ["Leeds United", "Leeds"]
    jsonl = tmp_path / "facts.jsonl"
    jsonl.write_text("".join(json.dumps({"entity": e, "attribute": a, "answers": answers, "fame": 1}) + "\n"
                             for e, attributes in table.items() for a, answers in attributes.items()))
    assert load_fact_table(jsonl) == table
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"entity": "France", "attribute": "capital"}\n')
    with pytest.raises(InputError, match=r"bad\.jsonl:1: missing answers"):
        load_fact_table(bad)
    with pytest.raises(InputError, match="must be a .csv or .jsonl file"):
        load_fact_table(table_path.rename(tmp_path / "facts.txt"))


def test_fact_table_grades_short_answers(table_path):
    checker = FactTableChecker.from_file(table_path)
    france = {"topic": "France", "attribute": "capital", "answer_prefix": PREFIX, "prompt": "Capital of France?"}
    assert checker.label_answer(france, "The capital of France is Paris.") == "correct"
    assert checker.label_answer(france, "The capital of France is Berlin.") == "incorrect"
    assert checker.label_answer(france, "I don't know.") == "abstain"
    # A row the table lacks falls back on the record's own answers.
    spain = {"topic": "Spain", "attribute": "capital", "answers": ["Madrid"]}
    assert checker.label_answer(spain, "Madrid.") == "correct"
    with pytest.raises(InputError, match=r"no row for \('Spain', 'capital'\) and the record lists no 'answers'"):
        checker.label_answer({"topic": "Spain", "attribute": "capital"}, "Madrid.")


def test_fact_table_labels_long_form_sentences(table_path):
    checker = FactTableChecker.from_file(table_path)
    response = ("Aoife Brennan played for Leeds. She was born in 1979 in Cork. She played for Werder Bremen. "
                "She owns a corkscrew. She was born in Cork.")
    result = checker.check("Aoife Brennan", response)
    assert [(f.text, f.attribute, f.value, f.label) for f in result.facts] == [
        ("Aoife Brennan played for Leeds.", "club", "Leeds", "true"),
        ("She was born in 1979 in Cork.", "birth_place", "Cork", "true"),
        ("She was born in 1979 in Cork.", "birth_year", "1979", "false"),  # another entity's year
        ("She played for Werder Bremen.", "club", "Werder Bremen", "false"),
    ]  # the repeated "born in Cork" counts once
    assert result.unverifiable == ["She owns a corkscrew."]  # word boundaries: not "Cork"
    assert checker.check("Aoife Brennan", "I do not know .").abstained
    assert checker.check("Nobody", "Nobody was born in Cork.").unverifiable == ["Nobody was born in Cork."]


# --- build_checker: every kind -----------------------------------------------------------------------------------

def test_build_checker_world(world, tmp_path):
    world_path = tmp_path / "world.json"
    world_path.write_text(world.to_json())
    checker = build_checker(build_config({}), world_path=world_path, cache_path=tmp_path / "unused.jsonl")
    assert isinstance(checker, WorldFactChecker) and isinstance(checker, Checker)
    person = world.people[0]
    attribute, value = next(iter(person.facts.items()))
    other = next(p.facts[attribute] for p in world.people if p.facts[attribute] != value)
    record = {"topic": person.name, "attribute": attribute, "prompt": "Q"}
    assert checker.label_answer(record, f"{value} . </s>") == "correct"
    assert checker.label_answer(record, f"{other} .") == "incorrect"
    assert checker.label_answer(record, "I do not know .") == "abstain"
    assert checker.label_answer({**record, "topic": "Zzyzx"}, f"{value} .") == "incorrect"
    assert checker.label_answer({**record, "topic": "Zzyzx"}, "I do not know .") == "abstain"
    with pytest.raises(InputError, match="has no 'attribute'"):
        checker.label_answer({"topic": person.name}, f"{value} .")
    responses = [f"{person.name} is a {value} .", "I do not know ."]
    exact = ExactChecker(world)
    assert checker.check_many([person.name] * 2, responses) == [exact.check(person.name, r) for r in responses]
    with pytest.raises(InputError, match=r"needs the synthetic world's file.*halluray world"):
        build_checker(build_config({}))
    with pytest.raises(InputError, match=r"missing\.json does not exist"):
        build_checker(build_config({}), world_path=tmp_path / "missing.json")


def test_build_checker_real_data_kinds(table_path, tmp_path):
    # The world file is read by kind 'world' only: a real-data kind ignores a missing one.
    absent = tmp_path / "no-world.json"
    qa = build_checker(build_config({"fact_checker": {"kind": "qa"}}), world_path=absent)
    assert isinstance(qa, QAChecker) and isinstance(qa, Checker)
    assert qa.label_answer({"topic": "France", "answers": "Paris", "answer_prefix": PREFIX}, f"{PREFIX} Paris.") \
        == "correct"
    with pytest.raises(InputError, match="fact_checker.kind 'qa' grades short answers only"):
        qa.check("France", "Paris is the capital.")
    with pytest.raises(InputError, match="has no 'answers'"):
        qa.label_answer({"topic": "France"}, "Paris")
    table = build_checker(build_config({"fact_checker": {"kind": "fact_table", "table_path": str(table_path)}}),
                          world_path=absent)
    assert isinstance(table, FactTableChecker) and isinstance(table, Checker)
    with pytest.raises(ConfigError, match="kind 'fact_table' needs table_path"):
        build_config({"fact_checker": {"kind": "fact_table"}})
    with pytest.raises(InputError, match=r"nope\.csv: fact table not found \(fact_checker.table_path\)"):
        build_checker(build_config({"fact_checker": {"kind": "fact_table", "table_path": str(tmp_path / "nope.csv")}}))
    kinds = "'world', 'qa', 'fact_table', 'entity_table', 'openai'"
    with pytest.raises(ConfigError, match=f"kind must be {kinds} or an import path"):
        build_config({"fact_checker": {"kind": "factscore"}})
    for key, value in (("max_concurrency", 0), ("prompt_price_per_1m", -1), ("completion_price_per_1m", -0.5)):
        with pytest.raises(ConfigError, match=f"fact_checker.{key}"):
            build_config({"fact_checker": {key: value}})


def openai_config(server, **keys):
    return build_config({"fact_checker": {"kind": "openai", "base_url": server.base_url, "allow_http": True,
                                          "model": "fake-gpt", "api_key_env": KEY_ENV, **keys}})


@pytest.fixture
def no_key(monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv(f"{KEY_ENV}_FILE", raising=False)


def test_build_checker_openai_caches_where_told(factscore_server, tmp_path, no_key):
    checker = build_checker(openai_config(factscore_server), cache_path=tmp_path / "run.jsonl")
    assert isinstance(checker, OpenAIFactChecker) and isinstance(checker, Checker)
    assert checker.client.cache.path == tmp_path / "run.jsonl"
    # A cache file named in the config wins over the stage's default.
    named = build_checker(openai_config(factscore_server, cache_path=str(tmp_path / "shared.jsonl")),
                          cache_path=tmp_path / "run.jsonl")
    assert named.client.cache.path == tmp_path / "shared.jsonl"
    assert build_checker(openai_config(factscore_server)).client.cache.path is None


# --- FActScore against the fake server --------------------------------------------------------------------------

MIXED = "Aoife Brennan is an Irish footballer, played for Chelsea and was born in 1970. She won the FAI Cup in 1995."


def test_openai_checker_labels_true_and_false_facts(factscore_server, no_key):
    checker = build_checker(openai_config(factscore_server, knowledge_path=str(factscore_server.knowledge_path)))
    before = server_stats(factscore_server.base_url)["requests"]
    result = checker.check("Aoife Brennan", MIXED)
    assert [(f.text, f.label) for f in result.facts] == [
        ("Aoife Brennan is an Irish footballer.", "true"), ("Aoife Brennan played for Chelsea.", "false"),
        ("Aoife Brennan was born in 1970.", "true"), ("She won the FAI Cup in 1995.", "true")]
    assert result.unverifiable == [] and not result.abstained
    assert server_stats(factscore_server.base_url)["requests"] - before == 2 + 4  # 2 sentences, 4 facts


def test_a_second_check_many_is_served_from_the_cache(factscore_server, tmp_path, capsys, no_key):
    cache = tmp_path / "fact_checker_cache.jsonl"
    topics = ["Aoife Brennan", "Jonas Weber"]
    responses = [MIXED, "Jonas Weber is a German footballer who played for Werder Bremen. He was born in 1990."]
    checker = build_checker(openai_config(factscore_server), cache_path=cache)
    before = server_stats(factscore_server.base_url)["requests"]
    first = checker.check_many(topics, responses)
    sent = server_stats(factscore_server.base_url)["requests"] - before
    assert sent == 10 and len(cache.read_text().splitlines()) == sent  # 4 sentences, 6 facts
    assert [(r.n_true, r.n_false) for r in first] == [(3, 1), (1, 1)]
    # The same checker again, then a new one (a re-run stage) reading the file: nothing is sent.
    assert checker.check_many(topics, responses) == first
    rerun = build_checker(openai_config(factscore_server), cache_path=cache)
    assert rerun.check_many(topics, responses) == first
    assert server_stats(factscore_server.base_url)["requests"] - before == sent
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("fact-checker:")]
    assert [line.split(",")[0] for line in lines] == [
        "fact-checker: 10 requests (0 from cache)", "fact-checker: 10 requests (10 from cache)",
        "fact-checker: 10 requests (10 from cache)"]
    assert lines[-1].endswith(" 0 prompt + 0 completion tokens")


def test_check_many_is_concurrent_and_keeps_the_order(factscore_server, no_key):
    topics = sorted(PEOPLE)
    # Every second bio gets a wrong birth year: one false fact there, none elsewhere.
    responses = [bio if i % 2 == 0 else bio.replace(" in 19", " in 18", 1) for i, bio in
                 enumerate(PEOPLE[t] for t in topics)]
    checker = build_checker(openai_config(factscore_server, max_concurrency=4))
    server_stats(factscore_server.base_url)  # resets max_in_flight
    results = checker.check_many(topics, responses)
    assert server_stats(factscore_server.base_url)["max_in_flight"] >= 2
    assert [r.n_false for r in results] == [i % 2 for i in range(len(topics))]
    assert all(r.facts[0].text.startswith(topic) for r, topic in zip(results, topics))
    assert results == [checker.check(t, r) for t, r in zip(topics, responses)]  # as one at a time (cached)


def test_the_cost_line_counts_requests_and_tokens(factscore_server, capsys, no_key):
    checker = build_checker(openai_config(factscore_server, prompt_price_per_1m=100, completion_price_per_1m=300))
    response = "Grace Mwangi is a Kenyan runner who won the Boston Marathon. She trained in Nairobi."
    before = server_stats(factscore_server.base_url)
    capsys.readouterr()
    results = checker.check_many(["Grace Mwangi"] * 2, [response] * 2)  # the second is asked once
    after = server_stats(factscore_server.base_url)
    sent, prompt, completion = (after[k] - before[k] for k in ("requests", "prompt_tokens", "completion_tokens"))
    assert sent == 2 + 2 and results[0] == results[1] and (results[0].n_true, results[0].n_false) == (1, 1)
    cost = (prompt * 100 + completion * 300) / 1e6
    assert cost >= 0.01
    assert capsys.readouterr().out.splitlines() == [
        f"fact-checker: {2 * sent} requests ({sent} from cache), {prompt:,} prompt + {completion:,} completion "
        f"tokens, ~${cost:,.2f}"]


def test_openai_label_answer(factscore_server, no_key):
    checker = build_checker(openai_config(factscore_server))
    record = {"topic": "Aoife Brennan", "prompt": "Where was Aoife Brennan born?",
              "answer_prefix": "Aoife Brennan was born in"}
    before = server_stats(factscore_server.base_url)["requests"]
    assert checker.label_answer(record, "Aoife Brennan was born in Cork.") == "correct"
    assert checker.label_answer(record, "Aoife Brennan was born in Dublin, Ireland.") == "incorrect"
    assert checker.label_answer({**record, "answer_prefix": ""}, "Cork") == "correct"  # "{prompt} Cork"
    assert checker.label_answer(record, "I don't know.") == "abstain"
    assert server_stats(factscore_server.base_url)["requests"] - before == 3  # one verification each
    # With accepted answers the record is matched, not verified.
    assert checker.label_answer({**record, "answers": ["Cork", "Cork City"]}, "Cork City.") == "correct"
    assert server_stats(factscore_server.base_url)["requests"] - before == 3


def test_the_responder_writes_the_servers_biographies(factscore_server, tmp_path, capsys, no_key):
    cfg = openai_config(factscore_server, responder_model="bio-writer")
    cache = tmp_path / "cache.jsonl"
    prompts = [f"Write a biography for {name}." for name in ("Aoife Brennan", "Bruno Castellano", "Nobody Known")]
    bios = OpenAIResponder(cfg.fact_checker, cache).respond(prompts)
    assert bios == ["Aoife Brennan is an Irish footballer who played for Leeds United.",
                    "Bruno Castellano is an Italian cyclist who rode for Team Atlantis.",  # every second name: wrong
                    "I don't know."]
    assert {json.loads(line)["model"] for line in cache.read_text().splitlines()} == {"bio-writer"}
    assert OpenAIResponder(cfg.fact_checker, cache).respond(prompts[:1]) == bios[:1]
    assert capsys.readouterr().out.splitlines()[-1].startswith("responder: 1 request (1 from cache)")


def test_a_torn_cache_line_is_skipped(tmp_path, caplog):
    path = tmp_path / "cache.jsonl"
    path.write_text('{"key": "k1", "model": "m", "content": "True"}\n{"key": "k2", "mod')
    with caplog.at_level(logging.WARNING):
        cache = ResponseCache(path)
    assert cache.replies == {"k1": "True"} and "1 unreadable line(s) skipped" in caplog.text
    cache.put("k3", "m", "False")  # on a line of its own, not glued to the torn one
    assert ResponseCache(path).replies == {"k1": "True", "k3": "False"}
