"""Held-out long-form evaluation pieces shared by `eval-rm` (Fig. 5) and `eval` (Figs. 6, 7): the prompts'
unfamiliarity scores, their tercile edges, and a model's responses labeled by the run's fact checker. The
prompts are `eval.split`'s: the test people (eval) for every reported number, the validation people (val) to
tune on."""

from __future__ import annotations

from pathlib import Path

from halluray.config import ExperimentConfig
from halluray.data import prompts_for
from halluray.eval.buckets import quantile_edges
from halluray.factuality.checking import checker_for
from halluray.factuality.reward_functions import RewardScheme
from halluray.io import read_jsonl
from halluray.layout import RunLayout, require
from halluray.models.generation import SamplingParams
from halluray.reward_models.data import label_responses
from halluray.trainers.sampling import sample_with_rollouts

N_BINS = 3


def long_form_scores(cfg: ExperimentConfig) -> dict[str, dict]:
    path = require(RunLayout(cfg).unfamiliarity_scores, "unfamiliarity")
    return {r["name"]: r for r in read_jsonl(path) if r["task"] == "long_form"}


def eval_bin_edges(cfg: ExperimentConfig, unfamiliarity: dict[str, dict]) -> list[float]:
    """Unfamiliarity terciles of the held-out prompts (one score per prompt), shared by Figs. 5 and 7."""
    return quantile_edges([unfamiliarity[r["topic"]]["score"] for r in prompts_for(cfg, cfg.eval.split)], N_BINS)


def heldout_samples(cfg: ExperimentConfig, model: Path, samples_per_prompt: int, params: SamplingParams,
                    seed: int) -> list[dict]:
    """Responses of `model` to every held-out prompt, labeled by the run's fact checker."""
    records = [r for r in prompts_for(cfg, cfg.eval.split) for _ in range(samples_per_prompt)]
    responses = sample_with_rollouts(cfg, str(model), [r["prompt"] for r in records], params, seed)
    scheme = RewardScheme.from_config(cfg.ppo.reward)
    return label_responses(checker_for(cfg), records, responses, scheme)
