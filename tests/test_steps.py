"""The one caching rule: a step reruns exactly when its config sections or an input step changed, and every
campaign (the sweep, a seeds run) and qa-rl's SFT models reuse through it."""

import json

from halluray.campaigns import sweep
from halluray.campaigns.shared.demo_steps import SOURCES, demo_steps
from halluray.config import build_config
from halluray.experiments.shared import sft_arms
from halluray.io import atomic_write_json
from halluray.layout import RunLayout
from halluray.pipeline.shared.steps import Step, fingerprint, run_step, run_steps


def _cfg(tmp_path, *overrides):
    return build_config({}, [f"run.output_dir={tmp_path}", "run.name=r", *overrides])


def _demo_fingerprints(cfg) -> dict[str, str]:
    known: dict[str, str] = {}
    for step in demo_steps(cfg):
        known[step.name] = fingerprint(step, known)
    return known


def _counting(ran: list, name: str):
    return lambda cfg: ran.append(name)


def test_a_step_reruns_when_its_section_or_an_input_changed_and_not_otherwise(tmp_path):
    ran: list[str] = []

    def steps(cfg):
        return [Step("a", _counting(ran, "a"), cfg, ("world",)),
                Step("b", _counting(ran, "b"), cfg, ("sft",), ("a",)),
                Step("c", _counting(ran, "c"), cfg, ("ppo",))]

    cfg = _cfg(tmp_path)
    wall = run_steps(cfg, steps(cfg), "t")
    assert ran == ["a", "b", "c"] and set(wall) == {"a", "b", "c", "total"}
    ran.clear()
    run_steps(cfg, steps(cfg), "t")
    assert ran == []  # nothing changed
    run_steps(cfg, steps(_cfg(tmp_path, "sft.steps=3")), "t")
    assert ran == ["b"]  # its own section
    ran.clear()
    run_steps(cfg, steps(_cfg(tmp_path, "sft.steps=3", "world.num_people=50")), "t")
    assert ran == ["a", "b"]  # b's input changed; c depends on neither
    ran.clear()
    # An input stamped by an enclosing campaign counts too: b alone reruns when a's stamp changes.
    atomic_write_json(RunLayout(cfg).stamp("a"), {"fingerprint": "other", "seconds": 1.0})
    assert run_step(cfg, Step("b", _counting(ran, "b"), _cfg(tmp_path, "sft.steps=3", "world.num_people=50"),
                              ("sft",), ("a",)), "t") is False
    assert ran == ["b"]


def test_sweep_points_already_run_with_the_same_config_are_reused(tmp_path, monkeypatch):
    ran = []

    def fake_point(label, cfg):
        ran.append(label)
        results = {"fraction_true_facts": {"rl_standard_rm": 0.2, "rl_conservative_rm": 0.6},
                   "mean_reward": {"rl_standard_rm": -1.0, "rl_conservative_rm": 1.0},
                   "mean_false_facts": {"rl_standard_rm": 2.0},
                   "rm_overestimation_by_unfamiliarity": {"standard": [0.1, 0.2, 0.3]}}
        atomic_write_json(RunLayout(cfg).sweep_dir / f"{label}.json", results)

    monkeypatch.setattr(sweep, "run_point", fake_point)
    cfg = _cfg(tmp_path)
    sweep.run(cfg, [0.5])
    assert ran == ["config", "0.5"]
    sweep.run(cfg, [0.5, 0.9])
    assert ran == ["config", "0.5", "0.9"]  # only the new point ran
    sweep.run(_cfg(tmp_path, "ppo.steps=7"), [0.5])
    assert ran[3:] == ["config", "0.5"]  # a changed config reruns every point
    assert json.loads((RunLayout(cfg).sweep_dir / "sweep.json").read_text())["largest_gap"] == "0.5"


def test_qa_rl_reuses_the_sft_models_qa_experiment_trained_with_the_same_settings(tmp_path, monkeypatch):
    trained = []

    def fake_sft(cfg):
        trained.append(cfg.sft.strategy)
        out = RunLayout(cfg).sft_dir()
        atomic_write_json(out / "summary.json", {"strategy": cfg.sft.strategy, "examples": 4, "relabeled": 1,
                                                 "seconds": 2.0})

    monkeypatch.setattr(sft_arms.sft, "run", fake_sft)
    cfg = _cfg(tmp_path)
    arms = list(sft_arms.sft_arms(cfg, ("standard", "unfamiliar-idk"), "short_qa", "qa-experiment"))
    assert trained == ["standard", "unfamiliar-idk"] and arms[1][2]["relabeled"] == 1
    summary, model, reused = sft_arms.train_arm(cfg, "unfamiliar-idk", "short_qa", "qa-rl")
    assert reused and trained == ["standard", "unfamiliar-idk"]
    assert model == RunLayout(cfg).sft_model("unfamiliar-idk", "short_qa") and summary["examples"] == 4
    _, _, reused = sft_arms.train_arm(_cfg(tmp_path, "sft.steps=5"), "unfamiliar-idk", "short_qa", "qa-rl")
    assert not reused and trained[-1] == "unfamiliar-idk"


def test_the_demo_retrains_sft_for_a_new_lora_shape_only_when_sft_uses_lora(tmp_path):
    def sft_fingerprint(*overrides):
        return _demo_fingerprints(_cfg(tmp_path, *overrides))["sft"]

    assert sft_fingerprint("lora.r=8") == sft_fingerprint("lora.r=16")
    assert sft_fingerprint("sft.lora=true", "lora.r=8") != sft_fingerprint("sft.lora=true", "lora.r=16")


def test_a_run_directory_moved_elsewhere_keeps_its_ppo_steps_up_to_date(tmp_path):
    here = _demo_fingerprints(_cfg(tmp_path / "a"))
    there = _demo_fingerprints(_cfg(tmp_path / "b"))
    new_rm = _demo_fingerprints(_cfg(tmp_path / "a", "reward_model.epochs=7"))
    for name in (RunLayout.ppo_name_with_rm(source) for source in SOURCES):
        assert here[name] == there[name]
        assert new_rm[name] != here[name]  # the RM still counts, through the train-rm step PPO reads
