"""RL on a short-answer task (`RLTask`): PPO from each SFT model of the experiment with the config's abstain reward,
and from each control model with abstaining punished like a wrong answer; held-out answers before and after
RL by unfamiliarity bucket. `halluray qa-rl` runs it on short QA, `halluray mcq-rl` on multiple choice."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from halluray.config import ExperimentConfig
from halluray.eval.plots import OutcomePanel, outcome_figure
from halluray.experiments.shared.answers import held_answers, overall_fractions
from halluray.experiments.shared.bucket_report import bucket_line, bucket_metrics, rounded_bins
from halluray.experiments.shared.experiment_run import experiment
from halluray.experiments.shared.heldout import HeldOut
from halluray.experiments.shared.heldout_items import REAL_MAX_NEW_TOKENS
from halluray.experiments.shared.sft_arms import train_arm
from halluray.factuality.reward_functions import RewardScheme, short_answer_reward
from halluray.io import read_jsonl
from halluray.layout import WORLD_DATASETS, RunLayout
from halluray.trainers.ppo_run import run_ppo

PPO_MAX_NEW_TOKENS = 5
CONTROL_STRATEGIES = ("unfamiliar-idk",)


@dataclass(frozen=True)
class RLTask:
    """What RL on one short-answer task names and reads: its stage, held-out items and SFT models, PPO runs,
    output directory and figure."""

    stage: str
    task: str
    """The held-out items and the SFT models' task: short_qa | mcq."""
    run_prefix: str
    """PPO runs: run_dir/<run_prefix>-<strategy>[-abstain-penalized]."""
    out_dir: Callable[[RunLayout], Path]
    figure_name: str
    what: str
    """The task in the figure's title."""
    score_note: Callable[[ExperimentConfig], str]
    score_axis: str
    subset: str | None = None
    """`data.subset` of the world's PPO prompts (world_qa): None asks short questions, "mcq" multiple choice."""
    round_edges: bool = False
    """The figure's bucket labels with rounded edges (MCQ NLLs are long floats)."""


def ppo_runs(cfg: ExperimentConfig, strategies: tuple[str, ...], control: tuple[str, ...],
              spec: RLTask) -> list[dict]:
    """One dict per PPO run: key (results label), strategy (its SFT init), name (run_dir subdirectory), abstain."""
    r, prefix = cfg.ppo.reward, spec.run_prefix
    runs = [{"key": s, "strategy": s, "name": f"{prefix}-{s}", "abstain": r.abstain} for s in strategies]
    runs += [{"key": f"{s} (abstain {r.incorrect:g})", "strategy": s, "name": f"{prefix}-{s}-abstain-penalized",
              "abstain": r.incorrect} for s in control]
    return runs


def ppo_config(cfg: ExperimentConfig, run: dict, spec: RLTask) -> ExperimentConfig:
    """The PPO config of one run. The world's answers are one word and " ." (data: every attribute of every
    PPO-split person, asked as `spec` asks); a real model's answer is one sentence ending with its end-of-turn
    token."""
    reward = cfg.ppo.reward.model_copy(update={"kind": "qa_checker", "target": None, "abstain": run["abstain"]})
    if cfg.data.dataset in WORLD_DATASETS:
        data = cfg.data.model_copy(update={"dataset": "world_qa", "path": None, "fields": {}, "subset": spec.subset})
        answer = {"max_new_tokens": PPO_MAX_NEW_TOKENS, "stop": ["."]}
    else:
        data, answer = cfg.data, {"max_new_tokens": REAL_MAX_NEW_TOKENS, "stop": []}
    ppo = cfg.ppo.model_copy(update={"name": run["name"], "reward": reward, **answer})
    return cfg.model_copy(update={"ppo": ppo, "data": data})


def sft_model(cfg: ExperimentConfig, strategy: str, task: str, who: str) -> tuple[Path, bool]:
    """The `task` SFT model of `strategy` (trained now unless its step is up to date); and whether it was reused."""
    _, path, reused = train_arm(cfg, strategy, task, who)
    return path, reused


def ppo_curve(cfg: ExperimentConfig, name: str) -> dict:
    """Mean training reward of the first and last PPO iterations of run `name` (from metrics.jsonl)."""
    rows = [r for r in read_jsonl(RunLayout(cfg).metrics) if r.get("stage") == name and "reward_mean" in r]
    rows = rows[-cfg.ppo.steps:]
    if not rows:
        return {}
    k = max(1, len(rows) // 5)
    mean = lambda xs: round(sum(xs) / len(xs), 3)  # noqa: E731
    return {"reward_first": mean([r["reward_mean"] for r in rows[:k]]),
            "reward_last": mean([r["reward_mean"] for r in rows[-k:]]), "iterations_averaged": k,
            "kl_last": rows[-1].get("kl")}


def _evaluate(model_dir: Path, held: HeldOut, cfg: ExperimentConfig,
              scheme: RewardScheme) -> tuple[dict, list[list[str]], list[list[str]]]:
    """Bucket fractions, overall fractions and mean reward of the model's held-out answers; answers; labels."""
    answers = held_answers(model_dir, held, cfg)
    labels = held.label(answers)
    rewards = [short_answer_reward(label, scheme) for per_item in labels for label in per_item]
    out = {**held.distribution(labels), "overall": overall_fractions(labels),
           "mean_reward": sum(rewards) / len(rewards)}
    return out, answers, labels


def run_rl(cfg: ExperimentConfig, spec: RLTask, strategies: tuple[str, ...], control: tuple[str, ...]) -> dict:
    """PPO from each SFT model of `strategies` with the config's abstain reward, and from each of `control` with
    abstaining punished like a wrong answer; held-out answers before and after RL (the module doc)."""
    with experiment(cfg, spec.stage, spec.task) as ex:
        held, results = ex.held, ex.results
        runs = ppo_runs(cfg, strategies, control, spec)
        results.update({"runs": {}, "sft": {}})
        for strategy in dict.fromkeys(r["strategy"] for r in runs):
            t = time.time()
            path, reused = sft_model(cfg, strategy, spec.task, spec.stage)
            dist, answers, labels = _evaluate(path, held, cfg, RewardScheme.from_config(cfg.ppo.reward))
            results["sft"][strategy] = {**dist, "model": str(path), "reused": reused,
                                        "seconds": round(time.time() - t, 1)}
            ex.answer_rows += held.rows(answers, labels, phase="sft", model=strategy)
            _print(spec, f"sft {strategy}", dist)
        for step, r in enumerate(runs):
            pcfg = ppo_config(cfg, r, spec)
            t = time.time()
            run_ppo(pcfg, init=results["sft"][r["strategy"]]["model"], overwrite=True)  # this experiment owns it
            ppo_seconds = round(time.time() - t, 1)
            model = ex.layout.ppo_model(r["name"])
            dist, answers, labels = _evaluate(model, held, cfg, RewardScheme.from_config(pcfg.ppo.reward))
            results["runs"][r["key"]] = {**dist, "init": r["strategy"], "abstain_reward": r["abstain"],
                                         "model": str(model), "ppo_seconds": ppo_seconds, **ppo_curve(cfg, r["name"])}
            ex.answer_rows += held.rows(answers, labels, phase="rl", model=r["key"])
            ex.logger.log(step, run=r["key"], **bucket_metrics(dist))
            _print(spec, f"rl {r['key']}", dist)
        rw, ppo = cfg.ppo.reward, cfg.ppo
        return ex.finish(spec.out_dir(ex.layout), spec.figure_name, lambda res, path: figure(res, path, spec),
                         reward={"correct": rw.correct, "incorrect": rw.incorrect, "abstain": rw.abstain},
                         ppo={k: getattr(ppo, k) for k in ("steps", "batch_size", "minibatch_size", "ppo_epochs",
                                                           "cliprange", "kl_coef")}
                         | {"lr": ppo.policy_optimizer.lr,
                            "max_new_tokens": ppo_config(cfg, runs[0], spec).ppo.max_new_tokens},
                         score=spec.score_note(cfg))


def _print(spec: RLTask, what: str, dist: dict) -> None:
    print(f"{spec.stage} [{what}]: " + bucket_line(dist["bins"], dist, dist["samples"]) +
          f"; mean reward {dist['mean_reward']:.2f}")


def figure(results: dict, path: Path, spec: RLTask) -> None:
    """Top row: the SFT model each run starts from; bottom row: after PPO. Stacked label fractions per bucket."""
    runs = list(results["runs"].values())

    def panel(r: dict, title: str, xlabel: str | None = None) -> OutcomePanel:
        bins = rounded_bins(results["edges"], r["bins"]) if spec.round_edges else r["bins"]
        return OutcomePanel(r, [f"{b}\nn={n}" for b, n in zip(bins, results["counts"])], title, xlabel)

    outcome_figure([[panel(results["sft"][run["init"]], f"SFT {run['init']}") for run in runs],
                    [panel(run, f"RL from {run['init']}\nabstain reward {run['abstain_reward']:g}",
                           f"unfamiliarity ({spec.score_axis}) →") for run in runs]],
                   path, ylabels=["fraction of answers (before RL)", "fraction of answers (after RL)"],
                   panel_width=3.6, height=6.6, legend_space=0.04,
                   title=f"RL on {spec.what} (reward +2 correct / -3 incorrect / abstain as titled):\nheld-out answers "
                         f"by unfamiliarity; n = queries, {results['samples_per_prompt']} samples each")
