"""Batched sampling and choice scoring with any HF causal LM (left-padded prompts, KV cache)."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch


def _batches(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]


@torch.no_grad()
def sample(model, tokenizer, prompts: list[str], *, max_new_tokens: int, temperature: float = 1.0,
           top_p: float = 1.0, batch_size: int = 64, seed: int = 0) -> list[str]:
    """One sampled continuation per prompt (temperature 0: the greedy one), decoded and cut at the end-of-text
    token."""
    model.eval()
    torch.manual_seed(seed)
    decoding = {"do_sample": True, "temperature": temperature, "top_p": top_p} if temperature > 0 else \
        {"do_sample": False}
    outputs: list[str] = []
    for batch in _batches(prompts, batch_size):
        enc = tokenizer(batch, return_tensors="pt", padding=True)
        gen = model.generate(**enc, **decoding, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                             eos_token_id=tokenizer.eos_token_id)
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


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 1.0
    """0: greedy decoding."""
    top_p: float = 1.0
    max_new_tokens: int = 48
    stop: tuple[str, ...] = ()
    """Words that end a response, besides the end-of-text token (each must be one token)."""


@contextmanager
def _contiguous_head_input(model):
    """The prefill hands the output layer the last position only, a strided slice of the hidden states.
    torch.matmul folds a strided (batch, 1, hidden) input into one matrix product only when the weight requires
    grad; under LoRA the output layer is frozen, and it then copies the whole (hidden, vocab) weight once per
    sequence for a batched product: 8 x 576 x 49152 bf16 at 135M, about 0.6 s of a 4 s rollout on one CPU
    thread. A contiguous input takes the plain product, with bit-identical logits (docs/performance.md)."""
    head = model.get_output_embeddings()
    if head is None:
        yield
        return
    hook = head.register_forward_pre_hook(lambda _, args: (args[0].contiguous(), *args[1:]))
    try:
        yield
    finally:
        hook.remove()


@torch.no_grad()
def generate_rollout(model, tokenizer, prompts: list[str], params: SamplingParams, seed: int) -> dict:
    """Sample one response per prompt; return the token tensors PPO needs.

    input_ids: left-padded prompt + response, right-padded after the response's end token.
    action_mask (batch, T-1): 1 where position t+1 is a response token (aligned with token log-probs).
    """
    model.eval()
    torch.manual_seed(seed)
    stop_ids = [tokenizer.eos_token_id]
    for word in params.stop:
        ids = tokenizer(word)["input_ids"]
        if len(ids) != 1:
            raise ValueError(f"stop word {word!r} is {len(ids)} tokens; stop words must be single tokens")
        stop_ids.append(ids[0])
    enc = tokenizer(prompts, return_tensors="pt", padding=True)
    device = next(model.parameters()).device
    enc = {k: v.to(device) for k, v in enc.items()}
    with _contiguous_head_input(model):
        decoding = {"do_sample": True, "temperature": params.temperature, "top_p": params.top_p} \
            if params.temperature > 0 else {"do_sample": False}
        out = model.generate(**enc, **decoding, max_new_tokens=params.max_new_tokens,
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=stop_ids)
    prompt_len = enc["input_ids"].shape[1]
    response = out[:, prompt_len:]
    # A response ends at (and includes) its first stop token; later positions are padding.
    is_stop = torch.isin(response, torch.tensor(stop_ids, device=response.device))
    after_stop = (is_stop.long().cumsum(1) - is_stop.long()) > 0
    response_mask = ~after_stop
    response = response.masked_fill(after_stop, tokenizer.pad_token_id)
    input_ids = torch.cat([enc["input_ids"], response], dim=1)
    attention_mask = torch.cat([enc["attention_mask"], response_mask.long()], dim=1)
    action_mask = torch.zeros_like(input_ids[:, 1:])
    action_mask[:, prompt_len - 1:] = response_mask.long()
    texts = [" ".join(t.split()) for t in tokenizer.batch_decode(response, skip_special_tokens=True)]
    return {"input_ids": input_ids.cpu(), "attention_mask": attention_mask.cpu(), "action_mask": action_mask.cpu(),
            "responses": texts, "prompts": list(prompts)}


def merge_rollouts(parts: list[dict]) -> dict:
    """Concatenate rollout shards from several workers, right-padding the token tensors with 0 / pad.

    Padding on the right never moves a real token: positions come from the attention mask.
    """
    def cat(key: str) -> torch.Tensor:
        tensors = [p[key] for p in parts]
        width = max(t.shape[1] for t in tensors)
        return torch.cat([torch.nn.functional.pad(t, (0, width - t.shape[1]), value=0) for t in tensors])

    merged = {k: cat(k) for k in ("input_ids", "attention_mask", "action_mask")}
    for key in ("responses", "prompts"):
        merged[key] = [x for p in parts for x in p[key]]
    return merged
