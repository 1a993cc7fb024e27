"""The demo's steps and report, shared by `halluray demo`, its `--seeds` run and `halluray sweep`.

world -> unfamiliarity -> sft -> reward-data of conservative and standard -> for each of them: train-rm -> ppo with
that RM; then eval-rm -> eval -> report (runs/<name>/report.md, results.json, PNG plots).
"""

from __future__ import annotations

import json
from functools import partial

from halluray.campaigns.shared.campaign import copy_figures
from halluray.config import ExperimentConfig, RewardDataConfig
from halluray.eval.report import build_results, fig6, render
from halluray.io import atomic_write_json, atomic_write_text
from halluray.layout import RunLayout
from halluray.pipeline import eval_rm, evaluate, reward_data, sft, train_rm, unfamiliarity, world
from halluray.pipeline.shared.steps import Step
from halluray.trainers.ppo_run import run_ppo

SOURCES = ("conservative", "standard")
"""The reward-data sources of the two RL arms."""


def _with(cfg: ExperimentConfig, section: str, **update) -> ExperimentConfig:
    return cfg.model_copy(update={section: getattr(cfg, section).model_copy(update=update)})


def _source_cfg(cfg: ExperimentConfig, source: str) -> ExperimentConfig:
    """The config of one source's reward data and RM. What shapes only the independent source (the oracle's
    accuracy, the generator) is reset for the conservative arm, whose data are the SFT model's own samples, so
    changing it does not redo that arm."""
    if source == "standard":
        return _with(cfg, "reward_data", source=source)
    defaults = RewardDataConfig()
    independent = {k: getattr(defaults, k) for k in ("standard_source", "generator_documents", "generator_steps",
                                                     "generator_lr", "source_accuracy")}
    return _with(cfg, "reward_data", source=source, **independent)


def _ppo_cfg(cfg: ExperimentConfig, source: str) -> ExperimentConfig:
    layout = RunLayout(cfg)
    reward = cfg.ppo.reward.model_copy(update={"kind": "model", "target": str(layout.rm_dir(source))})
    return _with(cfg, "ppo", name=layout.ppo_name_with_rm(source), reward=reward)


def demo_steps(cfg: ExperimentConfig) -> list[Step]:
    """The demo's steps, each with the config sections and the steps its output depends on."""
    steps = [Step("world", world.run, cfg, ("seed", "world", "model")),
             Step("unfamiliarity", unfamiliarity.run, cfg, ("unfamiliarity",), ("world",)),
             Step("sft", sft.run, _with(cfg, "sft", strategy="standard", task="long_form"),
                  ("sft", "deepspeed", "actors"), ("world", "unfamiliarity"))]
    source_cfgs = {source: _source_cfg(cfg, source) for source in SOURCES}
    steps += [Step(f"reward-data-{source}", reward_data.run, c, ("reward_data",), ("world", "sft"))
              for source, c in source_cfgs.items()]
    ppo_runs = []
    for source, c in source_cfgs.items():
        # A shared decomposer is fitted on both sources' responses: each RM then depends on both.
        data = tuple(f"reward-data-{s}" for s in (SOURCES if cfg.reward_model.shared_decomposer else (source,)))
        ppo_name = RunLayout.ppo_name_with_rm(source)
        ppo_runs.append(ppo_name)
        # A PPO step runs again only when its inputs changed: then its old directory is replaced on purpose.
        steps += [Step(f"train-rm-{source}", train_rm.run, c, ("reward_model",), data),
                  Step(ppo_name, partial(run_ppo, overwrite=True), _ppo_cfg(cfg, source), ("ppo", "lora"),
                       ("sft", f"train-rm-{source}"))]
    steps += [Step("eval-rm", eval_rm.run, cfg, ("reward_data", "eval"),
                   ("unfamiliarity", "sft", *(f"train-rm-{s}" for s in SOURCES))),
              Step("eval", evaluate.run, cfg, ("eval",), ("unfamiliarity", "sft", *ppo_runs))]
    return steps


def demo_report(cfg: ExperimentConfig, wall: dict[str, float], elapsed: float) -> dict:
    """results.json, report.md and figures 5-7 from what eval-rm and eval wrote; the headline on stdout."""
    layout = RunLayout(cfg)
    evaluation = json.loads((layout.eval_dir / "results.json").read_text())
    rm_eval = json.loads((layout.rm_eval_dir / "results.json").read_text())
    results = build_results(evaluation, rm_eval, cfg.seed, wall, cfg.reward_model.kind)
    atomic_write_json(layout.results, results)
    fig6(results, layout.figure("fig6"))
    copy_figures({layout.rm_eval_dir / "fig5.png": layout.figure("fig5"),
                  layout.eval_dir / "fig7.png": layout.figure("fig7")})
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
