"""The distributed runtime on a real local Ray cluster (gloo on CPU): DeepSpeed ZeRO correctness and memory,
weight sync, checkpoints, HF export and failure reporting."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from actors.engine import make_optimizer
from halluray.config import DeepSpeedConfig, LoRAConfig, OptimizerConfig, RoleResources
from halluray.models.forward import logits_of, masked_nll, token_logprobs
from halluray.models.heads import ValueHeadModel
from halluray.models.optim import warmup_cosine_schedule

ray = pytest.importorskip("ray")

from actors.base import EngineSpec  # noqa: E402
from actors.critic import CriticActor  # noqa: E402
from actors.group import ActorFailure, ActorGroup  # noqa: E402
from actors.policy import PolicyActor  # noqa: E402
from actors.rollout import RolloutActor  # noqa: E402

pytestmark = pytest.mark.ray
TWO = RoleResources(num_actors=2, num_cpus=1)
# eps=1e-6: GPT-2's key bias has an exactly-zero true gradient, so its gradient is float noise that
# depends on reduction order; Adam with eps=1e-8 turns that noise into lr-sized steps (seen: 3e-6
# differences). A larger eps keeps such steps below the tolerance without hiding real mismatches.
OPTIM = OptimizerConfig(lr=3e-3, weight_decay=0.01, warmup_steps=1, eps=1e-6)


def batches(vocab: int, n_steps: int = 5, batch: int = 4, length: int = 16, seed: int = 0) -> list[dict]:
    """Two fixed global batches, alternated, so the loss visibly falls over 5 steps."""
    g = torch.Generator().manual_seed(seed)
    fixed = []
    for _ in range(2):
        ids = torch.randint(3, vocab, (batch, length), generator=g)
        fixed.append({"input_ids": ids, "attention_mask": torch.ones_like(ids),
                      "loss_mask": torch.ones(batch, length - 1, dtype=torch.long)})
    return [fixed[i % 2] for i in range(n_steps)]


def _rollout_logits(rollout: ActorGroup, probe: dict) -> torch.Tensor:
    """Rank 0's logits on `probe`, read from inside the actor (Ray's __ray_call__ runs a function on it)."""
    def logits(actor, batch):
        with torch.no_grad():
            return logits_of(actor.model, batch["input_ids"], batch["attention_mask"]).float()
    return ray.get(rollout.actors[0].__ray_call__.remote(logits, probe))


def _token_logp(logits: torch.Tensor, probe: dict) -> torch.Tensor:
    """Log-probability of each next probe token under `logits` (what the policy's `logprobs` returns)."""
    return torch.log_softmax(logits[:, :-1], -1).gather(-1, probe["input_ids"][:, 1:, None]).squeeze(-1)


def policy_group(model_dir, stage: int, total_steps: int = 5, lora: LoRAConfig | None = None, n: int = 2,
                 precision: str = "auto", reuse: bool = True):
    spec = EngineSpec(model_path=str(model_dir),
                      ds=DeepSpeedConfig(zero_stage=stage, gradient_clipping=1.0, precision=precision),
                      optim=OPTIM, total_steps=total_steps, micro_batch_size=2, lora=lora)
    group = ActorGroup(PolicyActor, "policy", RoleResources(num_actors=n), call_timeout_s=180,
                       collective_timeout_s=60, reuse=reuse)  # the previous test's ranks, released (warm_pool.py)
    group.gather(group.init_engines(spec))
    return group


def torch_reference(model_dir, data: list[dict], total_steps: int = 5):
    """One plain process, plain AdamW, the same global batches: what ZeRO must reproduce."""
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    opt = make_optimizer(model, OPTIM)
    sched = warmup_cosine_schedule(opt, OPTIM, total_steps)
    losses = []
    for b in data:
        loss = masked_nll(model, b["input_ids"], b["attention_mask"], b["loss_mask"])
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
    return losses, {k: v.detach() for k, v in model.named_parameters()}


@pytest.mark.parametrize("stage", [2, 3])
def test_two_ranks_under_zero_match_one_plain_torch_process(ray_cluster, tiny_model_dir, stage):
    data = batches(vocab=AutoModelForCausalLM.from_pretrained(tiny_model_dir).config.vocab_size)
    group = policy_group(tiny_model_dir, stage)
    try:
        # Each rank gets half of every global batch; the global loss is the mean of the two halves.
        ds_losses = [sum(r["loss"] for r in group.run_sharded("sft_step", b)) / 2 for b in data]
        ds_params = group.run("state_dict_for_sync")[0]
    finally:
        group.shutdown()
    ref_losses, ref_params = torch_reference(tiny_model_dir, data)
    # Tolerance: 1e-4 relative (fp32 reductions happen in a different order across ranks).
    torch.testing.assert_close(torch.tensor(ds_losses), torch.tensor(ref_losses), rtol=1e-4, atol=0)
    assert ref_losses[4] < ref_losses[2] < ref_losses[0]
    assert set(ds_params) == set(ref_params)
    for name, ref in ref_params.items():
        torch.testing.assert_close(ds_params[name], ref, rtol=1e-4, atol=1e-6, msg=name)


def test_zero3_halves_per_rank_parameter_and_optimizer_bytes(ray_cluster, tiny_model_dir):
    """ZeRO-3 on 2 ranks holds half the parameter + optimizer bytes per rank that ZeRO-0 holds, in bf16 with
    fp32 master weights (as on GPUs). In fp32 ZeRO-0 needs no master copy but ZeRO-3 keeps one of its
    partition, so the share is 2/3 there (docs/performance.md)."""
    data = batches(vocab=AutoModelForCausalLM.from_pretrained(tiny_model_dir).config.vocab_size, n_steps=1)[0]
    per_rank = {}
    for stage in (0, 3):
        group = policy_group(tiny_model_dir, stage, precision="bf16")
        try:
            group.run_sharded("sft_step", data)  # optimizer states exist only after a step
            per_rank[stage] = [m["total"] for m in group.run("memory_bytes")]
        finally:
            group.shutdown()
    assert per_rank[0][0] == per_rank[0][1]
    for zero3 in per_rank[3]:
        assert zero3 / per_rank[0][0] == pytest.approx(0.5, abs=0.02)


def _probe(model_dir) -> dict:
    ids = torch.tensor([[5, 9, 12, 30, 7, 8], [0, 0, 14, 15, 16, 17]])
    return {"input_ids": ids, "attention_mask": (ids != 0).long()}


def _rollout(model_dir, lora=None):
    group = ActorGroup(RolloutActor, "rollout", RoleResources(num_actors=1), call_timeout_s=120, reuse=True)
    group.run("init_model", str(model_dir), lora)
    return group


def _broadcast(policy: ActorGroup, rollout: ActorGroup, adapters_only: bool = False) -> tuple[int, int]:
    """Policy rank 0 -> the rollout worker over a fresh sync group; (elements sent, elements received)."""
    addr, port = policy.rendezvous()
    policy.gather(policy.call("init_sync_group", addr, port, 0, 2) + rollout.call("init_sync_group", addr, port, 1, 2))
    sent = policy.call("broadcast_weights", adapters_only)
    received = rollout.gather(rollout.call("receive_weights", adapters_only))
    return policy.gather(sent)[0], received[0]


@pytest.mark.parametrize("method", ["object_store", "broadcast"])
def test_weight_sync_makes_rollout_logits_equal_policy_logits(ray_cluster, tiny_model_dir, method):
    data = batches(vocab=AutoModelForCausalLM.from_pretrained(tiny_model_dir).config.vocab_size, n_steps=2)
    policy = policy_group(tiny_model_dir, stage=3)
    rollout = _rollout(tiny_model_dir)
    try:
        for b in data:
            policy.run_sharded("sft_step", b)
        probe = _probe(tiny_model_dir)
        before = _rollout_logits(rollout, probe)
        if method == "object_store":
            refs = policy.call("state_dict_for_sync")
            loaded = rollout.run("load_weights", refs[0])  # the ObjectRef resolves inside the worker
            policy.gather(refs)
            assert loaded[0] > 0
        else:
            sent, received = _broadcast(policy, rollout)
            assert sent == received > 0
        after = _rollout_logits(rollout, probe)
        # The trained policy's logits, computed by the policy itself under ZeRO-3.
        policy_logp = policy.run("logprobs", probe)[0]
    finally:
        policy.shutdown()
        rollout.shutdown()
    rollout_logp = _token_logp(after, probe)
    mask = probe["attention_mask"][:, 1:].bool()
    torch.testing.assert_close(rollout_logp[mask], policy_logp[mask], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(before, after), "training changed nothing; the test would prove nothing"


def test_lora_sync_sends_adapters_only_and_reference_is_the_base(ray_cluster, tiny_model_dir):
    lora = LoRAConfig(enabled=True, r=4, alpha=8)
    vocab = AutoModelForCausalLM.from_pretrained(tiny_model_dir).config.vocab_size
    policy = policy_group(tiny_model_dir, stage=2, lora=lora)
    rollout = _rollout(tiny_model_dir, lora)
    try:
        for b in batches(vocab, n_steps=3):
            policy.run_sharded("sft_step", b)
        probe = _probe(tiny_model_dir)
        refs = policy.call("state_dict_for_sync", adapters_only=True)
        adapters = policy.gather(refs)[0]
        assert adapters and all("lora_" in k for k in adapters)
        rollout.run("load_weights", refs[0])
        policy_logp = policy.run("logprobs", probe)[0]
        reference_logp = policy.run("reference_logprobs", probe)[0]
        after = _rollout_logits(rollout, probe)
    finally:
        policy.shutdown()
        rollout.shutdown()
    mask = probe["attention_mask"][:, 1:].bool()
    rollout_logp = _token_logp(after, probe)
    torch.testing.assert_close(rollout_logp[mask], policy_logp[mask], rtol=1e-5, atol=1e-5)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        base_logp = token_logprobs(base, probe["input_ids"], probe["attention_mask"])
    torch.testing.assert_close(reference_logp[mask], base_logp[mask], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(policy_logp[mask], base_logp[mask])


def test_bf16_lora_broadcast_gives_the_rollout_the_policys_adapters(ray_cluster, tiny_model_dir, tmp_path):
    """A bf16 base with LoRA: peft keeps the rollout's adapters in fp32 while DeepSpeed's bf16 engine holds them
    in bf16; the broadcast must still deliver the trained adapters (it once delivered garbage, then NaN)."""
    bf16_dir = tmp_path / "bf16"
    AutoModelForCausalLM.from_pretrained(tiny_model_dir).to(torch.bfloat16).save_pretrained(bf16_dir)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (bf16_dir / name).write_bytes((tiny_model_dir / name).read_bytes())
    lora = LoRAConfig(enabled=True, r=4, alpha=8)
    vocab = AutoModelForCausalLM.from_pretrained(bf16_dir).config.vocab_size
    policy = policy_group(bf16_dir, stage=2, lora=lora, n=1, precision="bf16")
    rollout = _rollout(bf16_dir, lora)
    try:
        for b in batches(vocab, n_steps=3):
            policy.run_sharded("sft_step", b)
        _broadcast(policy, rollout, adapters_only=True)
        probe = _probe(bf16_dir)
        policy_logp = policy.run("logprobs", probe)[0].float()
        after = _rollout_logits(rollout, probe)
    finally:
        policy.shutdown()
        rollout.shutdown()
    mask = probe["attention_mask"][:, 1:].bool()
    rollout_logp = _token_logp(after, probe)
    assert torch.isfinite(after).all()
    torch.testing.assert_close(rollout_logp[mask], policy_logp[mask], rtol=0, atol=0.05)  # bf16 rounding


@pytest.mark.parametrize("stage", [2, 3])
def test_checkpoint_resume_gives_the_uninterrupted_next_loss(ray_cluster, tiny_model_dir, tmp_path, stage):
    data = batches(vocab=AutoModelForCausalLM.from_pretrained(tiny_model_dir).config.vocab_size, n_steps=4)
    group = policy_group(tiny_model_dir, stage, total_steps=4)
    try:
        for b in data[:2]:
            group.run_sharded("sft_step", b)
        group.run("save_checkpoint", str(tmp_path / "ckpt"), {"step": 2})
        uninterrupted = [group.run_sharded("sft_step", b) for b in data[2:]]
    finally:
        group.shutdown()
    assert not list(tmp_path.glob(".*")), "temp checkpoint dir left behind"
    fresh = policy_group(tiny_model_dir, stage, total_steps=4, reuse=False)  # new processes: all state from disk
    try:
        assert fresh.run("load_checkpoint", str(tmp_path / "ckpt"))[0] == {"step": 2}
        resumed = [fresh.run_sharded("sft_step", b) for b in data[2:]]
    finally:
        fresh.shutdown()
    for a, b in zip(uninterrupted, resumed):
        assert [r["loss"] for r in a] == pytest.approx([r["loss"] for r in b], rel=1e-6)
        assert [r["lr"] for r in a] == [r["lr"] for r in b]  # the scheduler resumed too


def test_hf_export_loads_with_auto_model(ray_cluster, tiny_model_dir, tmp_path):
    lora = LoRAConfig(enabled=True, r=4, alpha=8)
    vocab = AutoModelForCausalLM.from_pretrained(tiny_model_dir).config.vocab_size
    group = policy_group(tiny_model_dir, stage=3, lora=lora)
    try:
        for b in batches(vocab, n_steps=2):
            group.run_sharded("sft_step", b)
        group.run("export_hf", str(tmp_path / "merged"))
        probe = _probe(tiny_model_dir)
        policy_logp = group.run("logprobs", probe)[0]
    finally:
        group.shutdown()
    exported = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    assert (tmp_path / "merged" / "model.safetensors").is_file()
    with torch.no_grad():
        logp = token_logprobs(exported, probe["input_ids"], probe["attention_mask"])
    mask = probe["attention_mask"][:, 1:].bool()
    torch.testing.assert_close(logp[mask], policy_logp[mask], rtol=1e-5, atol=1e-5)


def test_killed_actor_is_reported_by_role_and_rank(ray_cluster, tiny_model_dir):
    data = batches(vocab=AutoModelForCausalLM.from_pretrained(tiny_model_dir).config.vocab_size, n_steps=1)[0]
    group = policy_group(tiny_model_dir, stage=2)
    try:
        ray.kill(group.actors[1])
        with pytest.raises(ActorFailure, match="policy rank 1 died"):
            group.run_sharded("sft_step", data)
    finally:
        group.shutdown(timeout_s=5)


def test_unanswered_call_times_out_naming_the_rank(ray_cluster, tiny_model_dir):
    data = batches(vocab=AutoModelForCausalLM.from_pretrained(tiny_model_dir).config.vocab_size, n_steps=1)[0]
    group = policy_group(tiny_model_dir, stage=2)
    try:
        # Only rank 0 is asked to step: it waits in the gradient all-reduce for a rank that never comes.
        ref = group.actors[0].sft_step.remote({k: v[:2] for k, v in data.items()})
        with pytest.raises(ActorFailure, match=r"policy: rank\(s\) \[0\] did not answer within 3 s"):
            group.gather([ref], timeout_s=3)
    finally:
        group.shutdown(timeout_s=5)


def test_lora_critic_trains_only_adapters_and_head_on_a_frozen_bf16_backbone(ray_cluster, tiny_model_dir, tmp_path):
    """`ppo.lora_critic`: the critic holds a bf16 backbone that stays as loaded, LoRA adapters and a value head; only
    those two train, so the critic costs what the LoRA policy costs (docs/performance.md)."""
    bf16_dir = tmp_path / "bf16"
    AutoModelForCausalLM.from_pretrained(tiny_model_dir).to(torch.bfloat16).save_pretrained(bf16_dir)
    lora = LoRAConfig(enabled=True, r=4, alpha=8)
    full = ValueHeadModel.from_pretrained(bf16_dir)
    adapted = ValueHeadModel.from_pretrained(bf16_dir, lora=lora)
    trainable = {n for n, p in adapted.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or n.startswith("value_head.") for n in trainable)
    assert {"value_head.weight", "value_head.bias"} <= trainable
    hidden, layers = full.config.hidden_size, full.config.n_layer
    # GPT-2's c_attn is hidden -> 3 x hidden: r x (in + out) adapter weights per layer, plus the head.
    assert sum(adapted.get_parameter(n).numel() for n in trainable) == layers * 4 * (hidden + 3 * hidden) + hidden + 1
    frozen = [p for n, p in adapted.named_parameters() if n not in trainable]
    assert all(p.dtype == torch.bfloat16 for p in frozen)

    spec = EngineSpec(model_path=str(bf16_dir), ds=DeepSpeedConfig(zero_stage=2, precision="bf16"), optim=OPTIM,
                      total_steps=3, micro_batch_size=2, lora=lora)
    critic = ActorGroup(CriticActor, "critic", RoleResources(num_actors=1), call_timeout_s=180, reuse=True)
    try:
        built = critic.gather(critic.init_engines(spec))[0]
        probe = _probe(tiny_model_dir)
        before = critic.run("values", probe)[0]
        action_mask = probe["attention_mask"][:, 1:]
        batch = {**probe, "action_mask": action_mask, "returns": torch.full(action_mask.shape, 3.0),
                 "old_values": before}
        losses = [critic.run("value_step", batch, 10.0)[0]["loss"] for _ in range(3)]
        after = critic.run("values", probe)[0]
    finally:
        critic.shutdown()
    assert built["trainable_params"] == sum(adapted.get_parameter(n).numel() for n in trainable)
    assert losses[-1] < losses[0], "the value loss did not fall: the adapters and head are not training"
    assert not torch.allclose(before, after)
