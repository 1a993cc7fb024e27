"""The world model's pretraining step in fp32 and under bf16 autocast (`model.pretrain.precision`), on the demo's
world and model, in this process: rounds alternate the two so that a busy machine slows both alike."""

from __future__ import annotations

import statistics
import time

import torch

from halluray.config import build_config
from halluray.models.build import build_gpt2
from halluray.models.pretrain import pretrain
from halluray.models.tokenizer import train_word_tokenizer
from halluray.world.build import build_corpus, make_world, vocabulary_texts

PRECISIONS = ("fp32", "bf16")


def run(steps: int = 60, rounds: int = 2, threads: int = 2) -> dict:
    """Seconds per step of `steps` steps from the same initial weights, per precision (median of `rounds`), and
    the loss each reaches."""
    cfg = build_config({}, [])
    world = make_world(cfg)
    corpus = build_corpus(cfg, world)
    tokenizer = train_word_tokenizer(list(vocabulary_texts(world)) + corpus)
    torch.set_num_threads(threads)
    seconds: dict[str, list[float]] = {p: [] for p in PRECISIONS}
    loss: dict[str, float] = {}
    for _ in range(rounds):
        for precision in PRECISIONS:
            model = build_gpt2(cfg.model, tokenizer, cfg.seed)
            training = cfg.model.pretrain.model_copy(update={"steps": steps, "precision": precision,
                                                             "warmup_steps": steps // 10})
            t0 = time.perf_counter()
            losses = pretrain(model, tokenizer, corpus, training, cfg.seed)
            seconds[precision].append((time.perf_counter() - t0) / steps)
            loss[precision] = losses[-1]
    per_step = {p: statistics.median(s) for p, s in seconds.items()}
    return {"steps": steps, "threads": threads, "batch_size": cfg.model.pretrain.batch_size,
            "seconds_per_step": per_step, "final_loss": loss, "bf16_speedup": per_step["fp32"] / per_step["bf16"]}


def report(result: dict) -> str:
    s, loss = result["seconds_per_step"], result["final_loss"]
    return (f"world pretraining, {result['steps']} steps of {result['batch_size']} blocks on {result['threads']} "
            f"threads: fp32 {s['fp32']:.3f} s/step (loss {loss['fp32']:.3f}), bf16 autocast {s['bf16']:.3f} s/step "
            f"(loss {loss['bf16']:.3f}); bf16 is {result['bf16_speedup']:.2f}x as fast")
