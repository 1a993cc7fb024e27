"""Weight sync policy -> rollout worker, per method, on a locally built ~100M-parameter GPT-2-shape model."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from actors.base import EngineSpec
from actors.group import ActorGroup
from actors.policy import PolicyActor
from actors.rollout import RolloutActor
from halluray.config import DeepSpeedConfig, OptimizerConfig, RoleResources


def build_model_dir(path: Path, n_layer: int = 12, n_embd: int = 768, vocab: int = 32000) -> int:
    """A randomly initialised GPT-2-shape model saved with save_pretrained; returns its parameter count."""
    vocab_map = {f"w{i}": i for i in range(vocab)}
    tok = Tokenizer(models.WordLevel(vocab=vocab_map, unk_token="w1"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="w0", unk_token="w1", eos_token="w2")
    model = GPT2LMHeadModel(GPT2Config(vocab_size=vocab, n_positions=256, n_embd=n_embd, n_layer=n_layer,
                                       n_head=12, bos_token_id=2, eos_token_id=2, pad_token_id=0,
                                       loss_type="ForCausalLM"))
    model.save_pretrained(path)
    fast.save_pretrained(path)
    return sum(p.numel() for p in model.parameters())


def run(repeats: int = 3, zero_stage: int = 3) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "gpt2-100m"
        n_params = build_model_dir(model_dir)
        policy = ActorGroup(PolicyActor, "policy", RoleResources(num_actors=2), call_timeout_s=900)
        rollout = ActorGroup(RolloutActor, "rollout", RoleResources(num_actors=1), call_timeout_s=900)
        try:
            policy.gather(policy.init_engines(EngineSpec(model_path=str(model_dir), optim=OptimizerConfig(),
                                                         ds=DeepSpeedConfig(zero_stage=zero_stage), total_steps=1,
                                                         micro_batch_size=1)))
            rollout.run("init_model", str(model_dir))
            addr, port = policy.rendezvous()
            policy.gather(policy.call("init_sync_group", addr, port, 0, 2)
                          + rollout.call("init_sync_group", addr, port, 1, 2))
            times: dict[str, list[float]] = {"object_store": [], "broadcast": []}
            for _ in range(repeats):
                t0 = time.perf_counter()
                refs = policy.call("state_dict_for_sync")
                rollout.run("load_weights", refs[0])
                policy.gather(refs)
                times["object_store"].append(time.perf_counter() - t0)
                del refs
                t0 = time.perf_counter()
                sent = policy.call("broadcast_weights")
                rollout.run("receive_weights")
                policy.gather(sent)
                times["broadcast"].append(time.perf_counter() - t0)
        finally:
            policy.shutdown()
            rollout.shutdown()
    result = {"parameters": n_params, "zero_stage": zero_stage, "policy_ranks": 2,
              **{f"{k}_s": round(statistics.median(v), 3) for k, v in times.items()}}
    result["faster"] = min(times, key=lambda k: statistics.median(times[k]))
    return result


def report(result: dict) -> str:
    return (f"weight sync, {result['parameters'] / 1e6:.0f}M params, ZeRO-{result['zero_stage']} x "
            f"{result['policy_ranks']} -> 1 rollout worker: object store {result['object_store_s']:.2f} s, "
            f"gloo broadcast {result['broadcast_s']:.2f} s (median of runs); faster: {result['faster']}")
