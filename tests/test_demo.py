"""`halluray demo` end to end: a smoke run of every stage at tiny size, stage reuse, and (slow) the paper's
orderings at the demo's own size."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from halluray.cli import main

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "configs" / "demo" / "demo.yaml"
RESULT_KEYS = {"fraction_true_facts", "mean_true_facts", "mean_false_facts", "mean_reward", "no_fact_rate",
               "fraction_true_by_unfamiliarity", "true_facts_by_unfamiliarity", "false_facts_by_unfamiliarity",
               "reward_by_unfamiliarity", "no_fact_rate_by_unfamiliarity", "rm_reward_by_unfamiliarity",
               "rm_overestimation_by_unfamiliarity", "verifier_accuracy", "reward_model_kind", "unfamiliarity_bins",
               "split", "seed", "wall_time_s", "fraction_true_per_response", "malformed_rate",
               "fraction_true_per_response_by_unfamiliarity", "malformed_rate_by_unfamiliarity", "greedy",
               "malformed_per_try_by_unfamiliarity",
               "intervals_95"}
METHODS = {"sft", "rl_standard_rm", "rl_conservative_rm"}
SMOKE = ["world.num_people=60", "world.fact_frequencies=[0,12]", "world.frequency_weights=[1,1]",
         "model.n_layer=1", "model.n_embd=32", "model.n_head=2", "model.n_positions=128",
         "model.pretrain.steps=300", "model.pretrain.batch_size=8", "model.pretrain.lr=1e-2",
         "unfamiliarity.tasks=[long_form]", "unfamiliarity.max_new_tokens=24", "sft.steps=6", "sft.batch_size=8",
         "sft.replay_documents=8",
         "reward_data.samples_per_prompt=4", "reward_data.max_new_tokens=24", "reward_data.generator_steps=20",
         "reward_data.generator_documents=[4,8]",
         "reward_model.batch_size=4", "reward_model.epochs=1", "reward_model.decomposer_epochs=1",
         "reward_model.decomposer_recombined=8", "reward_model.decomposer_max_new_tokens=24", "ppo.steps=2",
         "ppo.batch_size=4", "ppo.samples_per_prompt=2", "ppo.minibatch_size=4",
         "ppo.max_new_tokens=24", "ppo.eval_every=0", "ppo.plateau_patience=0", "ppo.save_every=0",
         "eval.samples_per_prompt=1", "logging.wandb_mode=disabled", "threads=1",
         # One rank per role (the distributed paths have their own tests); the policy generates for itself.
         "actors.policy.num_actors=1", "actors.critic.num_actors=1", "actors.rollout.num_actors=1",
         "actors.reward_trainer.num_actors=1", "actors.rollout_mode=colocated"]

pytestmark = pytest.mark.ray


def test_demo_smoke_runs_every_stage_and_reuses_them(ray_cluster, tmp_path, capsys):
    args = ["demo", "--config", str(DEMO), f"run.output_dir={tmp_path}", *SMOKE]
    assert main(args) == 0
    run = tmp_path / "demo"
    results = json.loads((run / "results.json").read_text())
    assert set(results) == RESULT_KEYS and results["reward_model_kind"] == "two-stage-text"
    assert 0 <= results["no_fact_rate"]["rl_conservative_rm"] <= 1
    assert all(0 <= results[k][m] <= 1 for k in ("malformed_rate", "no_fact_rate") for m in METHODS)
    assert set(results["greedy"]["fraction_true_per_response"]) == METHODS  # the authors' decoding, beside ours
    assert all(len(results["greedy"][k][m]) == len(results["unfamiliarity_bins"]) + 1 for m in METHODS
               for k in ("malformed_rate_by_unfamiliarity", "no_fact_rate_by_unfamiliarity"))
    assert (run / "reward-data" / "generator" / "config.json").is_file()  # the standard RM's own source model
    assert (run / "decomposer" / "decomposer.json").is_file()  # one decomposer for both RMs
    sft_summary = json.loads((run / "sft" / "summary.json").read_text())
    assert sft_summary["replayed"] == 8 and sft_summary["examples"] == 18  # the 18 SFT people's bios, and 8 documents
    assert set(results["fraction_true_facts"]) == METHODS
    assert set(results["rm_reward_by_unfamiliarity"]) == {"ground_truth", "standard", "conservative"}
    assert all(len(v) == len(results["unfamiliarity_bins"]) + 1
               for v in results["true_facts_by_unfamiliarity"].values())
    for stage in ("world", "unfamiliarity", "sft", "train-rm-standard", "ppo-conservative-rm", "eval"):
        assert stage in results["wall_time_s"]
    report = (run / "report.md").read_text()
    assert "| RL + conservative RM |" in report and "0.59" in report  # ours beside the paper's number
    assert "ground-truth reward" in report and "RL + conservative RM states" in report  # what the fraction hides
    assert "1 samples per prompt at T=0.7" in report  # the evaluation's own temperature
    assert "Of the bios each tries" in report  # malformed per try beside SFT's: cleaner bios, or just fewer
    for png in ("fig5.png", "fig6.png", "fig7.png"):
        assert (run / png).stat().st_size > 1000
    capsys.readouterr()

    # Same config again: every stage is reused.
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.count("up to date, reused") == 11  # every stage of the plan
    # The sweep over the oracle source's accuracy: its first point is the run above (reused), each value redoes
    # the standard data and what follows it: both RMs, as they share a decomposer fitted on both sources' data.
    assert main(["sweep", "--config", str(DEMO), "--values", "0.9", f"run.output_dir={tmp_path}", *SMOKE]) == 0
    out = capsys.readouterr().out
    assert "demo: sft: up to date" in out and "demo: reward-data-conservative: up to date" in out
    assert "demo: train-rm-standard ..." in out and "demo: ppo-standard-rm ..." in out and "demo: eval ..." in out
    sweep = json.loads((run / "sweep" / "sweep.json").read_text())
    assert [p["label"] for p in sweep["points"]] == ["config", "0.9"] and sweep["largest_gap"] == "0.9"
    assert (run / "sweep" / "sweep.png").stat().st_size > 1000 and (run / "sweep" / "0.9.json").is_file()
    # Run again: both points are read back, nothing is trained.
    assert main(["sweep", "--config", str(DEMO), "--values", "0.9", f"run.output_dir={tmp_path}", *SMOKE]) == 0
    assert capsys.readouterr().out.count("reused") == 2

    # The scalar reward model, the alternative to the two-stage one, trains on the same data and scores.
    assert main(["train-rm", "--config", str(DEMO), f"run.output_dir={tmp_path}", *SMOKE,
                 "reward_model.kind=scalar", "reward_data.source=standard"]) == 0
    from halluray.reward_models.models import ScalarRewardModel, load_reward_model

    rm = load_reward_model(run / "rm-standard")
    assert isinstance(rm, ScalarRewardModel)
    scores = rm(["Write a biography for X ."] * 2, ["I do not know .", "X comes from Oslo ."], ["X", "X"])
    assert len(scores) == 2 and all(isinstance(s, float) for s in scores)
    meta = json.loads((run / "rm-standard" / "rm.json").read_text())
    assert meta["kind"] == "scalar" and meta["val_rmse"] >= 0


@pytest.fixture(scope="module")
def three_seeds(ray_cluster, tmp_path_factory) -> dict:
    """`make demo-seeds` (about 22 minutes on 2 cores): the summary over seeds 0, 1, 2."""
    out = tmp_path_factory.mktemp("seeds")
    assert main(["demo", "--seeds", "0,1,2", f"run.output_dir={out}", "run.name=demo-seeds",
                 "logging.wandb_mode=disabled"]) == 0
    return json.loads((out / "demo-seeds" / "summary.json").read_text())


FAILS_UNDER_THE_PAPERS_PROTOCOL = pytest.mark.xfail(strict=True, reason=(
    "measured 2026-12-05 (README, 'What make demo produces'): RL + conservative RM garbles 5.5% / 16% / 14% of "
    "its bios on its worst third over seeds 0 / 1 / 2 at T 0.7 (greedy 0% / 0% / 12%; SFT 25% / 31% / 38%)"))


@pytest.mark.slow
@pytest.mark.parametrize("ordering", [
    "per-response fraction true RL+conservative > RL+standard and > SFT on every seed",
    "ground-truth reward RL+conservative > RL+standard and > SFT on every seed",
    "RL+conservative keeps >= 0.9 x SFT's true facts on the most familiar tercile on every seed",
    pytest.param("RL+conservative malformed rate <= 5% in every tercile on every seed",
                 marks=FAILS_UNDER_THE_PAPERS_PROTOCOL),
    "standard RM over-estimates the most unfamiliar tercile more than the conservative on every seed",
])
def test_the_papers_long_form_ordering_holds_on_every_seed(three_seeds, ordering):
    assert three_seeds["checks"][ordering]
