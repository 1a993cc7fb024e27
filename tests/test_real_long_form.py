"""The long-form real-data path end to end: every stage a `configs/llama2-7b/` header lists, in its order, on a
WikiBios-shaped fixture, with the FActScore-style checker served by a real HTTP server on 127.0.0.1 and a tiny
model (the config's model, sizes and actors overridden). Each stage must produce its outputs."""

import json
import re
import time
from pathlib import Path

import pytest

from halluray.cli import main
from halluray.config import load_config
from halluray.io import read_jsonl
from halluray.layout import RunLayout

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "llama2-7b" / "wikibios-ppo-conservative.yaml"
KEY_ENV = "HALLURAY_TEST_FACTSCORE_KEY"


def header_stages(path: Path) -> list[str]:
    """The stages a config's header says to run, in order (the line after "Stages, in order")."""
    lines = path.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("# Stages, in order"))
    return [s.strip() for s in lines[at + 1].lstrip("# ").split(",")]


def write_fixture(directory: Path, records: list[dict]) -> Path:
    """WikiBios-shaped split files (name, text); the fixture is small, so every split reads the same people."""
    for split in ("sft", "rm", "ppo", "val", "eval"):
        (directory / f"{split}.jsonl").write_text("".join(json.dumps({"name": r["topic"], "text": r["text"]}) + "\n"
                                                         for r in records))
    return directory / "{split}.jsonl"


def tiny_model(directory: Path, records: list[dict]) -> Path:
    """A 2-layer GPT-2 (random weights) whose word tokenizer knows every word of the fixture and prompts."""
    from halluray.config import build_config
    from halluray.models.build import build_gpt2, save_model
    from halluray.models.tokenizer import train_word_tokenizer

    texts = [r["text"] for r in records] + [f"Write a biography for {r['topic']}." for r in records]
    tok = train_word_tokenizer(texts + ["Response: Facts: - Fact: True False"])
    cfg = build_config({}, ["model.n_layer=2", "model.n_embd=32", "model.n_head=2", "model.n_positions=192"])
    save_model(build_gpt2(cfg.model, tok, seed=0), tok, directory / "model")
    return directory / "model"


def overrides(tmp_path: Path, model: Path, data: Path, server) -> list[str]:
    actors = [f"actors.{role}.{k}={v}" for role in ("policy", "critic", "reference", "reward", "rollout",
                                                      "reward_trainer")
              for k, v in (("num_actors", 1), ("num_cpus", 1), ("num_gpus", 0))]
    return [
        f"run.output_dir={tmp_path / 'runs'}", "run.name=wikibios",
        f"model.pretrained_path={model}", "lora.enabled=false",
        f"data.path={data}",
        f"fact_checker.base_url={server.base_url}", "fact_checker.allow_http=true",
        f"fact_checker.knowledge_path={server.knowledge_path}", f"fact_checker.api_key_env={KEY_ENV}",
        "unfamiliarity.long_form_samples=1", "unfamiliarity.max_new_tokens=12", "unfamiliarity.batch_size=8",
        "sft.steps=2", "sft.batch_size=2",
        "reward_data.samples_per_prompt=1", "reward_data.max_new_tokens=12",
        "reward_model.batch_size=2", "reward_model.epochs=1", "reward_model.decomposer_epochs=1",
        "reward_model.decomposer_max_new_tokens=12",
        "ppo.steps=1", "ppo.batch_size=2", "ppo.minibatch_size=2", "ppo.max_new_tokens=8",
        f"ppo.reward.target={tmp_path / 'runs' / 'wikibios' / 'rm-conservative'}",
        "ppo.save_every=0", "ppo.eval_every=0", "ppo.log_samples_every=0",
        *actors, "actors.threads_per_actor=1", "actors.call_timeout_s=300", "actors.collective_timeout_s=120",
        "deepspeed.zero_stage=2", "deepspeed.precision=fp32", "deepspeed.gradient_checkpointing=false",
        "logging.wandb_mode=disabled", "threads=1",
    ]


def outputs(layout: RunLayout, stage: str) -> list[Path]:
    return {"unfamiliarity": [layout.unfamiliarity_scores],
            "sft": [layout.sft_model("standard", "long_form") / "config.json"],
            "reward-data": [layout.reward_data("conservative")],
            "train-rm": [layout.rm_dir("conservative") / "rm.json"],
            "ppo": [layout.ppo_model("ppo-conservative-rm") / "config.json"],
            "eval": [layout.eval_dir / "results.json"]}[stage]


@pytest.mark.ray
def test_every_stage_of_the_llama2_header_runs_on_wikibios_with_an_http_fact_checker(
        factscore_server, tmp_path, monkeypatch, capsys):
    stages = header_stages(CONFIG)
    assert stages == ["unfamiliarity", "sft", "reward-data", "train-rm", "ppo", "eval"]
    monkeypatch.setenv(KEY_ENV, "test-key-not-secret")
    model = tiny_model(tmp_path, factscore_server.records)
    args = overrides(tmp_path, model, write_fixture(tmp_path, factscore_server.records), factscore_server)
    layout = RunLayout(load_config(CONFIG, args))
    seconds = {}
    for stage in stages:
        t0 = time.time()
        assert main([stage, "--config", str(CONFIG), *args]) == 0, capsys.readouterr().err[-2000:]
        seconds[stage] = round(time.time() - t0, 1)
        for path in outputs(layout, stage):
            assert path.is_file(), f"{stage} did not write {path}"
    out = capsys.readouterr().out
    with capsys.disabled():
        print(f"\nlong-form real-data stages (s): {seconds}\n" + "\n".join(
            line for line in out.splitlines() if line.startswith(tuple(f"{s} " for s in stages) + ("fact-checker",))))
    # The HTTP checker labeled facts: the reward data holds facts the server verified, and its cost line ran.
    labeled = read_jsonl(layout.reward_data("conservative"))
    assert any(r["facts"] for r in labeled)
    assert re.search(r"fact-checker: \d+ requests", out)
    unfamiliarity = [r for r in read_jsonl(layout.unfamiliarity_scores) if r["task"] == "long_form"]
    assert {r["name"] for r in unfamiliarity} == {r["topic"] for r in factscore_server.records}
    assert json.loads((layout.rm_dir("conservative") / "rm.json").read_text())["kind"] == "two-stage-text"
    results = json.loads((layout.eval_dir / "results.json").read_text())
    assert set(results["fraction_true_facts"]) == {"sft", "rl_conservative_rm"}
