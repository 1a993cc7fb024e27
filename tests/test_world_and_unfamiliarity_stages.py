"""The world and unfamiliarity stages end to end on a tiny config."""

import json

from halluray.cli import main
from halluray.config import load_config
from halluray.io import read_jsonl
from tests.conftest import TINY


def test_world_then_unfamiliarity_write_their_artifacts(tmp_path):
    args = TINY + [f"run.output_dir={tmp_path}", "run.name=r"]
    assert main(["world", *args]) == 0
    run = tmp_path / "r"
    for f in ["world/world.json", "world/corpus.txt", "world/prompts_eval.jsonl", "world/qa.jsonl",
              "world/mcq.jsonl", "base_model/model.safetensors", "base_model/tokenizer.json"]:
        assert (run / f).is_file(), f
    assert load_config(run / "config.world.yaml").world.num_people == 24

    assert main(["unfamiliarity", *args]) == 0
    records = read_jsonl(run / "unfamiliarity" / "unfamiliarity.jsonl")
    assert {r["task"] for r in records} == {"long_form", "short_qa", "mcq"}
    assert len(records) == 3 * 24
    for r in records:
        assert r["unfamiliar"] == (r["score"] > {"long_form": 2.0, "short_qa": 2.0, "mcq": 0.36}[r["task"]])
    assert (run / "unfamiliarity" / "histogram.png").stat().st_size > 1000
    summary = json.loads((run / "unfamiliarity" / "summary.json").read_text())
    assert 0.0 <= summary["long_form"]["auroc_never_vs_top_third"] <= 1.0
    metrics = read_jsonl(run / "metrics.jsonl")
    assert [m["step"] for m in metrics if m["stage"] == "world" and "lr" in m] == [0, 10, 20, 29]  # pretraining
    assert [m["step"] for m in metrics if m["stage"] == "unfamiliarity"] == [0]
    assert not list(run.glob(".*")), "temp files left behind"


def test_unfamiliarity_rejects_prompts_longer_than_the_context(tmp_path, capsys):
    args = TINY + [f"run.output_dir={tmp_path}", "run.name=r", "model.n_positions=48"]
    assert main(["world", *args]) == 0
    assert main(["unfamiliarity", *args]) == 2
    assert "lower unfamiliarity.n_shots" in capsys.readouterr().err
    assert not (tmp_path / "r" / "unfamiliarity").exists(), "a failed stage must leave no output behind"
