"""ZeRO-3 against ZeRO-0 memory per rank: the policy role on 2 ranks, the real 135M model, full finetune.

Both run bf16 with fp32 master weights and fp32 AdamW moments (`deepspeed.precision: bf16`). Under the CPU
default (fp32 config) a bf16 model is not comparable: ZeRO-0 then trains the bf16 weights themselves, with no
master copy, while ZeRO-3 still keeps fp32 master partitions.
"""

from __future__ import annotations

import torch

from actors.base import EngineSpec
from actors.group import ActorGroup
from actors.policy import PolicyActor
from halluray.bench.ppo_step import REAL_MODEL, Timer, actor_peaks
from halluray.config import DeepSpeedConfig, OptimizerConfig, RoleResources

RANKS = 2
LIMIT = 1 / RANKS + 0.1
"""ZeRO-3's per-rank total may be at most this fraction of ZeRO-0's."""
KEYS = ("params", "master", "optimizer_states", "total")


def measure(model_dir: str, zero_stage: int) -> dict:
    """Per-rank bytes after one optimizer step (AdamW creates its moments at the first step) and peak RSS."""
    group = ActorGroup(PolicyActor, "policy", RoleResources(num_actors=RANKS), call_timeout_s=900)
    try:
        group.gather(group.init_engines(EngineSpec(
            model_path=model_dir, optim=OptimizerConfig(), total_steps=1, micro_batch_size=1,
            ds=DeepSpeedConfig(zero_stage=zero_stage, precision="bf16"))))
        ids = torch.randint(0, 1000, (RANKS, 16), generator=torch.Generator().manual_seed(0))
        group.run_sharded("sft_step", {"input_ids": ids, "attention_mask": torch.ones_like(ids),
                                       "loss_mask": torch.ones_like(ids[:, 1:])})
        ranks = group.run("memory_bytes")
        peaks = [p["peak_rss_bytes"] for p in actor_peaks([group])]
    finally:
        group.shutdown()
    return {"ranks": ranks, "peak_rss_bytes": peaks}


def run(real_model: str = REAL_MODEL) -> dict:
    timer = Timer("zero3: ")
    stages = {}
    for stage in (0, 3):
        with timer(f"ZeRO-{stage}", f" (policy x {RANKS}, 135M full finetune)"):
            stages[stage] = measure(real_model, stage)
    worst = {s: max(r["total"] for r in stages[s]["ranks"]) for s in stages}
    ratio = worst[3] / worst[0]
    return {"model": real_model, "ranks": RANKS, "precision": "bf16", "stages": stages, "ratio": ratio,
            "limit": LIMIT, "passed": ratio <= LIMIT, "seconds": timer.seconds}


def report(r: dict) -> str:
    rows = [f"ZeRO-3 vs ZeRO-0 per rank: policy role x {r['ranks']}, SmolLM2-135M full finetune, bf16 weights with "
            "fp32 master and AdamW states, after one optimizer step (MB = 1e6 bytes)",
            f"  {'stage':6s}{'params':>10s}{'master':>10s}{'optimizer':>11s}{'total':>10s}   peak RSS MiB by rank"]
    for stage, m in r["stages"].items():
        worst = max(m["ranks"], key=lambda b: b["total"])
        rows.append(f"  {'ZeRO-' + str(stage):6s}" + "".join(f"{worst[k] / 1e6:{w}.1f}" for k, w in
                                                           zip(KEYS, (10, 10, 11, 10)))
                    + "   " + " ".join(f"{p / 2**20:.0f}" if p else "?" for p in m["peak_rss_bytes"]))
    verdict = "pass" if r["passed"] else "FAIL"
    rows.append(f"  ZeRO-3 / ZeRO-0 total = {r['ratio']:.3f} (limit {r['limit']:.2f}): {verdict}; "
                "time (s): " + ", ".join(f"{k} {v:.0f}" for k, v in r["seconds"].items()))
    return "\n".join(rows)
