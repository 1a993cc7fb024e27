"""`halluray eval`: SFT, and RL + standard RM / RL + conservative RM where this run has them, on held-out prompts,
labeled by the run's fact checker."""

from __future__ import annotations

from pathlib import Path

from halluray.config import ExperimentConfig
from halluray.eval.long_form import response_metrics
from halluray.eval.plots import bin_labels, lines_by_bin
from halluray.eval.report import fmt
from halluray.io import atomic_dir, atomic_write_json, write_jsonl
from halluray.layout import RunLayout, require
from halluray.models.generation import SamplingParams
from halluray.pipeline.shared.long_form_heldout import eval_bin_edges, heldout_samples, long_form_scores
from halluray.pipeline.shared.prepare import prepare


def method_models(layout: RunLayout) -> dict[str, Path]:
    """Every method's model directory; the RL ones are the PPO runs named `ppo-<source>-rm`."""
    return {"sft": layout.sft_model("standard", "long_form"),
            "rl_standard_rm": layout.ppo_model(layout.ppo_name_with_rm("standard")),
            "rl_conservative_rm": layout.ppo_model(layout.ppo_name_with_rm("conservative"))}


def present_methods(layout: RunLayout) -> dict[str, Path]:
    """The SFT model (required) and whichever RL models this run directory holds (the demo has both; one
    llama2 config trains one)."""
    models = method_models(layout)
    require(models["sft"], "sft")
    return {m: path for m, path in models.items() if m == "sft" or (path / "config.json").is_file()}


def run(cfg: ExperimentConfig) -> dict:
    layout = prepare(cfg, "eval")
    e = cfg.eval
    unfamiliarity = long_form_scores(cfg)
    edges = eval_bin_edges(cfg, unfamiliarity)
    results = {"split": e.split, "bins": edges, "bin_labels": bin_labels(edges), "examples": {},
               "samples_per_prompt": e.samples_per_prompt, "temperature": e.temperature}
    samples, greedy = {}, {}
    methods = present_methods(layout)

    def record(into: dict, method: str, labeled: list[dict]) -> None:
        scores = [unfamiliarity[r["topic"]]["score"] for r in labeled]
        for key, value in response_metrics(labeled, scores, edges).items():
            into.setdefault(key, {})[method] = value

    for method, model in methods.items():
        # Sampled at eval.temperature, eval.samples_per_prompt per prompt (the headline numbers).
        samples[method] = heldout_samples(cfg, model, e.samples_per_prompt,
                                          SamplingParams(e.temperature, 1.0, cfg.ppo.max_new_tokens), cfg.seed + 31)
        record(results, method, samples[method])
        results["examples"][method] = examples(samples[method], unfamiliarity)
        # Greedy, one per prompt (the authors' decoding), reported beside them.
        if e.greedy:
            greedy[method] = heldout_samples(cfg, model, 1, SamplingParams(0.0, 1.0, cfg.ppo.max_new_tokens),
                                             cfg.seed + 31)
            record(results.setdefault("greedy", {}), method, greedy[method])
    with atomic_dir(layout.eval_dir) as tmp:
        for method, labeled in samples.items():
            write_jsonl(tmp / f"{method}.jsonl", labeled)
        for method, labeled in greedy.items():
            write_jsonl(tmp / f"{method}.greedy.jsonl", labeled)
        atomic_write_json(tmp / "results.json", results)
        series = {f"{m} true": results["true_facts_by_unfamiliarity"][m] for m in methods}
        series.update({f"{m} false": results["false_facts_by_unfamiliarity"][m] for m in methods})
        lines_by_bin(series, tmp / "fig7.png", "True and false facts per response by unfamiliarity",
                     "facts per response", results["bin_labels"])
    for method in methods:
        print(f"eval: {method:>18s} fraction true facts {fmt(results['fraction_true_facts'][method], 3)} "
              f"(per response {fmt(results['fraction_true_per_response'][method], 3)}; "
              f"true {results['mean_true_facts'][method]:.2f}, false {results['mean_false_facts'][method]:.2f}, "
              f"reward {results['mean_reward'][method]:+.2f} per response; no fact "
              f"{results['no_fact_rate'][method]:.0%}, malformed {results['malformed_rate'][method]:.0%})")
    return results


def examples(labeled: list[dict], unfamiliarity: dict[str, dict], per_group: int = 2) -> list[dict]:
    """A few responses from the most familiar and the most unfamiliar held-out prompts, first sample each."""
    seen, firsts = set(), []
    for r in labeled:
        if r["topic"] not in seen:
            seen.add(r["topic"])
            firsts.append(r)
    ordered = sorted(firsts, key=lambda r: (unfamiliarity[r["topic"]]["score"], r["topic"]))
    picked = [("familiar", r) for r in ordered[:per_group]] + [("unfamiliar", r) for r in ordered[-per_group:]]
    return [{"group": g, "topic": r["topic"], "unfamiliarity": unfamiliarity[r["topic"]]["score"],
             "response": r["response"], "facts": r["facts"]} for g, r in picked]
