"""`halluray reward-data`: RM training data on the RM prompts, conservative (SFT samples) or standard
(independent source: on the world its generator, pipeline/shared/generator.py; on real data the base model
reading the reference text, or a chat model), labeled by the run's fact checker."""

from __future__ import annotations

from pathlib import Path

from halluray.config import ExperimentConfig
from halluray.data import prompts_for, reader_prompts
from halluray.errors import InputError
from halluray.eval.metrics import pooled_fraction_true
from halluray.eval.report import fmt
from halluray.factuality.checking import checker_for
from halluray.factuality.fact_checkers import OpenAIResponder
from halluray.factuality.reward_functions import RewardScheme
from halluray.io import atomic_write_json, write_jsonl
from halluray.layout import WORLD_DATASETS, RunLayout, require
from halluray.models.generation import SamplingParams
from halluray.pipeline.shared.generator import train_generator
from halluray.pipeline.shared.prepare import prepare
from halluray.reward_models.data import label_responses
from halluray.trainers.sampling import sample_with_rollouts
from halluray.world import IndependentSource, World


def run(cfg: ExperimentConfig) -> dict:
    layout = prepare(cfg, "reward-data")
    rd, path = cfg.reward_data, layout.reward_data()
    records = [r for r in prompts_for(cfg, "rm") for _ in range(rd.samples_per_prompt)]
    if rd.source == "conservative":
        model = require(layout.sft_model("standard", "long_form"), "sft")
        responses = sample(cfg, model, [r["prompt"] for r in records])
    else:
        responses = independent_responses(cfg, records)
    scheme = RewardScheme.from_config(cfg.ppo.reward)
    labeled = label_responses(checker_for(cfg), records, responses, scheme)
    write_jsonl(path, labeled)
    summary = {"source": rd.source, "responses": len(labeled),
               "mean_reward": sum(r["reward"] for r in labeled) / len(labeled),
               "fraction_true_facts": pooled_fraction_true([r["n_true"] for r in labeled],
                                                           [r["n_false"] for r in labeled])}
    atomic_write_json(path.with_suffix(".summary.json"), summary)
    print(f"reward-data [{rd.source}]: {len(labeled)} labeled responses, mean reward {summary['mean_reward']:.2f}, "
          f"fraction true facts {fmt(summary['fraction_true_facts'])}")
    return summary


def sample(cfg: ExperimentConfig, model: Path, prompts: list[str]) -> list[str]:
    rd = cfg.reward_data
    return sample_with_rollouts(cfg, str(model), prompts, SamplingParams(rd.temperature, 1.0, rd.max_new_tokens),
                                cfg.seed + 11)


def independent_responses(cfg: ExperimentConfig, records: list[dict]) -> list[str]:
    """The standard RM's responses: from a source that does not share the policy's knowledge — on the world its
    independent generator (or the oracle source), on real data the base model reading each prompt's reference
    text (`reader`) or the fact checker's chat model (GPT-3.5's role in the paper). `records` repeat each RM
    prompt `samples_per_prompt` times, in split order."""
    rd = cfg.reward_data
    if rd.standard_source == "reader":
        prompts = [p for p in reader_prompts(cfg, "rm") for _ in range(rd.samples_per_prompt)]
        return sample(cfg, require(RunLayout(cfg).base_model, "import-model"), prompts)
    if cfg.data.dataset in WORLD_DATASETS and rd.standard_source == "generator":
        return sample(cfg, train_generator(cfg), [r["prompt"] for r in records])
    if cfg.data.dataset in WORLD_DATASETS:
        world = World.load(require(RunLayout(cfg).world_json, "world"))
        source = IndependentSource(world, cfg.source_accuracy_by_frequency(), cfg.seed)
        return [source.respond(r["topic"], sample=i % rd.samples_per_prompt) for i, r in enumerate(records)]
    if cfg.fact_checker.kind != "openai":
        raise InputError("reward_data.source=standard on real data writes its responses with the fact checker's "
                         "chat model: set fact_checker.kind=openai (or use source=conservative)")
    return OpenAIResponder(cfg.fact_checker, RunLayout(cfg).fact_checker_cache).respond([r["prompt"] for r in records])
