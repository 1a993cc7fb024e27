"""`halluray demo`: the whole paper on the synthetic world, each stage reused when its inputs are unchanged.

world -> unfamiliarity -> sft -> for each of conservative and standard: reward-data -> train-rm -> ppo with that
RM; then eval-rm -> eval -> report (runs/<name>/report.md, results.json, PNG plots).
"""

from __future__ import annotations

import json
import shutil
import time
from functools import partial
from typing import Callable

from halluray.config import ExperimentConfig
from halluray.eval.report import build_results, fig6, render
from halluray.io import atomic_write_json, atomic_write_text
from halluray.layout import RunLayout
from halluray.stages import eval_rm, evaluate, reward_data, sft, train_rm, unfamiliarity, world
from halluray.stages.common import run_cached
from halluray.stages.ppo import run_ppo


def _with(cfg: ExperimentConfig, section: str, **update) -> ExperimentConfig:
    return cfg.model_copy(update={section: getattr(cfg, section).model_copy(update=update)})


def _ppo_cfg(cfg: ExperimentConfig, source: str) -> ExperimentConfig:
    layout = RunLayout(cfg)
    reward = cfg.ppo.reward.model_copy(update={"kind": "model", "target": str(layout.rm_dir(source))})
    return _with(cfg, "ppo", name=layout.ppo_name_with_rm(source), reward=reward)


def plan(cfg: ExperimentConfig) -> list[tuple[str, Callable, ExperimentConfig, tuple[str, ...]]]:
    """(stage, runner, its config, the config sections its output depends on besides its inputs)."""
    steps = [("world", world.run, cfg, ("seed", "world", "model")),
             ("unfamiliarity", unfamiliarity.run, cfg, ("unfamiliarity",)),
             ("sft", sft.run, _with(cfg, "sft", strategy="standard", task="long_form"), ("sft", "deepspeed", "actors"))]
    # Each arm whole before the other (a step reruns when any earlier step changed): a sweep over the standard
    # RM's source redoes the standard arm only. The source's accuracy does not shape the conservative arm.
    for source in ("conservative", "standard"):
        c = _with(cfg, "reward_data", source=source,
                  **({"source_accuracy": None} if source == "conservative" else {}))
        # A PPO stage runs again only when its inputs changed: then its old directory is replaced on purpose.
        steps += [(f"reward-data-{source}", reward_data.run, c, ("reward_data",)),
                  (f"train-rm-{source}", train_rm.run, c, ("reward_model",)),
                  (RunLayout.ppo_name_with_rm(source), partial(run_ppo, overwrite=True), _ppo_cfg(cfg, source),
                   ("ppo", "lora"))]
    steps.append(("eval-rm", eval_rm.run, cfg, ("reward_data",)))
    steps.append(("eval", evaluate.run, cfg, ("eval",)))
    return steps


def run(cfg: ExperimentConfig) -> dict:
    t_start = time.time()
    wall = run_cached(cfg, plan(cfg), "demo")
    return report(cfg, wall, time.time() - t_start)


def report(cfg: ExperimentConfig, wall: dict[str, float], elapsed: float) -> dict:
    layout = RunLayout(cfg)
    evaluation = json.loads((layout.eval_dir / "results.json").read_text())
    rm_eval = json.loads((layout.rm_eval_dir / "results.json").read_text())
    results = build_results(evaluation, rm_eval, cfg.seed, wall, cfg.reward_model.kind)
    atomic_write_json(layout.results, results)
    fig6(results, layout.figure("fig6"))
    shutil.copyfile(layout.rm_eval_dir / "fig5.png", layout.figure("fig5"))
    shutil.copyfile(layout.eval_dir / "fig7.png", layout.figure("fig7"))
    markdown = render(results, evaluation, rm_eval)
    atomic_write_text(layout.report, markdown)
    print()
    print(markdown.split("## Reward-model")[0].strip())
    f = results["fraction_true_facts"]
    print(f"\ndemo: report in {layout.report}, plots fig5/fig6/fig7.png; this invocation took {elapsed:.0f} s "
          f"(all stages {wall['total']:.0f} s).")
    if None not in f.values():
        print(f"demo: RL+conservative vs RL+standard {f['rl_conservative_rm'] - f['rl_standard_rm']:+.3f}, "
              f"vs SFT {f['rl_conservative_rm'] - f['sft']:+.3f}")
    return results
