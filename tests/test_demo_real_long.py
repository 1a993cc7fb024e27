"""`make demo-real-long` in small: the demo campaign on a real model and an entity table (`halluray demo --config
configs/real/demo-real-long.yaml`) — no world step, the standard RM's data from the base model reading each
entity's reference text, both text RMs trained with LoRA, and the same results.json as the world's demo plus what
the base model knows. A made-up user table and a tiny random GPT-2 stand in for the countries and SmolLM2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors import safe_open

from halluray.campaigns.shared.demo_steps import demo_steps
from halluray.cli import main
from halluray.config import load_config
from halluray.data import reader_prompts
from halluray.io import read_jsonl
from halluray.layout import RunLayout
from halluray.pipeline.shared.steps import fingerprint
from tests.entity_fixtures import made_up_table, tiny_entity_model

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "real" / "demo-real-long.yaml"
NAMES = ("Zorland", "Belmark", "Kanistan", "Drivia", "Mupor", "Fesland", "Lorway", "Tavia", "Orvia", "Quenland",
         "Saltia", "Umbria", "Vexland", "Wenor", "Yarrow", "Ilvania", "Hestia", "Gondra", "Caldor", "Pelmark")


def overrides(tmp_path: Path, table: Path, model: Path) -> list[str]:
    actors = [f"actors.{role}.{k}={v}" for role in ("policy", "reference", "reward", "rollout", "reward_trainer")
              for k, v in (("num_actors", 1), ("num_cpus", 1), ("num_gpus", 0))]
    return [f"run.output_dir={tmp_path / 'runs'}", "run.name=long", f"model.pretrained_path={model}",
            "model.chat_template=false", "lora.target_modules=[c_attn]",
            f"data.path={table}", f"fact_checker.options={{path: {table}}}",
            "unfamiliarity.long_form_samples=1", "unfamiliarity.max_new_tokens=12",
            "sft.steps=2", "sft.batch_size=2",
            "reward_data.samples_per_prompt=4", "reward_data.max_new_tokens=24",
            "reward_model.batch_size=2", "reward_model.epochs=1", "reward_model.decomposer_epochs=1",
            "reward_model.decomposer_max_new_tokens=12", "reward_model.max_length=128",
            "ppo.steps=1", "ppo.batch_size=2", "ppo.samples_per_prompt=2", "ppo.minibatch_size=4",
            "ppo.ppo_epochs=1", "ppo.max_new_tokens=8", "ppo.eval_every=0", "ppo.log_samples_every=0",
            "eval.samples_per_prompt=1", *actors, "actors.threads_per_actor=1", "actors.rollout_mode=separate",
            "deepspeed.precision=fp32", "logging.wandb_mode=disabled", "threads=1"]


def test_the_demo_on_real_data_has_no_world_step_and_every_step_depends_on_model_data_and_checker():
    cfg = load_config(CONFIG)
    steps = demo_steps(cfg)
    assert [s.name for s in steps][:2] == ["unfamiliarity", "sft"]
    assert "world" not in {s.name for s in steps} | {i for s in steps for i in s.inputs}
    other = load_config(CONFIG, ["data.path=other.jsonl"])
    for step, moved in zip(steps, demo_steps(other)):
        assert fingerprint(step, {}) != fingerprint(moved, {}), step.name
    world = demo_steps(load_config(ROOT / "configs" / "demo" / "demo.yaml"))
    assert [s.name for s in world][:3] == ["world", "unfamiliarity", "sft"]


def test_the_reader_source_is_asked_the_same_question_after_the_entitys_reference_text(tmp_path):
    table = made_up_table(tmp_path / "made_up.jsonl", NAMES)
    cfg = load_config(CONFIG, [f"data.path={table}", "model.chat_template=false"])
    from halluray.data import prompts_for

    records = list(prompts_for(cfg, "rm"))
    asked = reader_prompts(cfg, "rm")
    assert len(asked) == len(records) > 0
    for record, prompt in zip(records, asked):
        assert prompt == f"Notes on {record['topic']}: {record['target']}\n\n{record['prompt']}"


@pytest.mark.parametrize("head", ["lm", "value"])
def test_a_lora_reward_model_trains_only_adapters_and_head_and_exports_plain_weights(tmp_path, head):
    import torch

    from actors.base import EngineSpec
    from actors.reward_trainer import RewardTrainerActor
    from halluray.config import DeepSpeedConfig, LoRAConfig, OptimizerConfig

    model_path = tiny_entity_model(tmp_path, made_up_table(tmp_path / "made_up.jsonl", NAMES))
    spec = EngineSpec(model_path=str(model_path), ds=DeepSpeedConfig(), optim=OptimizerConfig(), total_steps=1,
                      micro_batch_size=1, head=head, lora=LoRAConfig(enabled=True, target_modules=["c_attn"]))
    model = RewardTrainerActor._build_model(None, spec)  # the model a rank builds; no actor needed
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n or n.startswith("value_head") for n in trainable)
    for name, p in model.named_parameters():  # adapters that change the output, as after training
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.5)
    ids = torch.tensor([[3, 4, 5, 6]])
    before = model(ids)
    merged = model.merge_and_unload()
    assert not any("lora_" in n for n, _ in merged.named_parameters())
    after = merged(ids)
    out = (lambda o: o.logits) if head == "lm" else (lambda o: o)
    assert torch.allclose(out(before), out(after), atol=1e-4)


@pytest.mark.ray
def test_demo_real_long_writes_the_demos_results_with_a_reader_standard_source_and_lora_rms(ray_cluster, tmp_path,
                                                                                         capsys):
    table = made_up_table(tmp_path / "made_up.jsonl", NAMES)
    args = overrides(tmp_path, table, tiny_entity_model(tmp_path, table))
    assert main(["demo", "--config", str(CONFIG), *args]) == 0, capsys.readouterr().err[-3000:]
    cfg = load_config(CONFIG, args)
    layout = RunLayout(cfg)
    results = json.loads(layout.results.read_text())
    for key in ("fraction_true_facts", "fraction_true_per_response", "true_facts_by_unfamiliarity",
                "false_facts_by_unfamiliarity", "malformed_rate", "no_fact_rate_by_unfamiliarity"):
        assert set(results[key]) == {"sft", "rl_standard_rm", "rl_conservative_rm"}, key
    assert set(results["rm_overestimation_by_unfamiliarity"]) == {"standard", "conservative"}
    assert results["base_model"]["n"] == len(list(read_jsonl(layout.unfamiliarity_scores)))
    report = layout.report.read_text()
    assert "## What the base model knows" in report and "synthetic world" not in report
    # The standard RM's responses were sampled from the base model on the reader's prompts, for every RM entity.
    standard = read_jsonl(layout.reward_data("standard"))
    assert len(standard) == len(reader_prompts(cfg, "rm")) * cfg.reward_data.samples_per_prompt
    assert json.loads(layout.reward_data("standard").with_suffix(".summary.json").read_text())["source"] == \
        "standard"
    # Both RMs were trained with LoRA and exported merged: plain weights that load as the backbone's.
    for source in ("conservative", "standard"):
        rm = layout.rm_dir(source)
        assert json.loads((rm / "rm.json").read_text())["kind"] == "two-stage-text"
        for part in ("decomposer", "verifier"):
            with safe_open(str(rm / part / "model.safetensors"), "pt") as f:
                names = list(f.keys())
            assert names and not any("lora_" in n for n in names), (source, part)
    assert "RL + conservative RM" in capsys.readouterr().out


CHECKS = ("Fig. 5: the standard RM over-estimates the most unfamiliar tercile more than the conservative",
          "Fig. 6: per-response fraction true RL+conservative > RL+standard and > SFT",
          "Fig. 7: RL+conservative keeps >= 0.9 x SFT's true facts on the most familiar tercile",
          "RL+conservative malformed rate <= 5%")


def checks(results: dict) -> dict[str, bool]:
    """The issue's must-shows on one run's results.json (the eval countries), named as in CHECKS."""
    per, over = results["fraction_true_per_response"], results["rm_overestimation_by_unfamiliarity"]
    true = results["true_facts_by_unfamiliarity"]
    return dict(zip(CHECKS, (
        over["standard"][-1] > over["conservative"][-1],
        per["rl_conservative_rm"] > max(per["rl_standard_rm"], per["sft"]),
        true["rl_conservative_rm"][0] >= 0.9 * true["sft"][0],
        results["malformed_rate"]["rl_conservative_rm"] <= 0.05)))


def test_the_must_show_checks_read_the_results_as_the_issue_states_them():
    results = {"fraction_true_per_response": {"sft": 0.2, "rl_standard_rm": 0.18, "rl_conservative_rm": 0.22},
               "rm_overestimation_by_unfamiliarity": {"standard": [0.0, 5.0, 16.0], "conservative": [0.1, 0.2, 4.0]},
               "true_facts_by_unfamiliarity": {"sft": [1.12, 1.0, 1.3], "rl_conservative_rm": [0.88, 0.7, 0.5]},
               "malformed_rate": {"rl_conservative_rm": 0.0}}
    assert list(checks(results).values()) == [True, True, False, True]  # 0.88 < 0.9 x 1.12


@pytest.fixture(scope="module")
def full_run(ray_cluster, tmp_path_factory) -> dict:
    """`make demo-real-long` (about 45 minutes on 2 cores; needs the real extra and the imported model)."""
    cfg = load_config(CONFIG)
    if not Path(cfg.model.pretrained_path).is_dir():
        pytest.skip(f"{cfg.model.pretrained_path} not imported (make demo-real-long imports it)")
    out = tmp_path_factory.mktemp("real-long")
    assert main(["demo", "--config", str(CONFIG), f"run.output_dir={out}", "logging.wandb_mode=disabled"]) == 0
    return json.loads((out / "demo-real-long" / "results.json").read_text())


SAYS_LESS = pytest.mark.xfail(strict=True, reason=(
    "measured 2026-12-04 (README, 'What make demo-real-long produces'): RL + conservative RM states 2.20 true claims "
    "per reply on the most familiar tercile against SFT's 3.45 (0.64x): its facts are fewer everywhere, false ones "
    "most (3.12 vs 5.28)"))


@pytest.mark.slow
@pytest.mark.parametrize("check", [c if not c.startswith("Fig. 7") else pytest.param(c, marks=SAYS_LESS)
                                   for c in CHECKS])
def test_the_papers_long_form_result_on_the_real_model(full_run, check):
    assert checks(full_run)[check]
