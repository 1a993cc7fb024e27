"""The bare torch PPO loop (halluray/ppo/reference_loop.py) in a process of its own, so that its peak memory is
its own and no Ray or DeepSpeed is imported into it: `python -m halluray.bench.bare SPEC.json OUT.json`.

SPEC holds the config overrides, the policy's model directory, the prompt batches and the torch threads; OUT
gets each step's phase seconds, wall seconds and response tokens, the parameter counts and the peak RSS.
"""

from __future__ import annotations

import json
import sys
import time

import torch

from halluray.config import build_config
from halluray.factuality.fact_checkers import WorldFactChecker
from halluray.factuality.reward_functions import FactCheckerReward, RewardScheme
from halluray.layout import RunLayout
from halluray.models.build import load_model
from halluray.models.heads import ValueHeadModel
from halluray.models.lora import apply_lora
from halluray.ppo.reference_loop import ReferencePPO
from halluray.world.entities import World

PHASES = ("generate", "score", "train", "sync")


def peak_rss_bytes() -> int | None:
    """This process's resident-set high-water mark (Linux VmHWM); None where /proc has none."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def step_row(metrics: dict, wall: float, responses: int) -> dict:
    """One PPO step's phase seconds, its wall seconds and the response tokens it generated."""
    return {**{p: metrics[f"time/{p}"] for p in PHASES}, "wall": wall,
            "tokens": round(metrics["response_length"] * responses)}


def run(overrides: list[str], policy_path: str, batches: list[list[dict]], threads: int) -> dict:
    """The loop on `batches`. Models are built as the actors build them: with LoRA the policy gets the same
    adapters (its reference is a second plain load, what the policy with adapters disabled computes); a LoRA
    critic (`ppo.lora_critic`) keeps its backbone as loaded and trains adapters and an fp32 head; a full critic
    trains in fp32, as DeepSpeed's ZeRO-2 critic does (it flattens a bf16 backbone together with the fp32
    value head into one fp32 buffer); a critic-free estimator has none."""
    cfg = build_config({}, overrides)
    torch.set_num_threads(threads)
    policy, tokenizer = load_model(policy_path)
    total = sum(p.numel() for p in policy.parameters())
    if cfg.lora.enabled:
        policy = apply_lora(policy, cfg.lora)
    reference, _ = load_model(policy_path)
    torch.manual_seed(cfg.seed)  # the critic's new value head, drawn as a critic rank draws it
    critic = None
    if not cfg.ppo.critic_free and cfg.lora.enabled and cfg.ppo.lora_critic:
        critic = ValueHeadModel.from_pretrained(policy_path, cfg.model.trust_remote_code, cfg.lora)
    elif not cfg.ppo.critic_free:
        critic = ValueHeadModel.from_pretrained(policy_path, cfg.model.trust_remote_code).float()
    reward = FactCheckerReward(WorldFactChecker(World.load(RunLayout(cfg).world_json)),
                               RewardScheme.from_config(cfg.ppo.reward))
    loop = ReferencePPO(cfg, policy=policy, reference=reference, critic=critic, tokenizer=tokenizer,
                        reward_fn=reward)
    steps = []
    for records in batches:
        t0 = time.perf_counter()
        metrics, _ = loop.step(records)
        steps.append(step_row(metrics, time.perf_counter() - t0, cfg.ppo.responses_per_step))
    return {"steps": steps, "parameters": total,
            "trainable_parameters": sum(p.numel() for p in policy.parameters() if p.requires_grad),
            "peak_rss_bytes": peak_rss_bytes()}


def main() -> None:
    spec_path, out_path = sys.argv[1:3]
    with open(spec_path) as f:
        spec = json.load(f)
    result = run(spec["overrides"], spec["policy_path"], spec["batches"], spec["threads"])
    with open(out_path, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
