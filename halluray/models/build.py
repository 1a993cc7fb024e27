"""Build the tiny GPT-2-shape base model, or load any local Hugging Face causal LM."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerBase

from halluray.config import ModelConfig
from halluray.errors import InputError
from halluray.io import atomic_dir


def build_gpt2(cfg: ModelConfig, tokenizer: PreTrainedTokenizerBase, seed: int) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=cfg.n_positions, n_embd=cfg.n_embd, n_layer=cfg.n_layer,
        n_head=cfg.n_head, bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, loss_type="ForCausalLM", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
    )
    return GPT2LMHeadModel(config)


def load_model(path: str | Path, trust_remote_code: bool = False):
    """Model and tokenizer from a local directory (safetensors only; no hub access)."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"model directory not found: {path}")
    tokenizer = load_tokenizer(path, trust_remote_code)
    model = AutoModelForCausalLM.from_pretrained(
        path, trust_remote_code=trust_remote_code, use_safetensors=True, local_files_only=True)
    model.eval()
    return model, tokenizer


def load_tokenizer(path: str | Path, trust_remote_code: bool = False):
    """The model directory's tokenizer, padding on the left as batched generation needs."""
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code, local_files_only=True)
    tokenizer.padding_side = "left"
    return tokenizer


def save_model(model, tokenizer, path: str | Path) -> None:
    """`save_pretrained` (safetensors) into an atomically renamed directory."""
    with atomic_dir(path) as tmp:
        model.save_pretrained(tmp)  # safetensors is the default format
        tokenizer.save_pretrained(tmp)
