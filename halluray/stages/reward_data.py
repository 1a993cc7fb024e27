"""`halluray reward-data`: RM training data on the RM prompts, conservative (SFT samples) or standard
(independent source), labeled by the ground-truth fact checker."""

from __future__ import annotations

from pathlib import Path

from halluray.config import ExperimentConfig
from halluray.data import prompts_for
from halluray.eval.metrics import pooled_fraction_true
from halluray.eval.report import fmt
from halluray.factuality.rewards import RewardScheme
from halluray.io import atomic_write_json, write_jsonl
from halluray.models.generation import SamplingParams
from halluray.rewards.data import label_responses
from halluray.stages.common import prepare, require, sample_with_rollouts, world_dir
from halluray.world import FactChecker, IndependentSource, World


def data_path(cfg: ExperimentConfig, source: str | None = None) -> Path:
    return cfg.run_dir / "reward-data" / f"{source or cfg.reward_data.source}.jsonl"


def run(cfg: ExperimentConfig) -> dict:
    from halluray.stages.sft import sft_dir

    prepare(cfg, "reward-data")[1].close()
    rd = cfg.reward_data
    world = World.load(require(world_dir(cfg) / "world.json", "world"))
    records = [r for r in prompts_for(cfg, "rm") for _ in range(rd.samples_per_prompt)]
    if rd.source == "conservative":
        model = require(sft_dir(cfg, "standard", "long_form") / "model", "sft")
        responses = sample_with_rollouts(cfg, str(model), [r["prompt"] for r in records],
                                         SamplingParams(rd.temperature, 1.0, rd.max_new_tokens), cfg.seed + 11)
    else:
        source = IndependentSource(world, cfg.world.source_accuracy, cfg.seed)
        responses = [source.respond(r["topic"], sample=i % rd.samples_per_prompt) for i, r in enumerate(records)]
    scheme = RewardScheme(cfg.ppo.reward.true_fact, cfg.ppo.reward.false_fact)
    labeled = label_responses(FactChecker(world), records, responses, scheme)
    write_jsonl(data_path(cfg), labeled)
    summary = {"source": rd.source, "responses": len(labeled),
               "mean_reward": sum(r["reward"] for r in labeled) / len(labeled),
               "fraction_true_facts": pooled_fraction_true([r["n_true"] for r in labeled],
                                                           [r["n_false"] for r in labeled])}
    atomic_write_json(data_path(cfg).with_suffix(".summary.json"), summary)
    print(f"reward-data [{rd.source}]: {len(labeled)} labeled responses, mean reward {summary['mean_reward']:.2f}, "
          f"fraction true facts {fmt(summary['fraction_true_facts'])}")
    return summary
