"""A transformer backbone with a scalar head: per-token values for the critic, a last-token score for a scalar RM."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoModel

from halluray.models.forward import position_ids_from_mask

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
    def from_pretrained(cls, path: str | Path, trust_remote_code: bool = False) -> "ValueHeadModel":
        """Backbone from any causal-LM directory (its LM head is dropped); the head too if it was saved."""
        backbone = AutoModel.from_pretrained(path, trust_remote_code=trust_remote_code, use_safetensors=True,
                                             local_files_only=True)
        model = cls(backbone)
        head = Path(path) / HEAD_FILE
        if head.is_file():
            model.value_head.load_state_dict(load_file(head))
        return model

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
        return self.value_head(hidden).squeeze(-1)


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of the last attended token of each row (works with left or right padding)."""
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    return (attention_mask.long() * positions).argmax(dim=1)


def last_token_values(values: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    return values.gather(1, last_token_index(attention_mask)[:, None]).squeeze(1)
