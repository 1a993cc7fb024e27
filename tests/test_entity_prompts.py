"""Entity tables as long-form prompts through configs (`data.dataset: entity_table`, `fact_checker.kind:
entity_table`): splits by entity stratified by fame, the checker kind, bad tables stopped before anything runs,
and the unfamiliarity stage scoring each entity's claims (a tiny random model stands in for SmolLM2)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from halluray.cli import main
from halluray.config import ConfigError, build_config, load_config
from halluray.data import load_prompts, prompts_for
from halluray.data.entity_prompts import split_entities
from halluray.data.entity_table import countries, fame_quartiles
from halluray.factuality.checking import build_checker
from halluray.factuality.entity_checker import EntityTableChecker
from halluray.io import read_jsonl
from halluray.layout import RunLayout
from halluray.pipeline.shared.record_unfamiliarity import summarize_records
from tests.entity_fixtures import made_up_table, tiny_entity_model

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "real" / "demo-real-long.yaml"
SPLITS = {"sft": 0.4, "rm": 0.1, "ppo": 0.2, "val": 0.1, "eval": 0.2}
NAMES = ("Zorland", "Belmark", "Kanistan", "Drivia", "Mupor", "Fesland", "Lorway", "Tavia")


def test_splits_are_disjoint_and_cover_every_entity():
    records = {split: {r["topic"] for r in load_prompts("entity_table", "builtin:countries", split)}
               for split in SPLITS}
    names = [name for topics in records.values() for name in topics]
    assert len(names) == len(set(names)) == len(countries())


def test_every_split_takes_its_share_of_each_fame_quartile():
    quartile = fame_quartiles(countries())
    split = split_entities(countries(), SPLITS, seed=0)
    per = Counter((split[name], q) for name, q in quartile.items())
    per_quartile = len(quartile) // 4
    for name, fraction in SPLITS.items():
        assert [per[name, q] for q in (1, 2, 3, 4)] == [round(fraction * per_quartile)] * 4, name


def test_the_split_seed_decides_the_split_and_the_same_seed_repeats_it():
    table = countries()
    assert split_entities(table, SPLITS, seed=0) == split_entities(list(reversed(table)), SPLITS, seed=0)
    other = split_entities(table, SPLITS, seed=1)
    assert other != split_entities(table, SPLITS, seed=0)
    cfg = build_config({}, ["data.dataset=entity_table", "data.path=builtin:countries", "data.split_seed=1"])
    assert {r["topic"] for r in prompts_for(cfg, "val")} == {name for name, s in other.items() if s == "val"}


def test_a_record_is_the_entitys_prompt_with_its_reference_as_target():
    peru = next(r for r in load_prompts("entity_table", "builtin:countries") if r["topic"] == "Peru")
    assert peru["prompt"] == "Tell me about Peru."
    assert peru["target"].startswith("Peru is a country in South America") and "Lima" in peru["target"]
    assert peru["fame_quartile"] == 3 and peru["table"] == "countries"
    assert "answers" not in peru  # long form: scored claim by claim, not as a short answer


def test_the_entity_table_checker_kind_loads_from_a_config(tmp_path):
    default = build_checker(build_config({}, ["fact_checker.kind=entity_table"]))
    assert isinstance(default, EntityTableChecker) and default.source == "builtin:countries"
    assert default.check("Peru", "Its capital is Lima. It borders Chile.").n_true == 2
    table = made_up_table(tmp_path / "made_up.jsonl", NAMES)
    mine = build_checker(build_config({}, ["fact_checker.kind=entity_table",
                                           f"fact_checker.options={{path: {table}}}"]))
    assert mine.check("Zorland", "Zorland borders Belmark. Its capital is Belville.").n_false == 1
    with pytest.raises(ConfigError, match="kind 'entity_table' takes one option, path"):
        build_config({}, ["fact_checker.kind=entity_table", "fact_checker.options={table: x.jsonl}"])


@pytest.mark.parametrize("where", ["data", "checker"])
def test_a_bad_user_table_stops_the_run_in_one_line_naming_the_file_and_line(tmp_path, capsys, where):
    bad = made_up_table(tmp_path / "bad.jsonl", NAMES)
    bad.write_text(bad.read_text() + '{"entity": "Nowhere", "attributes": {"capital": [null]}}\n')
    table = {"data": bad, "checker": "builtin:countries"}[where]
    checker = {"data": "builtin:countries", "checker": bad}[where]
    # The checker's table is read first, then the base model is checked (it must exist), then the data's table.
    model = tiny_entity_model(tmp_path, made_up_table(tmp_path / "good.jsonl", NAMES))
    args = ["--config", str(CONFIG), f"run.output_dir={tmp_path / 'runs'}", f"data.path={table}",
            f"fact_checker.options={{path: {checker}}}", f"model.pretrained_path={model}", "model.chat_template=false"]
    capsys.readouterr()
    assert main(["unfamiliarity", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"{bad}: line 9: attribute 'capital' has None" in err
    assert not (tmp_path / "runs").exists()


def test_the_shipped_config_scores_countries_by_their_claims():
    cfg = load_config(CONFIG)
    assert cfg.data.dataset == "entity_table" and cfg.unfamiliarity.tasks == ["long_form"]
    assert isinstance(build_checker(cfg), EntityTableChecker)
    val = load_prompts("entity_table", cfg.data.path, "val", entity_splits=dict(cfg.data.entity_splits),
                       split_seed=cfg.data.split_seed)
    assert Counter(val["fame_quartile"]) == {1: 4, 2: 4, 3: 4, 4: 4}


def test_the_long_form_summary_counts_claims_per_response_by_fame():
    rows = [{"task": "long_form", "name": f"c{i}", "fame": float(i), "score": (8 - i) / 2, "unfamiliar": False,
             "n_true": [i, 0], "n_false": [8 - i, 0], "n_unverifiable": [1, 3]} for i in range(8)]
    s = summarize_records(rows, k=2)["long_form"]
    assert s["responses"] == 16 and s["true_per_response"] == 28 / 16 and s["false_per_response"] == 36 / 16
    assert s["not_checkable_per_response"] == 2.0 and s["with_checkable_claim"] == 0.5
    assert s["spearman_score_fame"] == pytest.approx(-1.0)
    assert s["score_split_half_r"] is None  # the second samples state nothing: no variance to correlate
    twice = [dict(r, n_false=[r["n_false"][0], 2 * r["n_false"][0]]) for r in rows]
    assert summarize_records(twice, k=2)["long_form"]["score_split_half_r"] == pytest.approx(1.0)
    q = s["by_fame_quartile"]  # most famous first: c7, c6 | c5, c4 | ...
    assert q["true_per_response"] == [(7 + 6) / 4, (5 + 4) / 4, (3 + 2) / 4, (1 + 0) / 4]
    assert q["false_per_response"][0] == (1 + 2) / 4 and q["score"][0] == (0.5 + 1.0) / 2


def test_unfamiliarity_records_each_samples_true_false_and_unchecked_claims(tmp_path, capsys):
    table = made_up_table(tmp_path / "made_up.jsonl", NAMES)
    model = tiny_entity_model(tmp_path, table)
    args = [f"run.output_dir={tmp_path / 'runs'}", "run.name=long", f"model.pretrained_path={model}",
            "data.dataset=entity_table", f"data.path={table}",
            "data.entity_splits={sft: 0.5, rm: 0, ppo: 0, val: 0, eval: 0.5}",
            "fact_checker.kind=entity_table", f"fact_checker.options={{path: {table}}}",
            "unfamiliarity.tasks=[long_form]", "unfamiliarity.splits=[sft,eval]",
            "unfamiliarity.long_form_samples=3", "unfamiliarity.max_new_tokens=24", "unfamiliarity.batch_size=6",
            "logging.wandb_mode=disabled", "threads=1"]
    assert main(["unfamiliarity", *args]) == 0, capsys.readouterr().err[-2000:]
    layout = RunLayout(build_config({}, args))
    rows = read_jsonl(layout.unfamiliarity_scores)
    assert sorted(r["name"] for r in rows) == sorted(NAMES)
    assert {r["split"] for r in rows} == {"sft", "eval"} and all(r["task"] == "long_form" for r in rows)
    checker = EntityTableChecker.from_path(table)
    for r in rows:
        results = [checker.check(r["name"], s) for s in r["samples"]]
        assert len(results) == 3 and r["fame"] == float(NAMES.index(r["name"]))
        assert r["n_true"] == [c.n_true for c in results] and r["n_false"] == [c.n_false for c in results]
        assert r["n_unverifiable"] == [len(c.unverifiable) for c in results]
        assert r["score"] == sum(r["n_false"]) / 3
    summary = json.loads((layout.unfamiliarity_dir / "summary.json").read_text())["long_form"]
    assert summary["responses"] == 24 and len(summary["by_fame_quartile"]["true_per_response"]) == 4
    assert "Spearman(score, fame)" in capsys.readouterr().out
