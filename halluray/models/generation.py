"""Batched sampling and choice scoring with any HF causal LM (left-padded prompts, KV cache)."""

from __future__ import annotations

import torch


def _batches(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]


@torch.no_grad()
def sample(model, tokenizer, prompts: list[str], *, max_new_tokens: int, temperature: float = 1.0,
           top_p: float = 1.0, batch_size: int = 64, seed: int = 0) -> list[str]:
    """One sampled continuation per prompt, decoded and cut at the end-of-text token."""
    model.eval()
    torch.manual_seed(seed)
    outputs: list[str] = []
    for batch in _batches(prompts, batch_size):
        enc = tokenizer(batch, return_tensors="pt", padding=True)
        gen = model.generate(
            **enc, do_sample=True, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
            pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        )
        new_tokens = gen[:, enc["input_ids"].shape[1]:]
        outputs.extend(tokenizer.batch_decode(new_tokens, skip_special_tokens=True))
    return [" ".join(o.split()) for o in outputs]


@torch.no_grad()
def continuation_logprobs(model, tokenizer, prompts: list[str], continuations: list[str],
                          batch_size: int = 64) -> list[float]:
    """Sum of token log-probabilities of each continuation given its prompt."""
    model.eval()
    scores: list[float] = []
    pairs = list(zip(prompts, continuations))
    pad = tokenizer.pad_token_id
    for batch in _batches(pairs, batch_size):
        ids, n_prompt = [], []
        for prompt, cont in batch:
            p = tokenizer(prompt)["input_ids"]
            c = tokenizer(" " + cont)["input_ids"]
            ids.append(p + c)
            n_prompt.append(len(p))
        width = max(map(len, ids))
        # Right padding here: positions of real tokens are then unaffected.
        input_ids = torch.tensor([x + [pad] * (width - len(x)) for x in ids])
        mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in ids])
        logits = model(input_ids=input_ids, attention_mask=mask).logits.float()
        logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, input_ids[:, 1:, None]).squeeze(-1)
        for row, (x, n) in enumerate(zip(ids, n_prompt)):
            scores.append(logp[row, n - 1:len(x) - 1].sum().item())
    return scores
