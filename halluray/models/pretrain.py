"""Causal-LM pretraining of the base model on the world's corpus (packed blocks, AdamW, warmup + cosine,
optionally under bf16 autocast)."""

from __future__ import annotations

import torch

from halluray.config import PretrainConfig
from halluray.errors import InputError
from halluray.logging import RunLogger, progress
from halluray.models.optim import warmup_cosine


def pack_documents(tokenizer, docs: list[str], block_size: int) -> torch.Tensor:
    """Concatenate documents, each ended by EOS, and cut the stream into (n_blocks, block_size)."""
    stream: list[int] = []
    for ids in tokenizer(docs)["input_ids"]:
        stream.extend(ids)
        stream.append(tokenizer.eos_token_id)
    n_blocks = len(stream) // block_size
    if n_blocks == 0:
        raise InputError(f"corpus of {len(stream)} tokens is shorter than one block of {block_size}")
    return torch.tensor(stream[: n_blocks * block_size]).view(n_blocks, block_size)


def uses_bf16(precision: str, device_type: str) -> bool:
    """Whether `model.pretrain.precision` means bf16 autocast on this device ("auto": where it is native)."""
    if precision != "auto":
        return precision == "bf16"
    if device_type == "cuda":
        return torch.cuda.is_bf16_supported()
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def pretrain(model, tokenizer, docs: list[str], cfg: PretrainConfig, seed: int,
             logger: RunLogger | None = None) -> list[float]:
    """Train in place; returns the loss of every step."""
    blocks = pack_documents(tokenizer, docs, model.config.n_positions)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.95))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, cfg.warmup_steps, cfg.steps))
    model.train()
    losses = []
    bf16 = uses_bf16(cfg.precision, blocks.device.type)
    bar = progress(range(cfg.steps), desc="pretrain " + ("bf16" if bf16 else "fp32"))
    for step in bar:
        idx = torch.randint(len(blocks), (cfg.batch_size,), generator=gen)
        batch = blocks[idx]
        with torch.autocast(batch.device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = model(input_ids=batch, labels=batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if step % cfg.log_every == 0 or step == cfg.steps - 1:
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
            if logger:
                logger.log(step, loss=losses[-1], lr=sched.get_last_lr()[0])
    model.eval()
    return losses
