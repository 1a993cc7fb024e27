"""LoRA through peft: wrap a model, and move adapter weights in and out (weight sync, export)."""

from __future__ import annotations

from peft import LoraConfig, get_peft_model

from halluray.config import LoRAConfig


def apply_lora(model, cfg: LoRAConfig, task_type: str | None = "CAUSAL_LM"):
    """peft adapters on `model` (its other weights frozen). A causal LM is wrapped for generation; a bare
    backbone (the critic's, under a value head; task_type None) is wrapped to pass its inputs through."""
    # GPT-2 stores its projections as Conv1D (weights transposed), which LoRA must be told about.
    fan_in_fan_out = getattr(model.config, "model_type", "") == "gpt2"
    peft_cfg = LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                          target_modules=list(cfg.target_modules), fan_in_fan_out=fan_in_fan_out,
                          task_type=task_type)
    return get_peft_model(model, peft_cfg)


def is_adapter_param(name: str) -> bool:
    return "lora_" in name
