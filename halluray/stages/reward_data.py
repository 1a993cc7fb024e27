"""`halluray reward-data`: RM training data on the RM prompts, conservative (SFT samples) or standard
(independent source), labeled by the ground-truth fact checker."""

from __future__ import annotations

from halluray.config import ExperimentConfig
from halluray.data import prompts_for
from halluray.eval.metrics import pooled_fraction_true
from halluray.eval.report import fmt
from halluray.factuality.reward_functions import RewardScheme
from halluray.io import atomic_write_json, write_jsonl
from halluray.layout import require
from halluray.models.generation import SamplingParams
from halluray.reward_models.data import label_responses
from halluray.stages.common import prepare, sample_with_rollouts
from halluray.world import ExactChecker, IndependentSource, World


def run(cfg: ExperimentConfig) -> dict:
    layout = prepare(cfg, "reward-data")
    rd, path = cfg.reward_data, layout.reward_data()
    world = World.load(require(layout.world_json, "world"))
    records = [r for r in prompts_for(cfg, "rm") for _ in range(rd.samples_per_prompt)]
    if rd.source == "conservative":
        model = require(layout.sft_model("standard", "long_form"), "sft")
        responses = sample_with_rollouts(cfg, str(model), [r["prompt"] for r in records],
                                         SamplingParams(rd.temperature, 1.0, rd.max_new_tokens), cfg.seed + 11)
    else:
        source = IndependentSource(world, cfg.world.source_accuracy, cfg.seed)
        responses = [source.respond(r["topic"], sample=i % rd.samples_per_prompt) for i, r in enumerate(records)]
    scheme = RewardScheme.from_config(cfg.ppo.reward)
    labeled = label_responses(ExactChecker(world), records, responses, scheme)
    write_jsonl(path, labeled)
    summary = {"source": rd.source, "responses": len(labeled),
               "mean_reward": sum(r["reward"] for r in labeled) / len(labeled),
               "fraction_true_facts": pooled_fraction_true([r["n_true"] for r in labeled],
                                                           [r["n_false"] for r in labeled])}
    atomic_write_json(path.with_suffix(".summary.json"), summary)
    print(f"reward-data [{rd.source}]: {len(labeled)} labeled responses, mean reward {summary['mean_reward']:.2f}, "
          f"fraction true facts {fmt(summary['fraction_true_facts'])}")
    return summary
