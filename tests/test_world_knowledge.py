"""The shipped demo world makes the base model know frequent people and not absent ones (slow: ~3 min)."""

import json

import pytest

from halluray.cli import main

pytestmark = pytest.mark.slow


def test_demo_base_model_knows_frequent_people_and_not_absent_ones(tmp_path):
    args = ["--config", "configs/demo/world.yaml", f"run.output_dir={tmp_path}", "run.name=demo"]
    assert main(["world", *args]) == 0
    assert main(["unfamiliarity", *args]) == 0
    summary = json.loads((tmp_path / "demo" / "unfamiliarity" / "summary.json").read_text())
    long_form = summary["long_form"]
    assert long_form["fraction_true_top_third"] >= 0.8
    assert long_form["fraction_true_never"] <= 0.3
    assert long_form["auroc_never_vs_top_third"] >= 0.9
    assert summary["short_qa"]["auroc_never_vs_top_third"] >= 0.9
    # Graded, not binary: mean false facts fall as the corpus states the facts more often.
    means = [long_form["mean_score_by_frequency"][f] for f in ("0", "2", "6", "24")]
    assert means == sorted(means, reverse=True)
