"""`make bench`'s pure parts on hand-made results: the configs it builds, its medians and ratios, the JSON it
writes and the tables it prints (the timings themselves are never tested)."""

from __future__ import annotations

import json

import pytest

from halluray.bench import ppo_step, zero3
from halluray.bench.bare import PHASES, step_row
from halluray.config import build_config


def _steps(generate: float, train: float, tokens: int, n: int = 3) -> list[dict]:
    # The first step is the warm-up: ten times slower, so a summary that kept it would show.
    return [{"generate": generate * (10 if i == 0 else 1), "score": 0.5, "train": train, "sync": 0.1,
             "wall": generate + 0.6 + train, "tokens": tokens} for i in range(n)]


@pytest.fixture
def size_result(tmp_path):
    size = ppo_step.sizes()["tiny"]
    cfg = build_config({}, ppo_step.overrides(size, tmp_path))
    bare = {"steps": _steps(1.0, 2.0, 100), "parameters": 900, "trainable_parameters": 900, "peak_rss_bytes": 2**30}
    peaks = [{"role": "policy", "rank": rank, "peak_rss_bytes": 2**29} for rank in (0, 1)]
    ours = {mode: {"steps": _steps(g, 2.0, 100), "peak_rss": peaks}
            for mode, g in (("separate", 2.0), ("one-step-off", 0.0), ("colocated", 4.0))}
    # GRPO: bare 1 + 0.6 + 1 = 2.6 s a step, ours 1 + 0.6 + 1.5 = 3.1 s; no critic among our actors.
    rows = {"grpo": {"mode": "one-step-off", "bare": {**bare, "steps": _steps(1.0, 1.0, 100)},
                     "ours": {"steps": _steps(1.0, 1.5, 100), "peak_rss": peaks}}}
    return ppo_step.summarise(size, cfg, bare, ours, {"world": 1.0}, rows)


def test_every_size_builds_a_valid_config_with_one_warmup_step_its_mode_and_fresh_actors(tmp_path):
    for size in ppo_step.sizes("some/model").values():
        for mode in ppo_step.MODES:
            cfg = build_config({}, ppo_step.overrides(size, tmp_path, mode))
            assert cfg.ppo.steps == size.steps + 1 and cfg.actors.rollout_mode == mode
            assert not cfg.actors.reuse_actors  # each mode's peak memory is its own
    real = build_config({}, ppo_step.overrides(ppo_step.sizes("some/model")["135m"], tmp_path))
    assert real.lora.enabled and real.ppo.init_model.endswith("some/model")


def test_estimator_rows_keep_the_responses_per_step_and_lora_adds_the_full_critic_row(tmp_path):
    for name, size in ppo_step.sizes("some/model").items():
        cfg = build_config({}, ppo_step.overrides(size, tmp_path))
        rows = ppo_step.variants(cfg)
        assert set(rows) == {"grpo", "rloo", "reinforce_pp"} | ({"gae, full critic"} if name == "135m" else set())
        for label, variant in rows.items():
            row = build_config({}, ppo_step.overrides(size, tmp_path, "colocated", variant))
            assert row.ppo.responses_per_step == cfg.ppo.responses_per_step
            assert row.ppo.critic_free == (label != "gae, full critic")
        if name == "135m":
            assert cfg.ppo.lora_critic and not build_config(
                {}, ppo_step.overrides(size, tmp_path, variant=rows["gae, full critic"])).ppo.lora_critic


def test_step_row_counts_response_tokens_of_the_batch():
    metrics = {**{f"time/{p}": 1.0 for p in PHASES}, "response_length": 2.5}
    assert step_row(metrics, 4.2, 8) == {"generate": 1.0, "score": 1.0, "train": 1.0, "sync": 1.0, "wall": 4.2,
                                         "tokens": 20}


def test_summary_leaves_out_the_warmup_and_one_step_off_has_no_tokens_per_s():
    s = ppo_step.summary(_steps(2.0, 3.0, 50))
    assert s["phases"]["generate"] == 2.0 and s["total"] == pytest.approx(5.6)
    assert s["tokens_per_s"] == pytest.approx(25.0)
    assert ppo_step.summary(_steps(2.0, 3.0, 50), overlapped=True)["tokens_per_s"] is None


def test_ratios_are_of_wall_times_and_the_fastest_mode_is_named(size_result):
    modes = size_result["modes"]
    assert modes["separate"]["ratio"] == pytest.approx(4.6 / 3.6)
    assert modes["colocated"]["tokens_per_s_ratio"] == pytest.approx(0.25)
    assert modes["one-step-off"]["tokens_per_s_ratio"] is None
    assert size_result["fastest_mode"] == "one-step-off"
    grpo = size_result["estimators"]["grpo"]
    assert grpo["ours"]["ratio"] == pytest.approx(3.1 / 2.6) and grpo["mode"] == "one-step-off"


def test_report_reads_back_from_json_with_every_mode_and_memory(size_result):
    result = json.loads(json.dumps({"sizes": {"tiny": size_result}}))
    text = ppo_step.report(result)
    for expected in ("seconds", "bare", "separate", "one-step-off", "colocated", "wall / bare", "rollout tok/s",
                     "fastest mode: one-step-off", "policy 512 512 (sum 1.0 GiB)", "peak RSS (MiB): bare 1024"):
        assert expected in text
    assert "1.28" in text  # separate's wall ratio
    grpo_line = next(line for line in text.splitlines() if line.strip().startswith("grpo"))
    assert grpo_line.split() == ["grpo", "one-step-off", "2.60", "3.10", "1.19", "-", "-", "1.0"]
    assert text.count("\n  generate ") == 1
    grpo = size_result["estimators"]["grpo"]
    assert grpo["ours"]["tokens_per_s_ratio"] is None  # one-step-off: its generate phase is only a wait


def test_zero3_report_and_verdict_on_hand_made_bytes():
    def rank(params, master, states):
        return {"params": params, "master": master, "optimizer_states": states, "total": params + master + states}

    stages = {0: {"ranks": [rank(200, 400, 800)] * 2, "peak_rss_bytes": [2**31, None]},
              3: {"ranks": [rank(100, 200, 400), rank(100, 200, 401)], "peak_rss_bytes": [2**30, 2**30]}}
    worst3 = 701
    r = {"ranks": 2, "stages": stages, "ratio": worst3 / 1400, "limit": zero3.LIMIT, "passed": True,
         "seconds": {"ZeRO-0": 1.0, "ZeRO-3": 2.0}}
    text = zero3.report(json.loads(json.dumps(r)))
    assert "ZeRO-3 / ZeRO-0 total = 0.501 (limit 0.60): pass" in text
    assert "2048 ?" in text and "1024 1024" in text
