"""Preflight: a stage's inputs, batch splits, resources and memory are checked before Ray starts, fast, writing
nothing; the memory plan's numbers are the ones worked out by hand here."""

from __future__ import annotations

import json
import shutil
import struct
import time
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from actors.roles import Role
from halluray import cli
from halluray.config import DeepSpeedConfig, LoRAConfig, build_config, load_config
from halluray.errors import InputError
from halluray.preflight import STAGES, PlanError, check
from halluray.preflight.cluster import Demand, Node, placement_problem
from halluray.preflight.memory import LAYER_ACTIVATIONS, LOGIT_COPIES, training_memory
from halluray.preflight.models import planned_base_model, read_model

REWARD = "tests.test_preflight:constant_reward"
ROOT = Path(__file__).resolve().parents[1]
LLAMA2_CONFIG = ROOT / "tests" / "data" / "llama2-7b-config.json"
"""meta-llama/Llama-2-7b-hf's config.json."""
LLAMA2_PPO = ROOT / "configs" / "llama2-7b" / "wikibios-ppo-conservative.yaml"
A100_40GB = 42_505_273_344
"""torch.cuda.get_device_properties(i).total_memory of an A100-SXM4-40GB (cluster.yaml's p4d.24xlarge has 8)."""


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


def test_on_a_cluster_not_joined_resources_are_not_checked_but_planned(cfg_for, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "http://head:8265")
    plan = check(cfg_for("actors.rollout.num_actors=64", "actors.rollout.num_gpus=1"), "ppo")
    assert "RAY_ADDRESS=http://head:8265 (not joined: its nodes are not checked)" in plan.table()


GIB = 1024**3
P4D = [Node(f"gpu{i}" * 4, f"10.0.0.{i}", 96, 8, 1100 * GIB) for i in range(1, 3)]
"""Two of cluster.yaml's GPU nodes (p4d.24xlarge: 96 CPUs, 8 GPUs), and its head, which runs no actors."""
HEAD = Node("head" * 8, "10.0.0.100", 0, 0, 20 * GIB)


def test_on_a_cluster_each_phase_is_checked_against_the_live_nodes(cfg_for, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "http://head:8265")
    cfg = cfg_for("actors.policy.num_actors=2", "actors.policy.num_gpus=1", "actors.critic.num_gpus=1",
                  "actors.placement_strategy=STRICT_SPREAD")
    plan = check(cfg, "ppo", [HEAD, *P4D])
    assert "RAY_ADDRESS=http://head:8265: 3 live nodes, 192 CPUs, 16 GPUs, 2.2 TiB memory" in plan.table()
    with pytest.raises(PlanError, match=r"^ppo on the Ray cluster at RAY_ADDRESS=http://head:8265: actors.placement_"
                                        r"strategy=STRICT_SPREAD puts each of the 2 policy actors on a node of its own "
                                        r"and 1 of the 2 live nodes can hold one \(\{CPU: 1, GPU: 1\}"):
        check(cfg, "ppo", [HEAD, P4D[0]])


def test_placement_rules_worked_out_by_hand():
    two = [Node("a" * 8, "10.0.0.1", 4, 0, 8 * GIB), Node("b" * 8, "10.0.0.2", 4, 1, 8 * GIB)]
    policy = Demand("policy", 2, 2, 0, GIB)
    assert placement_problem([policy], "STRICT_SPREAD", two) is None
    assert placement_problem([policy], "STRICT_PACK", two) is None  # 4 CPUs on one node
    assert "STRICT_PACK puts all 3 policy actors on one node ({CPU: 6}" in placement_problem(
        [Demand("policy", 3, 2, 0, GIB)], "STRICT_PACK", two)
    assert "2 of the 2 live nodes" in placement_problem([Demand("policy", 3, 1, 0)], "STRICT_SPREAD", two)
    # one GPU in the cluster: a second GPU actor fits no node's total, whatever the strategy
    assert placement_problem([Demand("rollout", 2, 1, 1)], "PACK", two).startswith(
        "the roles placed at once need 2 GPUs and the 2 live nodes have 1 (most: rollout, 2 x {CPU: 1, GPU: 1})")
    assert placement_problem([Demand("reward", 1, 8, 0)], "PACK", two).startswith(
        "no live node can hold one reward actor ({CPU: 8}); the largest offers CPU: 4, GPU: 1, 8.0 GiB of memory")
    assert "need 20.0 GiB memory and the 2 live nodes have 16.0 GiB" in placement_problem(
        [Demand("policy", 4, 1, 0, 5 * GIB)], "SPREAD", two)
    assert placement_problem([policy, Demand("critic", 2, 2, 0, GIB)], "PACK", two) is None  # 8 of 8 CPUs
    assert placement_problem([policy], "PACK", []) == "the cluster has no live node"


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
                                        r".*deepspeed.zero_stage=3") as e:
        check(cfg_for(f"model.pretrained_path={huge}"), "sft")
    assert "lora" not in str(e.value)  # SFT trains every weight whatever lora.* says: LoRA is PPO's fix only


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


@pytest.fixture
def llama2_config_only(tmp_path):
    """Llama-2-7B before it is downloaded: a directory holding its config.json only."""
    path = tmp_path / "Llama-2-7b-hf"
    path.mkdir()
    shutil.copy(LLAMA2_CONFIG, path / "config.json")
    return path


def _llama2_ppo(tmp_path, model, *overrides: str):
    """configs/llama2-7b/wikibios-ppo-conservative.yaml on `model`, its run directory under tmp_path."""
    runs = tmp_path / "runs"
    return load_config(LLAMA2_PPO, [f"run.output_dir={runs}", f"model.pretrained_path={model}",
                                    f"ppo.reward.target={runs}/llama2-7b-wikibios-ppo-conservative/rm-conservative",
                                    *overrides])


def _ppo_rows(plan):
    return {row.use.role: row for phase in plan.phases if phase.name == "ppo" for row in phase.rows}


def test_plan_sizes_llama2_7b_from_its_config_json_alone_with_a_lora_critic(tmp_path, llama2_config_only,
                                                                             monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "http://head:8265")  # the config's actors are a GPU node's, not this machine's
    plan = check(_llama2_ppo(tmp_path, llama2_config_only), "plan")
    table = plan.table()
    assert (f"model {llama2_config_only} (config.json only, no weights yet): 6,738,415,616 parameters, 2 bytes each "
            f"as saved") in table
    assert "data.path: /mnt/data/wikibios/ppo.jsonl (split 'ppo') does not exist here" in table  # a note, not an error
    ppo = _ppo_rows(plan)
    assert set(ppo) == {"policy", "critic", "reward", "rollout"}  # LoRA: the policy without adapters is the reference
    # r 16 on q, k, v and o (4096 -> 4096) in 32 layers; the value head is 4096 -> 1 with a bias
    adapters, head = 32 * 4 * 16 * (4096 + 4096), 4096 + 1
    policy, critic = ppo["policy"], ppo["critic"]
    assert policy.use.adapters == critic.use.adapters == adapters
    # ZeRO-3 over 2 ranks in bf16: gradients (2 bytes) and AdamW (12 bytes) of what trains, halved
    assert (policy.memory.grads, policy.memory.optimizer) == (adapters, 6 * adapters)
    assert (critic.memory.grads, critic.memory.optimizer) == (adapters + head, 6 * (adapters + head))
    assert critic.memory.params == 6_607_347_713 + adapters  # the frozen backbone (no LM head) + value head + adapters
    assert "\ncritic                2      8      1     3     6.2 GiB    16.0 MiB    96.0 MiB" in table
    # Each PPO actor fits an A100-40GB; a whole critic (ppo.lora_critic=false) would not.
    assert max(row.memory.on_device for row in ppo.values()) < A100_40GB / 2
    whole = check(_llama2_ppo(tmp_path, llama2_config_only, "ppo.lora_critic=false"), "plan")
    critic = _ppo_rows(whole)["critic"]
    assert critic.use.adapters == 0 and critic.memory.on_device > A100_40GB


@pytest.mark.parametrize("estimator, k", [("grpo", 4), ("rloo", 2), ("reinforce_pp", 1)])
def test_a_critic_free_estimator_places_no_critic(cfg_for, estimator, k):
    plan = check(cfg_for(f"ppo.advantage_estimator={estimator}", f"ppo.samples_per_prompt={k}", "ppo.batch_size=16",
                         f"ppo.minibatch_size={16 * k}"), "ppo")
    rows = _ppo_rows(plan)
    assert set(rows) == {"policy", "reference", "reward", "rollout"}
    assert "\ncritic " not in plan.table()
    # every prompt's k responses are generated, scored and referenced in the step's calls
    assert rows["rollout"].use.batch == rows["reward"].use.batch == rows["reference"].use.batch == 16 * k


def test_a_stage_that_runs_refuses_a_model_without_weights_that_plan_sizes_exactly(cfg_for, tmp_path, tiny_model_dir):
    model = tmp_path / "config-only"
    model.mkdir()
    shutil.copy(tiny_model_dir / "config.json", model / "config.json")
    with pytest.raises(InputError, match=r"^ppo.init_model: .* has no \*.safetensors weights") as e:
        check(cfg_for(f"ppo.init_model={model}"), "ppo")
    assert "\n" not in str(e.value)
    check(cfg_for(f"ppo.init_model={model}"), "plan")
    # the meta-device model has the safetensors header's tensors: names, shapes, tied weights
    weights = read_model(tiny_model_dir, None, "")
    config_only = read_model(model, None, "", weights=False)
    assert (config_only.tensors, config_only.stored_bytes) == (weights.tensors, weights.stored_bytes)
    (model / "config.json").write_text(json.dumps({"model_type": "no-such-architecture"}))
    with pytest.raises(InputError, match=r"^ppo.init_model: .* transformers cannot build a causal LM from its "
                                         r"config.json \(Unrecognized model identifier: no-such-architecture\), "
                                         r"so its shapes need its \*.safetensors weights \(their headers\); add"):
        check(cfg_for(f"ppo.init_model={model}"), "plan")


def test_a_llama2_stage_without_its_weights_fails_in_one_line_before_anything_starts(tmp_path, llama2_config_only,
                                                                                      capsys):
    overrides = [f"run.output_dir={tmp_path / 'runs'}", f"model.pretrained_path={llama2_config_only}"]
    assert cli.main(["sft", "--config", str(LLAMA2_PPO), *overrides]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"halluray sft: model.pretrained_path: {llama2_config_only} has no *.safetensors weights")
    assert "\n" not in err
    assert not (tmp_path / "runs").exists()


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
