"""`halluray eval-rm`: predicted vs ground-truth reward by unfamiliarity on held-out SFT samples (paper Fig. 5),
and verifier accuracy on familiar vs unfamiliar entities."""

from __future__ import annotations

from pathlib import Path

from halluray.config import ExperimentConfig
from halluray.data import prompts_for
from halluray.eval.buckets import means_by_bin, quantile_edges
from halluray.eval.plots import bin_labels, lines_by_bin
from halluray.eval.report import fmt
from halluray.factuality.rewards import RewardScheme
from halluray.io import atomic_dir, atomic_write_json, read_jsonl, write_jsonl
from halluray.models.generation import SamplingParams
from halluray.rewards.data import label_responses
from halluray.rewards.models import TwoStageRewardModel, load_reward_model
from halluray.stages.common import prepare, require, sample_with_rollouts, world_dir
from halluray.stages.train_rm import rm_dir
from halluray.world import FactChecker, World

N_BINS = 3


def long_form_scores(cfg: ExperimentConfig) -> dict[str, dict]:
    path = require(cfg.run_dir / "unfamiliarity" / "unfamiliarity.jsonl", "unfamiliarity")
    return {r["name"]: r for r in read_jsonl(path) if r["task"] == "long_form"}


def eval_bin_edges(cfg: ExperimentConfig, unfamiliarity: dict[str, dict]) -> list[float]:
    """Unfamiliarity terciles of the held-out prompts (one score per prompt), shared by Figs. 5 and 7."""
    return quantile_edges([unfamiliarity[r["topic"]]["score"] for r in prompts_for(cfg, "eval")], N_BINS)


def heldout_samples(cfg: ExperimentConfig, model: Path, samples_per_prompt: int, params: SamplingParams,
                    seed: int) -> list[dict]:
    """Responses of `model` to every held-out prompt, labeled by the exact checker."""
    world = World.load(require(world_dir(cfg) / "world.json", "world"))
    records = [r for r in prompts_for(cfg, "eval") for _ in range(samples_per_prompt)]
    responses = sample_with_rollouts(cfg, str(model), [r["prompt"] for r in records], params, seed)
    scheme = RewardScheme(cfg.ppo.reward.true_fact, cfg.ppo.reward.false_fact)
    return label_responses(FactChecker(world), records, responses, scheme)


def run(cfg: ExperimentConfig) -> dict:
    from halluray.stages.sft import sft_dir

    prepare(cfg, "eval-rm")[1].close()
    rd = cfg.reward_data
    unfamiliarity = long_form_scores(cfg)
    model = require(sft_dir(cfg, "standard", "long_form") / "model", "sft")
    labeled = heldout_samples(cfg, model, rd.samples_per_prompt,
                              SamplingParams(rd.temperature, 1.0, rd.max_new_tokens), cfg.seed + 23)
    scores = [unfamiliarity[r["topic"]]["score"] for r in labeled]
    edges = eval_bin_edges(cfg, unfamiliarity)
    result = {"bins": edges, "bin_labels": bin_labels(edges), "responses": len(labeled),
              "rm_reward_by_unfamiliarity": {"ground_truth": means_by_bin([r["reward"] for r in labeled], scores, edges)},
              "verifier_accuracy": {}}
    for source in ("standard", "conservative"):
        path = rm_dir(cfg, source)
        if not path.is_dir():
            continue
        rm = load_reward_model(path)
        predicted = rm([r["prompt"] for r in labeled], [r["response"] for r in labeled], [r["topic"] for r in labeled])
        for r, p in zip(labeled, predicted):
            r[f"predicted_{source}"] = p
        result["rm_reward_by_unfamiliarity"][source] = means_by_bin(predicted, scores, edges)
        if isinstance(rm, TwoStageRewardModel):
            result["verifier_accuracy"][source] = verifier_accuracy(rm, labeled, unfamiliarity)
    with atomic_dir(cfg.run_dir / "rm_eval") as tmp:
        write_jsonl(tmp / "samples.jsonl", labeled)
        atomic_write_json(tmp / "results.json", result)
        lines_by_bin(result["rm_reward_by_unfamiliarity"], tmp / "fig5.png",
                     "Reward on held-out SFT samples: ground truth vs RMs", "mean reward per response",
                     result["bin_labels"])
    table = result["rm_reward_by_unfamiliarity"]
    for name, values in table.items():
        print(f"eval-rm: {name:>13s} reward by unfamiliarity tercile: " + ", ".join(fmt(v) for v in values))
    for name, acc in result["verifier_accuracy"].items():
        print(f"eval-rm: {name} verifier accuracy, familiar {fmt(acc['familiar'])}, unfamiliar {fmt(acc['unfamiliar'])}")
    return result


def verifier_accuracy(rm: TwoStageRewardModel, labeled: list[dict], unfamiliarity: dict[str, dict]) -> dict:
    """Accuracy of P(true) > 0.5 on the held-out samples' atomic facts, split by the entity's familiarity."""
    out = {}
    for group, unfamiliar in (("familiar", False), ("unfamiliar", True)):
        facts = [(text, value, label) for r in labeled if unfamiliarity[r["topic"]]["unfamiliar"] == unfamiliar
                 for text, value, label in r["facts"]]
        if not facts:
            out[group] = None
            continue
        p = rm.p_true([(t, v) for t, v, _ in facts])
        out[group] = sum((pi > 0.5) == (label == "true") for pi, (_, _, label) in zip(p, facts)) / len(facts)
    return out
