"""`halluray qa-rl`: PPO on short QA with the paper's QA reward (§4.2 "Reinforcement learning", Fig. 3 right).

Each short-QA SFT model of `halluray qa-experiment` (run_dir/sft-short_qa-<strategy>/model; trained here
first when missing) initialises a PPO run (run_dir/ppo-qa-<strategy>/) on the world's short-QA prompts of the
"ppo" split (`data.dataset=world_qa`: all six questions of every PPO-split person), rewarded by the world's
answer checker (`ppo.reward.kind=qa_checker`): +2 correct, -3 incorrect, `ppo.reward.abstain` (paper: 0) for
"I do not know". The control run (run_dir/ppo-qa-<strategy>-abstain-penalized/, by default from the
unfamiliar-idk model) punishes abstaining like a wrong answer (abstain reward = `ppo.reward.incorrect`, -3),
so guessing pays more than abstaining on every query.

The paper's prediction: with abstain = 0, abstaining has the higher expected reward whenever P(correct) < 0.6,
so the RL policy keeps (or learns) "I do not know" on unfamiliar queries and answers familiar ones; with
abstain = -3, guessing always pays at least as much, so the policy abstains less and guesses more.

Each policy before RL (the SFT model) and after RL answers the held-out QA items of qa-experiment (all six
attributes of every "eval"-split person; `eval.samples_per_prompt` samples at `eval.temperature`, at most 4 new
tokens); answers are labeled correct / incorrect / abstain and grouped into buckets of the query's short-QA
unfamiliarity score (edges computed once from the held-out scores, shared by every model).

PPO settings come from the config's `ppo` section except what the stage fixes: name, reward kind and
abstain value, `data.dataset=world_qa`, `ppo.max_new_tokens=5` and `ppo.stop=["."]` (an answer is one word
and a full stop; "I do not know ." is five tokens).

Writes run_dir/qa_rl/{results.json, answers.jsonl, heldout_items.jsonl, rl_short_qa.png}.
Needs `halluray world` and `halluray unfamiliarity` (short_qa in unfamiliarity.tasks) on the same run directory.
"""

from __future__ import annotations

import time
from pathlib import Path

from halluray.config import ExperimentConfig
from halluray.eval.qa import LABELS, bin_counts, bucket_edges, qa_distribution
from halluray.factuality.relabel import STRATEGIES
from halluray.io import atomic_dir, atomic_write_json, read_jsonl, write_jsonl
from halluray.stages.common import prepare, require, world_dir

N_BINS = 3
PPO_MAX_NEW_TOKENS = 5
OUTPUT = "qa_rl"
CONTROL_STRATEGIES = ("unfamiliar-idk",)


def output_dir(cfg: ExperimentConfig) -> Path:
    return cfg.run_dir / OUTPUT


def plan_runs(cfg: ExperimentConfig, strategies=STRATEGIES, control=CONTROL_STRATEGIES) -> list[dict]:
    """One dict per PPO run: key (results label), strategy (its SFT init), name (run_dir subdirectory), abstain."""
    r = cfg.ppo.reward
    runs = [{"key": s, "strategy": s, "name": f"ppo-qa-{s}", "abstain": r.abstain} for s in strategies]
    runs += [{"key": f"{s} (abstain {r.incorrect:g})", "strategy": s, "name": f"ppo-qa-{s}-abstain-penalized",
              "abstain": r.incorrect} for s in control]
    return runs


def ppo_config(cfg: ExperimentConfig, run: dict) -> ExperimentConfig:
    reward = cfg.ppo.reward.model_copy(update={"kind": "qa_checker", "target": None, "abstain": run["abstain"]})
    ppo = cfg.ppo.model_copy(update={"name": run["name"], "reward": reward, "max_new_tokens": PPO_MAX_NEW_TOKENS,
                                     "stop": ["."]})
    data = cfg.data.model_copy(update={"dataset": "world_qa", "path": None, "fields": {}})
    return cfg.model_copy(update={"ppo": ppo, "data": data})


def sft_model(cfg: ExperimentConfig, strategy: str) -> tuple[Path, bool]:
    """The short-QA SFT model of `strategy` (trained now when missing); and whether it was reused."""
    from halluray.stages import sft

    scfg = cfg.model_copy(update={"sft": cfg.sft.model_copy(update={"strategy": strategy, "task": "short_qa"})})
    path = sft.sft_dir(scfg) / "model"
    if (path / "config.json").is_file():
        return path, True
    sft.run(scfg)
    return path, False


def ppo_curve(cfg: ExperimentConfig, name: str) -> dict:
    """Mean training reward of the first and last PPO iterations of run `name` (from metrics.jsonl)."""
    rows = [r for r in read_jsonl(cfg.run_dir / "metrics.jsonl") if r.get("stage") == name and "reward_mean" in r]
    rows = rows[-cfg.ppo.steps:]
    if not rows:
        return {}
    k = max(1, len(rows) // 5)
    mean = lambda xs: round(sum(xs) / len(xs), 3)  # noqa: E731
    return {"reward_first": mean([r["reward_mean"] for r in rows[:k]]),
            "reward_last": mean([r["reward_mean"] for r in rows[-k:]]), "iterations_averaged": k,
            "kl_last": rows[-1].get("kl")}


def _distribution(model_dir: Path, items: list[dict], edges: list[float], cfg: ExperimentConfig, checker,
                  scheme) -> tuple[dict, list[list[str]], list[list[str]]]:
    from halluray.factuality.rewards import short_answer_reward
    from halluray.stages.qa_experiment import answer_items

    k = cfg.eval.samples_per_prompt
    answers = answer_items(model_dir, items, cfg)
    flat_items = [i for i in items for _ in range(k)]
    flat = [a for per_item in answers for a in per_item]
    dist = qa_distribution(flat_items, flat, [i["score"] for i in flat_items], checker.check_answer, edges=edges)
    labels = [[checker.check_answer(i["name"], i["attribute"], a) for a in per_item]
              for i, per_item in zip(items, answers)]
    rewards = [short_answer_reward(label, scheme) for per_item in labels for label in per_item]
    out = {"bins": dist["bins"], **{label: dist[label] for label in LABELS}, "samples": dist["counts"],
           "overall": {label: sum(x == label for row in labels for x in row) / len(rewards) for label in LABELS},
           "mean_reward": sum(rewards) / len(rewards)}
    return out, answers, labels


def run(cfg: ExperimentConfig, strategies: tuple[str, ...] = STRATEGIES,
        control: tuple[str, ...] = CONTROL_STRATEGIES) -> dict:
    from halluray.driver import _scheme, run_ppo
    from halluray.stages.qa_experiment import heldout_items
    from halluray.world.checker import FactChecker
    from halluray.world.entities import World

    _, metrics = prepare(cfg, "qa-rl")
    t0 = time.time()
    with metrics:
        world = World.load(require(world_dir(cfg) / "world.json", "world"))
        checker = FactChecker(world)
        items, n_scored_here = heldout_items(cfg, world)
        scores = [i["score"] for i in items]
        edges, method = bucket_edges(scores, N_BINS)
        runs = plan_runs(cfg, strategies, control)
        results: dict = {"runs": {}, "sft": {}}
        answer_rows: list[dict] = []
        for strategy in dict.fromkeys(r["strategy"] for r in runs):
            t = time.time()
            path, reused = sft_model(cfg, strategy)
            dist, answers, labels = _distribution(path, items, edges, cfg, checker, _scheme(cfg))
            results["sft"][strategy] = {**dist, "model": str(path), "reused": reused,
                                        "seconds": round(time.time() - t, 1)}
            answer_rows += _rows("sft", strategy, items, answers, labels)
            _print(f"sft {strategy}", dist)
        for r in runs:
            pcfg = ppo_config(cfg, r)
            t = time.time()
            run_ppo(pcfg, policy_init=results["sft"][r["strategy"]]["model"], out_name=r["name"])
            ppo_seconds = round(time.time() - t, 1)
            dist, answers, labels = _distribution(cfg.run_dir / r["name"] / "model", items, edges, cfg, checker,
                                                  _scheme(pcfg))
            results["runs"][r["key"]] = {**dist, "init": r["strategy"], "abstain_reward": r["abstain"],
                                         "model": str(cfg.run_dir / r["name"] / "model"),
                                         "ppo_seconds": ppo_seconds, **ppo_curve(cfg, r["name"])}
            answer_rows += _rows("rl", r["key"], items, answers, labels)
            metrics.log("qa-rl", run=r["key"],
                        **{f"{label}/bin{b}": v for label in LABELS for b, v in enumerate(dist[label])})
            _print(f"rl {r['key']}", dist)
        rw = cfg.ppo.reward
        results.update({"edges": edges, "bin_method": method, "counts": bin_counts(scores, edges),
                        "n_items": len(items), "n_scored_here": n_scored_here,
                        "samples_per_prompt": cfg.eval.samples_per_prompt, "temperature": cfg.eval.temperature,
                        "reward": {"correct": rw.correct, "incorrect": rw.incorrect, "abstain": rw.abstain},
                        "ppo": {k: getattr(cfg.ppo, k) for k in ("steps", "batch_size", "minibatch_size",
                                                                 "ppo_epochs", "cliprange", "kl_coef")}
                        | {"lr": cfg.ppo.policy_optimizer.lr, "max_new_tokens": PPO_MAX_NEW_TOKENS},
                        "score": f"short_qa: incorrect of {cfg.unfamiliarity.short_qa_samples} few-shot samples",
                        "seconds": round(time.time() - t0, 1)})
        with atomic_dir(output_dir(cfg)) as tmp:
            atomic_write_json(tmp / "results.json", results)
            write_jsonl(tmp / "answers.jsonl", answer_rows)
            write_jsonl(tmp / "heldout_items.jsonl", items)
            figure(results, tmp / "rl_short_qa.png")
    print(f"qa-rl: {len(items)} held-out items, buckets {results['counts']} ({method} edges {edges}); "
          f"results in {output_dir(cfg)} ({results['seconds']} s)")
    return results


def _rows(phase: str, key: str, items: list[dict], answers, labels) -> list[dict]:
    return [{"phase": phase, "model": key, "name": i["name"], "attribute": i["attribute"], "score": i["score"],
             "answers": a, "labels": lab} for i, a, lab in zip(items, answers, labels)]


def _print(what: str, dist: dict) -> None:
    print(f"qa-rl [{what}]: " + "; ".join(
        f"{b} ({n} answers): " + " ".join(f"{label} {dist[label][j]:.2f}" for label in LABELS)
        for j, (b, n) in enumerate(zip(dist["bins"], dist["samples"]))) + f"; mean reward {dist['mean_reward']:.2f}")


def figure(results: dict, path: Path) -> None:
    """Top row: the SFT model each run starts from; bottom row: after PPO. Stacked label fractions per bucket."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from halluray.stages.qa_experiment import _COLORS

    keys = list(results["runs"])
    fig, axes = plt.subplots(2, len(keys), figsize=(3.6 * len(keys), 6.6), squeeze=False, sharey=True)
    for col, key in enumerate(keys):
        run = results["runs"][key]
        for row, (r, title) in enumerate(((results["sft"][run["init"]], f"SFT {run['init']}"),
                                          (run, f"RL from {run['init']}\nabstain reward {run['abstain_reward']:g}"))):
            ax = axes[row][col]
            x = list(range(len(r["bins"])))
            bottom = [0.0] * len(x)
            for label in LABELS:
                values = [v or 0.0 for v in r[label]]
                ax.bar(x, values, bottom=bottom, color=_COLORS[label], label=label, width=0.7)
                bottom = [b + v for b, v in zip(bottom, values)]
            ax.set_xticks(x, [f"{b}\nn={n}" for b, n in zip(r["bins"], results["counts"])], fontsize=7)
            ax.set_title(title, fontsize=9)
            ax.set_ylim(0, 1)
            if row == 1:
                ax.set_xlabel("unfamiliarity (short-QA score) →", fontsize=8)
    axes[0][0].set_ylabel("fraction of answers (before RL)")
    axes[1][0].set_ylabel("fraction of answers (after RL)")
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=len(LABELS), fontsize=8, frameon=False)
    fig.suptitle("RL on short QA (reward +2 correct / -3 incorrect / abstain as titled): held-out answers by "
                 f"unfamiliarity; n = queries, {results['samples_per_prompt']} samples each", fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
