"""Each role's remote API on a real local Ray cluster, plus the pure helpers behind the actor groups."""

from __future__ import annotations

import math
import os

import psutil
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from actors.engine import deepspeed_config
from halluray.config import DeepSpeedConfig, OptimizerConfig, RoleResources, build_config
from halluray.errors import InputError
from halluray.models.forward import token_logprobs
from halluray.models.generation import SamplingParams

ray = pytest.importorskip("ray")

from actors.base import EngineSpec  # noqa: E402
from actors.critic import CriticActor  # noqa: E402
from actors.group import ActorFailure, ActorGroup, shard  # noqa: E402
from actors.policy import PolicyActor  # noqa: E402
from actors.reference import ReferenceActor  # noqa: E402
from actors.reward import RewardActor, RewardSpec  # noqa: E402
from actors.roles import Role  # noqa: E402
from actors.rollout import RolloutActor  # noqa: E402

ONE = RoleResources(num_actors=1)


def test_shard_splits_dicts_tensors_and_lists_contiguously():
    parts = shard({"x": torch.arange(5), "names": ["a", "b", "c", "d", "e"]}, 2)
    assert [p["x"].tolist() for p in parts] == [[0, 1, 2], [3, 4]]
    assert [p["names"] for p in parts] == [["a", "b"], ["c", "d", "e"]]  # lists round their bounds
    with pytest.raises(TypeError):
        shard(3, 2)


def test_deepspeed_config_merges_the_run_settings():
    cfg = deepspeed_config(DeepSpeedConfig(zero_stage=3, gradient_accumulation_steps=2, offload_param=True,
                                           offload_optimizer=True), micro_batch_size=4, world_size=2, on_gpu=False)
    assert cfg["zero_optimization"]["stage"] == 3
    assert cfg["train_batch_size"] == 16 and cfg["gradient_accumulation_steps"] == 2
    assert cfg["bf16"] == {"enabled": False}  # auto: fp32 on CPU
    assert cfg["zero_optimization"]["offload_param"]["device"] == "cpu"
    assert deepspeed_config(DeepSpeedConfig(), 1, 1, on_gpu=True)["bf16"] == {"enabled": True}


def test_rollout_generates_with_masks_marking_the_response(ray_cluster, tiny_model_dir):
    group = ActorGroup(RolloutActor, "rollout", ONE)
    try:
        group.run("init_model", str(tiny_model_dir))
        prompts = ["Write a biography for Zapur .", "I do not know ."]
        out = group.run("generate", prompts, SamplingParams(max_new_tokens=6), 0)[0]
        again = group.run("generate", prompts, SamplingParams(max_new_tokens=6), 0)[0]
    finally:
        group.shutdown()
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert torch.equal(out["input_ids"], again["input_ids"])  # seeded
    prompt_len = tok(prompts, padding=True, return_tensors="pt")["input_ids"].shape[1]
    assert out["input_ids"].shape[1] <= prompt_len + 6
    # action_mask[t] marks token t+1 as a response token: exactly the generated, non-padding tokens.
    response_tokens = out["action_mask"][:, prompt_len - 1:]
    assert torch.equal(response_tokens, out["attention_mask"][:, prompt_len:])
    assert out["action_mask"][:, :prompt_len - 1].sum() == 0
    assert [len(r.split()) for r in out["responses"]] == [int(n) for n in response_tokens.sum(1)]


def test_reference_gives_the_frozen_models_logprobs(ray_cluster, tiny_model_dir):
    ids = torch.tensor([[0, 5, 6, 7], [8, 9, 10, 11]])
    batch = {"input_ids": ids, "attention_mask": (ids != 0).long()}
    group = ActorGroup(ReferenceActor, "reference", ONE)
    try:
        group.run("init_model", str(tiny_model_dir))
        remote = group.run("logprobs", batch)[0]
    finally:
        group.shutdown()
    with torch.no_grad():
        local = token_logprobs(AutoModelForCausalLM.from_pretrained(tiny_model_dir), ids, batch["attention_mask"])
    torch.testing.assert_close(remote, local)


def test_critic_values_and_clipped_value_step(ray_cluster, tiny_model_dir):
    ids = torch.randint(3, 50, (4, 8), generator=torch.Generator().manual_seed(0))
    mask = torch.ones(4, 7)
    spec = EngineSpec(model_path=str(tiny_model_dir), ds=DeepSpeedConfig(zero_stage=2),
                      optim=OptimizerConfig(lr=1e-2), total_steps=20, micro_batch_size=2)
    group = ActorGroup(CriticActor, "critic", RoleResources(num_actors=2))
    try:
        group.gather(group.init_engines(spec))
        batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "action_mask": mask}
        values = torch.cat(group.run_sharded("values", batch))
        assert values.shape == (4, 7)
        returns = torch.full((4, 7), 1.5)
        losses = []
        for _ in range(15):
            old = torch.cat(group.run_sharded("values", batch))
            stats = group.run_sharded("value_step", {**batch, "old_values": old, "returns": returns}, 0.5)
            losses.append(sum(s["loss"] for s in stats) / 2)
        final = torch.cat(group.run_sharded("values", batch))
    finally:
        group.shutdown()
    assert losses[-1] < 0.1 * losses[0]
    assert (final - 1.5).abs().mean() < (values - 1.5).abs().mean()


def nan_reward(prompts, responses, topics):
    return [math.nan for _ in responses]


def test_reward_actor_fact_checker_callable_and_nan(ray_cluster, tmp_path, world):
    (tmp_path / "world.json").write_text(world.to_json())
    p = world.people[0]
    facts = p.facts
    right = f"{p.name} was born in {facts['birth_year']} . {p.name} works as a {facts['occupation']} ."
    wrong_city = next(c for c in ("Lyon", "Oslo") if c != facts["birth_city"])
    mixed = f"{p.name} was born in {facts['birth_year']} . {p.name} comes from {wrong_city} ."
    group = ActorGroup(RewardActor, "reward", ONE)
    try:
        group.run("init_reward", RewardSpec("fact_checker", str(tmp_path / "world.json")))
        scores = group.run("score", ["q"] * 3, [right, mixed, ""], [p.name] * 3)[0]
        assert scores == [4.0, -1.0, 0.0]  # 2 true; 1 true + 1 false; nothing stated
        group.run("init_reward", RewardSpec("callable", "tests.test_roles:nan_reward"))
        with pytest.raises(ActorFailure, match=r"reward rank 0 failed: .*returned nan for response 0 \(topic"):
            group.run("score", ["q"], ["x"], [p.name])
        with pytest.raises(ActorFailure, match="cannot import reward callable 'tests.nope:f'"):
            group.run("init_reward", RewardSpec("callable", "tests.nope:f"))
    finally:
        group.shutdown()


def test_bf16_gradient_checkpointing_and_accumulation_train(ray_cluster, tiny_model_dir):
    """The DeepSpeed options that run on CPU: bf16, gradient checkpointing, gradient accumulation."""
    ids = torch.randint(3, 50, (4, 8), generator=torch.Generator().manual_seed(1))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "loss_mask": torch.ones(4, 7)}
    ds = DeepSpeedConfig(zero_stage=2, precision="bf16", gradient_checkpointing=True, gradient_accumulation_steps=2)
    group = ActorGroup(PolicyActor, "policy", ONE)
    try:
        group.gather(group.init_engines(EngineSpec(model_path=str(tiny_model_dir), ds=ds,
                                                   optim=OptimizerConfig(lr=1e-2), total_steps=10, micro_batch_size=2)))
        losses = [group.run("sft_step", batch)[0]["loss"] for _ in range(6)]
    finally:
        group.shutdown()
    assert losses[-1] < losses[0]


def test_every_role_is_built_from_its_config_section():
    cfg = build_config({}, ["actors.reward_trainer.num_actors=3"])
    for role in Role:
        assert getattr(cfg.actors, role.value).num_actors >= 1  # a config section per role
    assert Role("reward_trainer").actor_class.__name__ == "RewardTrainerActor"


def test_a_batch_that_does_not_split_over_the_ranks_fails_before_any_actor_is_placed():
    cfg = build_config({}, ["actors.policy.num_actors=2", "deepspeed.gradient_accumulation_steps=2"])
    with pytest.raises(InputError, match=r"sft.batch_size \(6\) must split evenly over the 2 policy actors "
                                         r"x deepspeed.gradient_accumulation_steps \(2\)"):
        ActorGroup.from_config(Role.POLICY, cfg, batch_size=6, batch_key="sft.batch_size")


def test_the_local_cluster_listens_on_loopback_only(ray_cluster):
    node = ray._private.worker._global_node
    assert node.gcs_address.startswith("127.0.0.1:")
    listening = [c.laddr.ip for p in psutil.process_iter(["name", "cmdline"])
                 if p.info["name"] in ("gcs_server", "raylet")
                 and node.session_name in " ".join(p.info["cmdline"] or [])
                 for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
    assert listening and all(ip in ("127.0.0.1", "::ffff:127.0.0.1") for ip in listening), listening


def _listening(pid: int) -> list[str]:
    return [c.laddr.ip for c in psutil.Process(pid).net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]


def test_training_and_sync_groups_listen_on_loopback_only(ray_cluster, tiny_model_dir):
    """The role group's and the weight-sync group's TCPStore and gloo sockets bind the node's Ray address
    (127.0.0.1 here), not every interface (actors/base.py: node_listener, bind_collectives_to_node)."""
    spec = EngineSpec(model_path=str(tiny_model_dir), ds=DeepSpeedConfig(zero_stage=2), optim=OptimizerConfig(),
                      total_steps=1, micro_batch_size=1)
    policy = ActorGroup(PolicyActor, "policy", RoleResources(num_actors=2))
    rollout = ActorGroup(RolloutActor, "rollout", ONE)
    try:
        policy.gather(policy.init_engines(spec))
        rollout.run("init_model", str(tiny_model_dir))
        addr, port = policy.rendezvous()
        policy.gather(policy.call("init_sync_group", addr, port, 0, 2)
                      + rollout.call("init_sync_group", addr, port, 1, 2))
        assert addr == "127.0.0.1"
        pids = ray.get([a.__ray_call__.remote(lambda self: os.getpid()) for a in policy.actors + rollout.actors])
        listening = {pid: _listening(pid) for pid in pids}
    finally:
        policy.shutdown()
        rollout.shutdown()
    assert all(listening.values()), listening  # each has the sockets of its groups (and Ray's own)
    assert all(ip in ("127.0.0.1", "::ffff:127.0.0.1") for ips in listening.values() for ip in ips), listening
