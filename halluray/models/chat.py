"""Prompts in the base model's chat format: an instruction-tuned model answers its own format far better."""

from __future__ import annotations

from functools import lru_cache

from halluray.errors import InputError


@lru_cache(maxsize=4)
def _tokenizer(model_path: str, trust_remote_code: bool):
    # transformers takes seconds to import; the data layer (and preflight, through it) imports this module.
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_path, trust_remote_code=trust_remote_code, local_files_only=True)


def chat_formatter(model_path: str, system_prompt: str | None = None, trust_remote_code: bool = False):
    """A function text -> the text as one user turn of `model_path`'s chat template, ending where the
    assistant's reply starts."""
    tokenizer = _tokenizer(str(model_path), trust_remote_code)
    if not tokenizer.chat_template:
        raise InputError(f"model.chat_template is on, but {model_path} has no chat template")
    system = [{"role": "system", "content": system_prompt}] if system_prompt is not None else []

    def fmt(text: str) -> str:
        return tokenizer.apply_chat_template(system + [{"role": "user", "content": text}], tokenize=False,
                                             add_generation_prompt=True)
    return fmt
