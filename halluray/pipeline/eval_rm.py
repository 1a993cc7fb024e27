"""`halluray eval-rm`: predicted vs ground-truth reward by unfamiliarity on held-out SFT samples (paper Fig. 5),
and verifier accuracy on familiar vs unfamiliar entities."""

from __future__ import annotations

from halluray.config import ExperimentConfig
from halluray.eval.buckets import means_by_bin
from halluray.eval.plots import bin_labels, lines_by_bin
from halluray.eval.report import fmt
from halluray.factuality.checking import checker_for
from halluray.factuality.reward_functions import MalformedPenalty
from halluray.io import atomic_dir, atomic_write_json, write_jsonl
from halluray.layout import require
from halluray.models.generation import SamplingParams
from halluray.pipeline.shared.long_form_heldout import eval_bin_edges, heldout_samples, long_form_scores
from halluray.pipeline.shared.prepare import prepare
from halluray.reward_models.models import TextTwoStageRewardModel, TwoStageRewardModel, load_reward_model


def run(cfg: ExperimentConfig) -> dict:
    layout = prepare(cfg, "eval-rm")
    rd = cfg.reward_data
    unfamiliarity = long_form_scores(cfg)
    model = require(layout.sft_model("standard", "long_form"), "sft")
    labeled = heldout_samples(cfg, model, rd.samples_per_prompt,
                              SamplingParams(rd.temperature, 1.0, rd.max_new_tokens), cfg.seed + 23)
    scores = [unfamiliarity[r["topic"]]["score"] for r in labeled]
    edges = eval_bin_edges(cfg, unfamiliarity)
    result = {"bins": edges, "bin_labels": bin_labels(edges), "responses": len(labeled),
              "rm_reward_by_unfamiliarity": {
                  "ground_truth": means_by_bin([r["reward"] for r in labeled], scores, edges)},
              "verifier_accuracy": {}}
    for source in ("standard", "conservative"):
        path = layout.rm_dir(source)
        if not path.is_dir():
            continue
        rm = load_reward_model(path)
        # Scored as PPO's reward actor scores it: the ground truth gives a malformed response the penalty, and
        # without it an RM would seem to over-estimate every malformed response.
        penalty = cfg.ppo.reward.malformed_penalty
        score = rm if penalty is None else MalformedPenalty(rm, checker_for(cfg), penalty)
        predicted = score([r["prompt"] for r in labeled], [r["response"] for r in labeled],
                          [r["topic"] for r in labeled])
        for r, p in zip(labeled, predicted):
            r[f"predicted_{source}"] = p
        result["rm_reward_by_unfamiliarity"][source] = means_by_bin(predicted, scores, edges)
        if isinstance(rm, (TwoStageRewardModel, TextTwoStageRewardModel)):
            result["verifier_accuracy"][source] = verifier_accuracy(rm, labeled, unfamiliarity)
    with atomic_dir(layout.rm_eval_dir) as tmp:
        write_jsonl(tmp / "samples.jsonl", labeled)
        atomic_write_json(tmp / "results.json", result)
        lines_by_bin(result["rm_reward_by_unfamiliarity"], tmp / "fig5.png",
                     "Reward on held-out SFT samples: ground truth vs RMs", "mean reward per response",
                     result["bin_labels"])
    table = result["rm_reward_by_unfamiliarity"]
    for name, values in table.items():
        print(f"eval-rm: {name:>13s} reward by unfamiliarity tercile: " + ", ".join(fmt(v) for v in values))
    for name, acc in result["verifier_accuracy"].items():
        print(f"eval-rm: {name} verifier accuracy, familiar {fmt(acc['familiar'])}, "
              f"unfamiliar {fmt(acc['unfamiliar'])}")
    return result


def verifier_accuracy(rm: TwoStageRewardModel | TextTwoStageRewardModel, labeled: list[dict],
                      unfamiliarity: dict[str, dict]) -> dict:
    """Accuracy of P(true) > 0.5 on the held-out samples' atomic facts, split by the entity's familiarity."""
    out = {}
    for group, unfamiliar in (("familiar", False), ("unfamiliar", True)):
        facts = [({"prompt": r["prompt"], "topic": r["topic"], "text": text, "value": value}, label)
                 for r in labeled if unfamiliarity[r["topic"]]["unfamiliar"] == unfamiliar
                 for text, value, label in r["facts"]]
        if not facts:
            out[group] = None
            continue
        p = rm.p_true_facts([item for item, _ in facts])
        out[group] = sum((pi > 0.5) == (label == "true") for pi, (_, label) in zip(p, facts)) / len(facts)
    return out
