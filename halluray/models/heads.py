"""Heads on a transformer: a scalar head (per-token values for the critic, a last-token score for a scalar RM or
the text two-stage RM's text verifier, the logit of P(true) of prompt + fact), and the verifiers that read an LM's
own belief in a fact (`FactVerifier`, the two-stage RM's; `ClaimBeliefVerifier`, the text RM's belief verifier).
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoModel, AutoModelForCausalLM

from halluray.config import LoRAConfig
from halluray.models.forward import position_ids_from_mask
from halluray.models.lora import apply_lora

HEAD_FILE = "value_head.safetensors"


class ValueHeadModel(nn.Module):
    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.config = backbone.config
        self.value_head = nn.Linear(backbone.config.hidden_size, 1)
        # A near-zero head starts every value at ~0, which keeps the first critic updates small.
        nn.init.normal_(self.value_head.weight, std=1.0 / (backbone.config.hidden_size + 1))
        nn.init.zeros_(self.value_head.bias)

    @classmethod
    def from_pretrained(cls, path: str | Path, trust_remote_code: bool = False,
                        lora: LoRAConfig | None = None) -> ValueHeadModel:
        """Backbone from any causal-LM directory (its LM head is dropped); the head too if it was saved. With
        `lora` the backbone is frozen in its stored dtype and gets adapters: only they and the head train."""
        backbone = AutoModel.from_pretrained(path, trust_remote_code=trust_remote_code, use_safetensors=True,
                                             local_files_only=True)
        if lora is not None:
            backbone = apply_lora(backbone, lora, task_type=None)
        model = cls(backbone)
        head = Path(path) / HEAD_FILE
        if head.is_file():
            model.value_head.load_state_dict(load_file(head))
        return model

    def merge_and_unload(self) -> ValueHeadModel:
        """The LoRA adapters merged into the backbone's weights (a plain backbone then), as peft's own."""
        self.backbone = self.backbone.merge_and_unload()
        return self

    def save_pretrained(self, path: str | Path) -> None:
        self.backbone.save_pretrained(path, safe_serialization=True)
        save_file({k: v.contiguous() for k, v in self.value_head.state_dict().items()}, str(Path(path) / HEAD_FILE))

    def gradient_checkpointing_enable(self) -> None:
        self.backbone.gradient_checkpointing_enable()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Values of shape (batch, seq)."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask,
                               position_ids=position_ids_from_mask(attention_mask)).last_hidden_state
        # A frozen bf16 backbone (the LoRA critic) feeds the fp32 head.
        return self.value_head(hidden.to(self.value_head.weight.dtype)).squeeze(-1)


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of the last attended token of each row (works with left or right padding)."""
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    return (attention_mask.long() * positions).argmax(dim=1)


def last_token_values(values: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    return values.gather(1, last_token_index(attention_mask)[:, None]).squeeze(1)


VERIFIER_FILE = "verifier_head.safetensors"


class FactVerifier(nn.Module):
    """The two-stage RM's verifier: P(an atomic fact is true), read from the language model's own belief.

    Features of the stated value's tokens under the LM: their summed log-probability, the mean entropy
    (how sure the model is of *any* value there) and the mean top log-probability (how sure it is of its
    own best guess). A linear head maps them to a logit; LM and head are
    finetuned together. For entities the LM does not know, both features look the same whether the fact
    is true or not, so the prediction falls back to the average label of such facts in the training data:
    the mechanism behind conservative vs standard reward models.
    """

    INITIAL_WEIGHTS = (1.0, 0.0, 0.0)
    INITIAL_BIAS = 1.5  # start as "true if log P(value) > -1.5"

    def __init__(self, lm: nn.Module):
        super().__init__()
        self.lm = lm
        self.config = lm.config
        self.head = nn.Linear(len(self.INITIAL_WEIGHTS), 1)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([self.INITIAL_WEIGHTS]))
            self.head.bias.fill_(self.INITIAL_BIAS)

    @classmethod
    def from_pretrained(cls, path: str | Path, trust_remote_code: bool = False) -> FactVerifier:
        model = cls(AutoModelForCausalLM.from_pretrained(path, trust_remote_code=trust_remote_code,
                                                         use_safetensors=True, local_files_only=True))
        head = Path(path) / VERIFIER_FILE
        if head.is_file():
            model.head.load_state_dict(load_file(head))
        return model

    def save_pretrained(self, path: str | Path) -> None:
        self.lm.save_pretrained(path)
        save_file({k: v.contiguous() for k, v in self.head.state_dict().items()}, str(Path(path) / VERIFIER_FILE))

    def gradient_checkpointing_enable(self) -> None:
        self.lm.gradient_checkpointing_enable()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, value_mask: torch.Tensor) -> torch.Tensor:
        """Logits (batch,); value_mask (batch, T) marks the judged tokens (here the stated value's)."""
        logits = self.lm(input_ids=input_ids, attention_mask=attention_mask,
                         position_ids=position_ids_from_mask(attention_mask)).logits[:, :-1].float()
        logp = torch.log_softmax(logits, dim=-1)
        token_logp = logp.gather(-1, input_ids[:, 1:, None]).squeeze(-1)
        return self.head(self.features(logp, token_logp, value_mask[:, 1:].float())).squeeze(-1)

    @staticmethod
    def features(logp: torch.Tensor, token_logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(batch, 3): the value's summed log-probability, mean entropy and mean top log-probability."""
        entropy = -(logp.exp() * logp).sum(-1)
        n = mask.sum(1).clamp(min=1)
        return torch.stack([(token_logp * mask).sum(1), (entropy * mask).sum(1) / n,
                            (logp.max(-1).values * mask).sum(1) / n], dim=-1)


class ClaimBeliefVerifier(FactVerifier):
    """The text RM's belief verifier (`reward_model.verifier: belief`): P(a claim is true in reply to the prompt)
    from how far the claim, read straight after the prompt, falls below the LM's own best guess at each token.

    The LM stays as it was pretrained (frozen: finetuned on a few hundred labeled facts, a small LM learns which
    names tend to be wrong rather than how to look a fact up); only a logistic head over two features is
    trained: the summed and the worst per-token gap log P(token) - max log P. A claim the LM would have written
    itself has gaps near 0; a wrong value, or a fact about someone other than the one asked about, has a large
    one where the LM knows better. Where it knows nothing every claim has gaps, true or not, and the head falls
    back to how often such claims were true in its training data, as the conservative RM should."""

    INITIAL_WEIGHTS = (0.0, 0.0)
    INITIAL_BIAS = 0.0

    def __init__(self, lm: nn.Module):
        super().__init__(lm)
        self.lm.requires_grad_(False)

    @staticmethod
    def features(logp: torch.Tensor, token_logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(batch, 2): the claim's summed and its worst per-token gap to the LM's top log-probability."""
        gap = (token_logp - logp.max(-1).values) * mask
        return torch.stack([gap.sum(1), gap.min(1).values], dim=-1)


def verifier_tensors(tokenizer, facts: list[tuple[str, str]]) -> dict[str, torch.Tensor]:
    """Right-padded (sentence, stated value) pairs with a mask over the value's tokens (its last occurrence)."""
    rows, spans = [], []
    for sentence, value in facts:
        cut = sentence.rfind(value)
        if cut < 0:
            raise ValueError(f"value {value!r} does not occur in fact {sentence!r}")
        prefix, suffix = sentence[:cut].rstrip(), sentence[cut + len(value):]
        p = tokenizer(prefix)["input_ids"] if prefix else []
        v = tokenizer((" " if prefix else "") + value)["input_ids"]
        s = tokenizer(suffix)["input_ids"] if suffix.strip() else []
        rows.append(p + v + s)
        spans.append((len(p), len(p) + len(v)))
    # A value at position 0 would have no prediction; it is never the case here.
    return _judged_rows(tokenizer.pad_token_id, rows, [(max(a, 1), b) for a, b in spans])


def _judged_rows(pad_token_id: int, rows: list[list[int]], spans: list[tuple[int, int]]) -> dict[str, torch.Tensor]:
    """Right-padded token rows with `value_mask` set over each row's judged span [start, end)."""
    width = max(map(len, rows))
    input_ids = torch.full((len(rows), width), pad_token_id)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    value_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (row, (a, b)) in enumerate(zip(rows, spans)):
        input_ids[i, :len(row)] = torch.tensor(row)
        attention_mask[i, :len(row)] = 1
        value_mask[i, a:b] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "value_mask": value_mask}


def claim_tensors(tokenizer, prompts: list[str], claims: list[str], max_length: int) -> dict[str, torch.Tensor]:
    """Right-padded prompt + " " + claim + " ." rows, as the SFT model reads a reply, with `value_mask` over the
    claim's tokens (what `ClaimBeliefVerifier` judges); where a row would exceed `max_length` tokens the prompt
    is cut from the left, then the claim from the right."""
    rows, spans = [], []
    for prompt, claim in zip(prompts, claims):
        c = tokenizer(" " + claim.rstrip(" .") + " .")["input_ids"]
        p = tokenizer(prompt)["input_ids"][-max(1, max_length - len(c)):]
        row = (p + c)[:max_length]
        rows.append(row)
        spans.append((len(p), len(row)))
    return _judged_rows(tokenizer.pad_token_id, rows, spans)
