"""Preflight: a stage's inputs, batch splits, resources and memory are checked before Ray starts, fast, writing
nothing; the memory plan's numbers are the ones worked out by hand here."""

from __future__ import annotations

import json
import struct
import time

import pytest
import torch
from transformers import AutoModelForCausalLM

from actors.roles import Role
from halluray import cli
from halluray.config import DeepSpeedConfig, LoRAConfig, build_config
from halluray.errors import InputError
from halluray.preflight import STAGES, PlanError, check
from halluray.preflight.memory import LAYER_ACTIVATIONS, LOGIT_COPIES, training_memory
from halluray.preflight.models import planned_base_model, read_model

REWARD = "tests.test_preflight:constant_reward"


def constant_reward(prompts, responses, topics):
    """The reward callable the configs below name (preflight imports it, never calls it)."""
    return [0.0 for _ in responses]


def _files(path):
    return sorted(p.relative_to(path) for p in path.rglob("*"))


@pytest.fixture
def cfg_for(tmp_path, tiny_model_dir, monkeypatch):
    """A PPO-ready config on local files: the tiny model, jsonl prompts per split, a callable reward."""
    monkeypatch.delenv("RAY_ADDRESS", raising=False)  # the resources are this machine's
    data = tmp_path / "data"
    data.mkdir()
    for split in ("sft", "rm", "ppo", "eval"):
        (data / f"{split}.jsonl").write_text(json.dumps({"name": "Ann", "text": "Ann is a cook ."}) + "\n")

    def make(*overrides: str):
        return build_config({}, [f"run.output_dir={tmp_path / 'runs'}", "run.name=t",
                                 f"model.pretrained_path={tiny_model_dir}", "data.dataset=wikibios",
                                 f"data.path={data}/{{split}}.jsonl", "ppo.reward.kind=callable",
                                 f"ppo.reward.target={REWARD}", *overrides])
    return make


def test_every_cli_stage_and_every_role_is_known(tmp_path):
    # Every command the CLI preflights has an entry in the preflight table (and the plan command reads it too).
    assert set(STAGES) == {c.name for c in cli.COMMANDS if c.preflight} | {"plan"}
    demo = check(build_config({}, [f"run.output_dir={tmp_path}", "world.num_people=24"]), "demo")
    assert {row.use.role for phase in demo.phases for row in phase.rows} == {r.value for r in Role}


def test_a_missing_base_model_fails_fast_naming_the_key_and_writes_nothing(tmp_path, monkeypatch):
    """The issue's case: `halluray ppo` with a base model that does not exist."""
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    cfg = build_config({}, [f"run.output_dir={tmp_path / 'runs'}", f"model.pretrained_path={tmp_path / 'nope'}"])
    start = time.perf_counter()
    with pytest.raises(InputError) as e:
        check(cfg, "ppo")
    assert time.perf_counter() - start < 5
    message = str(e.value)
    assert message.startswith(f"model.pretrained_path: {tmp_path / 'nope'} does not exist;")
    assert "\n" not in message
    assert _files(tmp_path) == []
    with pytest.raises(InputError, match=r"^ppo.init_model: .* does not exist"):
        check(cfg.model_copy(update={"ppo": cfg.ppo.model_copy(update={"init_model": str(tmp_path / "x")})}), "ppo")
    assert _files(tmp_path) == []


def test_a_ppo_plan_has_every_role_and_reference_goes_with_lora(cfg_for, tmp_path):
    before = _files(tmp_path)
    table = check(cfg_for(), "ppo").table()
    rows = {line.split()[0] for line in table.splitlines() if line[:1].isalpha() and "actors" not in line}
    assert {"policy", "critic", "reference", "reward", "rollout"} <= rows
    lora = check(cfg_for("lora.enabled=true"), "ppo").table()
    assert "\nreference " not in lora and "\npolicy " in lora
    assert _files(tmp_path) == before


def test_a_minibatch_that_does_not_split_over_critic_ranks_names_the_key(cfg_for):
    cfg = cfg_for("ppo.batch_size=16", "ppo.minibatch_size=16", "actors.policy.num_actors=2",
                  "actors.critic.num_actors=3")
    with pytest.raises(InputError, match=r"^ppo.minibatch_size \(16\) must split evenly over the 3 critic actors "
                                         r"x deepspeed.gradient_accumulation_steps \(1\); make it a multiple of 3"):
        check(cfg, "ppo")
    with pytest.raises(InputError, match=r"^sft.batch_size \(24\) .* 2 policy actors x .* \(5\)"):
        check(cfg_for("deepspeed.gradient_accumulation_steps=5"), "sft")


def test_more_gpus_than_the_machine_has_names_the_role(cfg_for):
    n = torch.cuda.device_count() + 1
    with pytest.raises(PlanError, match=rf"^actors.rollout.num_gpus: ppo places rollout {n} x 1 = {n} GPUs at once "
                                        rf"and this machine has {n - 1};") as e:
        check(cfg_for(f"actors.rollout.num_actors={n}", "actors.rollout.num_gpus=1"), "ppo")
    assert "[ppo]" in e.value.plan.table()  # `halluray plan` prints the plan that does not fit


def test_on_a_cluster_resources_are_not_checked_but_planned(cfg_for, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "http://head:8265")
    plan = check(cfg_for("actors.rollout.num_actors=64", "actors.rollout.num_gpus=1"), "ppo")
    assert "RAY_ADDRESS=http://head:8265 (its resources are not checked from here)" in plan.table()


def test_the_header_counts_parameters_exactly_and_the_planned_gpt2_is_what_world_builds(tiny_model_dir):
    shape = read_model(tiny_model_dir, None, "")
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert shape.params == sum(p.numel() for p in model.parameters())
    assert (shape.hidden, shape.layers, shape.context, shape.kv_dim, shape.stored_bytes) == (32, 2, 64, 32, 4)
    # conftest's tiny_model_dir: these model keys, and the tokenizer of a 60-person world
    cfg = build_config({}, ["world.num_people=60", "model.n_layer=2", "model.n_embd=32", "model.n_head=2",
                            "model.n_positions=64"])
    assert planned_base_model(cfg).tensors == shape.tensors
    # LoRA on GPT-2's fused c_attn (32 -> 96) in both layers: r x (in + out) each
    assert shape.lora_params(LoRAConfig(r=4, target_modules=["c_attn"])) == 2 * 4 * (32 + 96)
    # the critic's backbone keeps every tensor (GPT-2 ties its LM head) and adds a 32 -> 1 head
    assert shape.with_value_head().params == shape.params + 33


def test_memory_by_zero_stage_worked_out_by_hand(tiny_model_dir):
    shape = read_model(tiny_model_dir, None, "")
    p = shape.params

    def mem(ranks, on_gpu=False, **ds):
        return training_memory(shape, DeepSpeedConfig(**ds), ranks, on_gpu, micro_batch=2, seq=10)

    zero0 = mem(1, zero_stage=0)  # fp32 on CPU: 4-byte weights and grads, AdamW's two moments (8 bytes)
    assert (zero0.params, zero0.grads, zero0.optimizer) == (4 * p, 4 * p, 8 * p)
    zero3 = mem(2, zero_stage=3)
    assert zero3.params + zero3.optimizer == (zero0.params + zero0.optimizer) // 2
    zero2 = mem(2, zero_stage=2)  # ZeRO-2 keeps an fp32 master copy even in fp32, partitioned like the moments
    assert (zero2.params, zero2.grads, zero2.optimizer) == (4 * p, 2 * p, 6 * p)
    bf16 = mem(2, on_gpu=True, zero_stage=3)  # auto precision on GPU: bf16 weights/grads, fp32 master + moments
    assert (bf16.params, bf16.grads, bf16.optimizer) == (p, p, 6 * p)
    offload = mem(2, on_gpu=True, zero_stage=3, offload_optimizer=True, offload_param=True)
    assert offload.offloaded == offload.params + offload.optimizer and offload.on_device == offload.grads + (
        offload.activations)
    # activations: batch 2 x 10 tokens x (hidden 32 x 2 layers x 17 values x 4 bytes + fp32 logits and log-probs)
    assert zero0.activations == 2 * 10 * (32 * 2 * LAYER_ACTIVATIONS * 4 + LOGIT_COPIES * 4 * shape.vocab)
    checkpointed = mem(1, zero_stage=0, gradient_checkpointing=True)
    assert checkpointed.activations == 2 * 10 * (32 * (2 + LAYER_ACTIVATIONS) * 4 + LOGIT_COPIES * 4 * shape.vocab)


def _header_only_model(path, rows: int, cols: int):
    """A model directory whose safetensors header declares one rows x cols fp32 tensor (no weights follow)."""
    path.mkdir()
    header = json.dumps({"w.weight": {"dtype": "F32", "shape": [rows, cols], "data_offsets": [0, 4 * rows * cols]}})
    (path / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header.encode())
    (path / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_embd": cols, "n_layer": 1}))
    (path / "tokenizer.json").write_text("{}")
    return path


def test_a_model_larger_than_host_memory_names_the_role_and_the_fix(cfg_for, tmp_path):
    huge = _header_only_model(tmp_path / "huge", 10 ** 6, 10 ** 6)  # 10^12 parameters
    with pytest.raises(PlanError, match=r"^actors.policy: the sft actors need about .* TiB of host memory at once "
                                        r".*deepspeed.zero_stage=3.*lora.enabled=true"):
        check(cfg_for(f"model.pretrained_path={huge}"), "sft")


@pytest.mark.parametrize("overrides, stage, message", [
    (["sft.strategy=unfamiliar-idk"], "sft", r"unfamiliarity.jsonl does not exist: run `halluray unfamiliarity`"),
    ([], "train-rm", r"reward-data/conservative.jsonl does not exist: run `halluray reward-data`"),
    (["ppo.reward.kind=model", "ppo.reward.target={model}"], "ppo", r"^ppo.reward.target: .* \(no rm.json\)"),
    (["ppo.reward.target=tests.nowhere:fn"], "ppo", r"^ppo.reward.target: cannot import reward callable"),
    (["ppo.reward.kind=fact_checker", "ppo.reward.target=null"], "ppo",
     r"^fact_checker.kind is 'world', which checks the synthetic world's prompts only; for data.dataset 'wikibios'"),
    (["ppo.reward.kind=fact_checker", "ppo.reward.target=null", "fact_checker.kind=fact_table",
      "fact_checker.table_path={tmp}/no.csv"], "ppo",
     r"^fact_checker.table_path: .*no.csv is not a file"),
    (["lora.enabled=true", "lora.target_modules=[q_proj]"], "ppo", r"^lora.target_modules \['q_proj'\] match no"),
    (["data.path={tmp}/missing/{{split}}.jsonl"], "sft", r"^data.path: .*missing/sft.jsonl \(split 'sft'\) does not"),
    (["data.path={tmp}/missing/{{split}}.jsonl"], "ppo", r"^data.path: .*missing/ppo.jsonl \(split 'ppo'\) does not"),
    (["model.pretrained_path={tmp}"], "sft", r"^model.pretrained_path: .* \(no config.json\)"),
])
def test_each_stage_names_its_missing_input(cfg_for, tmp_path, tiny_model_dir, overrides, stage, message):
    with pytest.raises(InputError, match=message):
        check(cfg_for(*(o.format(tmp=tmp_path, model=tiny_model_dir) for o in overrides)), stage)


def test_a_model_without_safetensors_cannot_be_loaded(cfg_for, tmp_path):
    model = tmp_path / "bin"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(InputError, match=r"^ppo.init_model: .* has no \*.safetensors weights"):
        check(cfg_for(f"ppo.init_model={model}"), "ppo")


def test_demo_and_plan_check_only_what_no_stage_writes(tmp_path, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    cfg = build_config({}, [f"run.output_dir={tmp_path / 'runs'}", "world.num_people=24"])
    for stage in ("demo", "plan", "world"):
        check(cfg, stage)
        assert _files(tmp_path) == []
    demo = check(cfg, "demo")
    assert [p.name for p in demo.phases] == ["sft", "reward-data", "train-rm", "eval-rm", "ppo", "eval"]
    assert "model the GPT-2 `halluray world` builds from model.*" in demo.table()
    with pytest.raises(InputError, match=r"^model.pretrained_path: "):
        check(cfg.model_copy(update={"model": cfg.model.model_copy(update={"pretrained_path": str(tmp_path / "x")})}),
              "plan")
