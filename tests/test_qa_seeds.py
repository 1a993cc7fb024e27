"""`halluray qa-experiment --seeds` / `qa-rl --seeds`: per-seed steps reused by fingerprint, the summary over seeds
and which of the paper's orderings hold on which seed (on hand-made per-seed results), and the CLI wiring."""

import json

import pytest

from halluray import cli
from halluray.campaigns import demo_real, qa_seeds
from halluray.campaigns.shared.seeds import seed_config
from halluray.config import build_config
from halluray.errors import InputError
from halluray.experiments import qa_experiment, qa_rl
from halluray.io import write_jsonl
from halluray.layout import RunLayout
from halluray.pipeline import unfamiliarity, world

C, W, A = "correct", "incorrect", "abstain"
PEOPLE = ("Ana", "Bo")
SCORES = (0, 2, 5)
"""One item per bucket for each person: edges [1, 3] put scores 0 / 2 / 5 in the familiar / middle / unfamiliar
bucket."""
RUNS = {"standard": ("standard", 0.0), "unfamiliar-idk": ("unfamiliar-idk", 0.0), "random-idk": ("random-idk", 0.0),
        "unfamiliar-idk (abstain -3)": ("unfamiliar-idk", -3.0)}
"""qa-rl's result keys -> (SFT init, abstain reward), as short_answer_rl.ppo_runs names them."""
SEED_0 = {  # every ordering holds
    "sft": {"standard": ([C, C], [C, W], [W, W]), "unfamiliar-idk": ([C, C], [A, C], [A, A]),
            "random-idk": ([A, C], [A, C], [A, W])},
    "rl": {"standard": ([C, C], [C, W], [W, W]), "unfamiliar-idk": ([C, C], [A, C], [A, A]),
           "random-idk": ([C, C], [A, A], [A, A]), "unfamiliar-idk (abstain -3)": ([C, C], [C, W], [W, A])},
}
SEED_1 = {  # random-idk abstains exactly where unfamiliar-idk does; RL from random-idk then answers wrong more
    "sft": {**SEED_0["sft"], "random-idk": ([C, C], [A, C], [A, A])},
    "rl": {**SEED_0["rl"], "random-idk": ([C, C], [A, C], [W, A])},
}


def _rows(labels_by_bucket, **first):
    return [{**first, "name": p, "attribute": f"a{b}", "score": SCORES[b], "answers": ["x"] * len(labels),
             "labels": labels} for p in PEOPLE for b, labels in enumerate(labels_by_bucket)]


def _fake_seed_run(cfg, seed, spec, rl=True):
    """What one seed's qa-experiment and qa-rl leave that the summary reads (results.json, answers.jsonl)."""
    layout = RunLayout(seed_config(cfg, seed))
    held = {"edges": [1, 3], "counts": [2, 2, 2]}
    layout.qa_experiment_dir.mkdir(parents=True, exist_ok=True)
    (layout.qa_experiment_dir / "results.json").write_text(json.dumps(held))
    write_jsonl(layout.qa_experiment_dir / "answers.jsonl",
                [r for s, labels in spec["sft"].items() for r in _rows(labels, strategy=s)])
    if rl:
        layout.qa_rl_dir.mkdir(parents=True, exist_ok=True)
        runs = {key: {"init": init, "abstain_reward": a} for key, (init, a) in RUNS.items()}
        (layout.qa_rl_dir / "results.json").write_text(json.dumps({**held, "runs": runs, "reward": {"abstain": 0.0}}))
        write_jsonl(layout.qa_rl_dir / "answers.jsonl",
                    [r for s, labels in spec["sft"].items() for r in _rows(labels, phase="sft", model=s)]
                    + [r for key, labels in spec["rl"].items() for r in _rows(labels, phase="rl", model=key)])


@pytest.fixture
def cfg(tmp_path):
    return build_config({}, [f"run.output_dir={tmp_path}", "run.name=qa-seeds"])


def test_summary_gives_each_seed_the_mean_an_interval_and_where_each_ordering_holds(cfg, tmp_path, capsys):
    _fake_seed_run(cfg, 0, SEED_0)
    _fake_seed_run(cfg, 1, SEED_1)
    summary = qa_seeds.summarize(cfg, [0, 1], "qa-rl")
    per = summary["per_seed"]
    assert summary["models"] == ["SFT standard", "SFT unfamiliar-idk", "SFT random-idk", "RL from standard, abstain 0",
                                 "RL from unfamiliar-idk, abstain 0", "RL from random-idk, abstain 0",
                                 "RL from unfamiliar-idk, abstain -3"]
    assert per["0"]["models"]["SFT standard"][W] == [0.0, 0.5, 1.0]
    assert per["0"]["models"]["SFT random-idk"][A] == [0.5, 0.5, 0.5]
    assert per["1"]["models"]["SFT random-idk"][A] == [0.0, 0.5, 1.0]
    assert summary["mean"]["models"]["SFT random-idk"][A] == [0.25, 0.5, 0.75]
    stats = per["0"]["statistics"]
    assert stats["abstain rise: unfamiliar-idk minus random-idk"] == 1.0
    assert stats["abstain, all buckets: RL from unfamiliar-idk, abstain 0 minus RL from unfamiliar-idk, abstain -3"] \
        == pytest.approx(3 / 6 - 1 / 6)
    assert per["1"]["statistics"]["abstain rise: unfamiliar-idk minus random-idk"] == 0.0
    assert summary["mean"]["statistics"]["abstain rise: unfamiliar-idk minus random-idk"] == 0.5
    lo, hi = summary["interval_95"]["abstain rise: unfamiliar-idk minus random-idk"]
    assert 0.0 <= lo <= hi <= 1.0  # every resample mixes the two seeds' people
    # Standard RL left the wrong rate where it was: "no more often" holds at a difference of 0.
    assert per["0"]["statistics"]["wrong on most unfamiliar: SFT standard minus RL from standard, abstain 0"] == 0.0
    failing = {claim for claim, ok in summary["checks"].items() if not ok}
    assert failing == {"unfamiliar-idk SFT's abstain rate rises more from the most familiar to the most unfamiliar "
                       "bucket than random-idk SFT's",
                       "unfamiliar-idk SFT abstains more often than random-idk SFT on the most unfamiliar bucket",
                       "RL from random-idk SFT with abstain reward 0 answers wrong on the most unfamiliar bucket no "
                       "more often than before RL"}
    assert len(summary["checks"]) == 10  # 5 of Fig. 2, one per abstain-0 run, two for the control
    assert all(summary["checks_by_seed"][claim] == {"0": True, "1": False} for claim in failing)
    out = tmp_path / "qa-seeds"
    assert json.loads((out / "qa-summary.json").read_text())["checks"] == summary["checks"]
    md = (out / "qa-summary.md").read_text()
    assert "- FAILS on seed 1 (holds on 0): unfamiliar-idk SFT's abstain rate rises more" in md
    assert "| SFT random-idk | 0.50 / 0.50 / 0.50 | 0.00 / 0.50 / 1.00 | 0.25 / 0.50 / 0.75 |" in md
    assert "## Fig. 3 right" in md and "| seed 0 | seed 1 | mean |" in capsys.readouterr().out


def test_qa_experiment_summary_has_the_sft_orderings_only(cfg, tmp_path):
    _fake_seed_run(cfg, 3, SEED_0, rl=False)
    summary = qa_seeds.summarize(cfg, [3], "qa-experiment")
    assert summary["rl_runs"] == [] and all(m.startswith("SFT ") for m in summary["models"])
    assert list(summary["checks"].values()) == [True] * 5
    assert "## Fig. 3 right" not in (tmp_path / "qa-seeds" / "qa-summary.md").read_text()


def test_an_empty_bucket_fails_its_orderings_instead_of_passing(cfg):
    _fake_seed_run(cfg, 0, SEED_0, rl=False)
    layout = RunLayout(seed_config(cfg, 0))
    (layout.qa_experiment_dir / "results.json").write_text(json.dumps({"edges": [9], "counts": [6, 0]}))
    summary = qa_seeds.summarize(cfg, [0], "qa-experiment")  # every score below 9: no unfamiliar answers
    assert summary["per_seed"]["0"]["models"]["SFT standard"][W] == [0.5, None, None]
    assert not any(summary["checks"].values())


def test_a_missing_seed_run_names_the_stage_to_run(cfg):
    _fake_seed_run(cfg, 0, SEED_0, rl=False)
    with pytest.raises(InputError, match="qa-rl"):
        qa_seeds.summarize(cfg, [0], "qa-rl")


def test_each_seed_reuses_its_world_and_reruns_only_what_its_settings_changed(cfg, monkeypatch):
    ran = []

    def fake(name):
        def runner(c):
            ran.append((name, c.seed))
            if name == "qa-rl":  # what the stages leave that the summary reads
                _fake_seed_run(cfg, c.seed, SEED_0)
        return runner

    monkeypatch.setattr(world, "run", fake("world"))
    monkeypatch.setattr(unfamiliarity, "run", fake("unfamiliarity"))
    monkeypatch.setattr(qa_seeds, "RUNNERS", {s: fake(s) for s in qa_seeds.RUNNERS})
    checked = []
    monkeypatch.setattr(qa_seeds.preflight, "check", lambda c, stage: checked.append((stage, c.seed)))
    summary = qa_seeds.run(cfg, [0, 1], "qa-rl")
    steps = ["world", "unfamiliarity", "qa-experiment", "qa-rl"]
    assert ran == [(s, seed) for seed in (0, 1) for s in steps]
    assert checked == [(s, seed) for seed in (0, 1) for s in steps[2:]]
    assert set(summary["per_seed"]["1"]["seconds"]) == set(steps)
    assert RunLayout(seed_config(cfg, 1)).run_dir == RunLayout(cfg).run_dir / "seed-1"
    ran.clear()
    monkeypatch.setattr(qa_seeds, "summarize", lambda *a: None)
    qa_seeds.run(cfg.model_copy(update={"ppo": cfg.ppo.model_copy(update={"steps": 3})}), [0], "qa-rl")
    assert ran == [("qa-rl", 0)]  # world, scores and SFT models reused
    qa_seeds.run(cfg.model_copy(update={"seed": 5}), [0], "qa-experiment")
    assert ran == [("qa-rl", 0)]  # the seed comes from --seeds; qa-experiment alone stops before qa-rl


def test_demo_real_over_seeds_runs_each_seed_in_its_own_directory_then_the_summary(cfg, monkeypatch):
    ran = []

    def fake(name):
        def runner(c, **_):
            ran.append((name, c.seed, RunLayout(c).run_dir.name))
            if name == "qa-rl":
                _fake_seed_run(cfg, c.seed, SEED_0 if c.seed == 0 else SEED_1)
        return runner

    monkeypatch.setattr(unfamiliarity, "run", fake("unfamiliarity"))
    monkeypatch.setattr(qa_experiment, "run", fake("qa-experiment"))
    monkeypatch.setattr(qa_rl, "run", fake("qa-rl"))
    monkeypatch.setattr(demo_real, "report", lambda c, wall, elapsed: ran.append(("report", c.seed)))
    summary = demo_real.run_seeds(cfg, [0, 1])
    steps = ["unfamiliarity", "qa-experiment", "qa-rl"]
    assert ran == [x for seed in (0, 1) for x in [(s, seed, f"seed-{seed}") for s in steps] + [("report", seed)]]
    assert summary["seeds"] == [0, 1] and set(summary["per_seed"]["1"]["seconds"]) == set(steps)
    random_idk_rises_less = summary["checks_by_seed"][summary["orderings"][2]["claim"]]
    assert random_idk_rises_less == {"0": True, "1": False}
    assert (RunLayout(cfg).run_dir / "qa-summary.md").is_file()


def test_seeds_run_on_the_world_only(tmp_path):
    cfg = build_config({}, [f"run.output_dir={tmp_path}", "data.dataset=triviaqa"])
    with pytest.raises(InputError, match="synthetic world only"):
        qa_seeds.run(cfg, [0], "qa-rl")


def test_cli_sends_seeded_qa_stages_to_qa_seeds_without_the_stage_preflight(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(qa_seeds, "run", lambda c, seeds, stage: calls.append((c.run.name, seeds, stage)))
    monkeypatch.setattr(cli.preflight, "check", lambda c, stage: pytest.fail("needs a world the seeds build"))
    assert cli.main(["qa-experiment", "--seeds", "2,0", f"run.output_dir={tmp_path}", "run.name=q"]) == 0
    assert cli.main(["qa-rl", "--seeds", "1", f"run.output_dir={tmp_path}", "run.name=q"]) == 0
    assert calls == [("q", [2, 0], "qa-experiment"), ("q", [1], "qa-rl")]


def test_cli_rejects_bad_or_unsupported_seeds(capsys):
    assert cli.main(["qa-rl", "--seeds", "0,0"]) == 2
    assert "a seed is repeated" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["sft", "--seeds", "0,1"])


@pytest.mark.slow
def test_qa_experiment_over_two_seeds_end_to_end(tmp_path):
    from tests.conftest import TINY

    args = TINY + [f"run.output_dir={tmp_path}", "run.name=s", "logging.wandb_mode=disabled", "sft.steps=2",
                   "sft.batch_size=4", "eval.samples_per_prompt=2", "actors.policy.num_actors=1"]
    assert cli.main(["qa-experiment", "--seeds", "0,1", *args]) == 0
    summary = json.loads((tmp_path / "s" / "qa-summary.json").read_text())
    assert summary["seeds"] == [0, 1] and len(summary["checks"]) == 5
    for seed in (0, 1):
        assert (tmp_path / "s" / f"seed-{seed}" / "qa_experiment" / "results.json").is_file()
