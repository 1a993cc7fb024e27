"""`halluray qa-experiment`: the paper's short-QA SFT experiment (§4.2, Fig. 2 bottom row) on the world.

For each SFT target strategy (standard, unfamiliar-idk, random-idk) the SFT stage finetunes the base model
on the world's short-QA items of the "sft" split (`sft.task=short_qa`, the other sft keys from the config).
Each finetuned model then answers held-out QA items (all six attributes of every "eval"-split person, see
halluray/experiments/shared/heldout_items.py), `eval.samples_per_prompt` samples each at `eval.temperature`, at
most 4 new tokens; the answers are labeled correct / incorrect / abstain by the world's checker and grouped into
buckets of the query's short-QA unfamiliarity score (halluray/eval/qa.py; the edges are computed once from the
held-out scores and shared by the three models).

Writes run_dir/qa_experiment/{results.json, answers.jsonl, heldout_items.jsonl, fig2.png}; the SFT models
stay in run_dir/sft-short_qa-<strategy>/. Needs `halluray world` and `halluray unfamiliarity` (with
short_qa in unfamiliarity.tasks) on the same run directory. Like `halluray sft`, each SFT run rewrites
run_dir/config.sft.yaml.
"""

from __future__ import annotations

from pathlib import Path

from halluray.config import ExperimentConfig
from halluray.eval.plots import OutcomePanel, outcome_figure
from halluray.experiments.shared.answers import held_answers
from halluray.experiments.shared.bucket_report import bucket_line, bucket_metrics, short_qa_score_note
from halluray.experiments.shared.experiment_run import experiment
from halluray.experiments.shared.heldout_items import MAX_NEW_TOKENS
from halluray.experiments.shared.sft_arms import sft_arms, sft_outcome, sft_settings
from halluray.factuality.relabel import STRATEGIES


def run(cfg: ExperimentConfig, strategies: tuple[str, ...] = STRATEGIES) -> dict:
    with experiment(cfg, "qa-experiment", "short_qa") as ex:
        held = ex.held
        for step, strategy, summary, model in sft_arms(cfg, strategies, "short_qa", "qa-experiment"):
            answers = held_answers(model, held, cfg)
            labels = held.label(answers)
            dist = held.distribution(labels)
            ex.results[strategy] = {**dist, **sft_outcome(summary)}
            ex.logger.log(step, strategy=strategy, **bucket_metrics(dist))
            ex.answer_rows += held.rows(answers, labels, strategy=strategy)
            print(f"qa-experiment [{strategy}]: " + bucket_line(dist["bins"], dist, dist["samples"]))
        return ex.finish(ex.layout.qa_experiment_dir, "fig2.png", lambda r, path: fig2(r, list(strategies), path),
                         max_new_tokens=MAX_NEW_TOKENS, score=short_qa_score_note(cfg), sft=sft_settings(cfg))


def fig2(results: dict, strategies: list[str], path: Path) -> None:
    """One panel per strategy: a stacked bar of correct / incorrect / abstain fractions per bucket."""
    panels = [OutcomePanel(results[s], [f"{b}\nn={n}" for b, n in zip(results[s]["bins"], results["counts"])],
                           title=s, xlabel="unfamiliarity (short-QA score) →") for s in strategies]
    outcome_figure([panels], path, ylabels=["fraction of answers"], panel_width=4, height=3.9, legend_space=0.06,
                   compact=False,
                   title=f"Short-QA answers of SFT models on held-out queries by unfamiliarity (paper Fig. 2); "
                         f"n = queries, {results['samples_per_prompt']} samples each")
