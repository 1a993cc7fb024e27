"""Answers of a model under test: `eval.samples_per_prompt` samples per held-out prompt at `eval.temperature`,
each cut to the answer that is labeled."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from halluray.config import ExperimentConfig
from halluray.eval.qa import LABELS
from halluray.experiments.shared.heldout import HeldOut
from halluray.experiments.shared.heldout_items import MAX_NEW_TOKENS
from halluray.factuality import unfamiliarity as unf
from halluray.models.build import load_model
from halluray.models.generation import sample


def sample_answers(model, tokenizer, prompts: list[str], cfg: ExperimentConfig, max_new_tokens: int = MAX_NEW_TOKENS,
                   cut: Callable[[str], str] = unf.answer_of) -> list[list[str]]:
    """`eval.samples_per_prompt` sampled answers per prompt, each `cut` (the world's: at its first full stop)."""
    k = cfg.eval.samples_per_prompt
    responses = sample(model, tokenizer, [p for p in prompts for _ in range(k)], max_new_tokens=max_new_tokens,
                       temperature=cfg.eval.temperature, batch_size=64, seed=cfg.seed)
    return [[cut(r) for r in responses[j * k:(j + 1) * k]] for j in range(len(prompts))]


def held_answers(model_dir: Path, held: HeldOut, cfg: ExperimentConfig) -> list[list[str]]:
    """The answers of the model in `model_dir` to each held-out item's prompt (see `sample_answers`)."""
    model, tokenizer = load_model(model_dir, cfg.model.trust_remote_code)
    return sample_answers(model, tokenizer, [i["prompt"] for i in held.items], cfg, held.max_new_tokens, held.cut)


def overall_fractions(labels: list[list[str]]) -> dict[str, float]:
    """The fraction of each label over all answers."""
    flat = [x for per_item in labels for x in per_item]
    return {label: flat.count(label) / len(flat) for label in LABELS}
