"""The demo's steps and report, shared by `halluray demo`, its `--seeds` run and `halluray sweep`.

world -> unfamiliarity -> sft -> reward-data of conservative and standard -> for each of them: train-rm -> ppo with
that RM; then eval-rm -> eval -> report (runs/<name>/report.md, results.json, PNG plots).
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

from halluray.campaigns.shared.campaign import copy_figures
from halluray.config import ExperimentConfig, RewardDataConfig
from halluray.eval.buckets import bin_of
from halluray.eval.intervals import method_intervals, overestimation_intervals
from halluray.eval.report import METHODS, WORLD_INTRO, build_results, fig6, render
from halluray.io import atomic_write_json, atomic_write_text, read_jsonl
from halluray.layout import WORLD_DATASETS, RunLayout
from halluray.pipeline import eval_rm, evaluate, reward_data, sft, train_rm, unfamiliarity, world
from halluray.pipeline.shared.long_form_heldout import long_form_scores
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


def _ppo_against_rm(cfg: ExperimentConfig, source: str) -> None:
    """PPO against `source`'s RM of this run directory. The RM's path is set here rather than in the step's
    config: the step knows its RM through its train-rm input, and a fingerprint holding the directory's place on
    disk would rerun PPO in a run directory that was only copied or moved."""
    reward = cfg.ppo.reward.model_copy(update={"kind": "model", "target": str(RunLayout(cfg).rm_dir(source))})
    run_ppo(_with(cfg, "ppo", reward=reward), overwrite=True)


def demo_steps(cfg: ExperimentConfig) -> list[Step]:
    """The demo's steps, each with the config sections and the steps its output depends on. On the world the
    first step pretrains the base model; on real data (a pretrained model, a table of entities) every step also
    reads the model, the data and the fact checker, so those sections are in each fingerprint instead."""
    if cfg.data.dataset in WORLD_DATASETS:
        base, root = (), ("world",)
        steps = [Step("world", world.run, cfg, ("seed", "world", "model"))]
    else:
        base, root, steps = ("seed", "model", "data", "fact_checker"), (), []
    # The `lora` section shapes SFT's adapters only under `sft.lora`; otherwise it leaves SFT's output alone.
    sft_lora = ("lora",) if cfg.sft.lora else ()
    steps += [Step("unfamiliarity", unfamiliarity.run, cfg, (*base, "unfamiliarity"), root),
              Step("sft", sft.run, _with(cfg, "sft", strategy="standard", task="long_form"),
                   (*base, "sft", "deepspeed", "actors", *sft_lora), (*root, "unfamiliarity"))]
    source_cfgs = {source: _source_cfg(cfg, source) for source in SOURCES}
    steps += [Step(f"reward-data-{source}", reward_data.run, c, (*base, "reward_data"), (*root, "sft"))
              for source, c in source_cfgs.items()]
    ppo_runs = []
    for source, c in source_cfgs.items():
        # A shared decomposer is fitted on both sources' responses: each RM then depends on both.
        data = tuple(f"reward-data-{s}" for s in (SOURCES if cfg.reward_model.shared_decomposer else (source,)))
        ppo_name = RunLayout.ppo_name_with_rm(source)
        ppo_runs.append(ppo_name)
        # A PPO step runs again only when its inputs changed: then its old directory is replaced on purpose.
        steps += [Step(f"train-rm-{source}", train_rm.run, c, (*base, "reward_model", "lora"), data),
                  Step(ppo_name, partial(_ppo_against_rm, source=source), _with(cfg, "ppo", name=ppo_name),
                       (*base, "ppo", "lora"), ("sft", f"train-rm-{source}"))]
    steps += [Step("eval-rm", eval_rm.run, cfg, (*base, "reward_data", "eval"),
                   ("unfamiliarity", "sft", *(f"train-rm-{s}" for s in SOURCES))),
              Step("eval", evaluate.run, cfg, (*base, "eval"), ("unfamiliarity", "sft", *ppo_runs))]
    return steps


def run_intervals(cfg: ExperimentConfig, rm_eval: dict) -> dict[str, tuple[float, float]]:
    """95% intervals of this run's comparisons by a bootstrap over its held-out entities (eval/intervals.py)."""
    layout = RunLayout(cfg)
    samples = {m: read_jsonl(layout.eval_dir / f"{m}.jsonl") for m in METHODS}
    scored = read_jsonl(layout.rm_eval_dir / "samples.jsonl")
    unfamiliarity, edges = long_form_scores(cfg), rm_eval["bins"]
    most_unfamiliar = {r["topic"] for r in scored if bin_of(unfamiliarity[r["topic"]]["score"], edges) == len(edges)}
    return {**method_intervals(samples, cfg.seed), **overestimation_intervals(scored, most_unfamiliar, cfg.seed)}


def real_intro(cfg: ExperimentConfig) -> str:
    return (f"Kang et al.'s long-form experiments on the pretrained model `{cfg.model.pretrained_path}` writing about "
            f"the entities of `{cfg.data.path}` (PPO on Ray actor groups with DeepSpeed and LoRA). Held-out "
            f"entities ({cfg.eval.split} split); each claim labelled true, false or not checkable by the "
            f"`{cfg.fact_checker.kind}` checker (a not-checkable claim earns nothing and counts in no fraction).")


def demo_report(cfg: ExperimentConfig, wall: dict[str, float], elapsed: float) -> dict:
    """results.json, report.md and figures 5-7 from what eval-rm and eval wrote; the headline on stdout."""
    layout = RunLayout(cfg)
    evaluation = json.loads((layout.eval_dir / "results.json").read_text())
    rm_eval = json.loads((layout.rm_eval_dir / "results.json").read_text())
    world = cfg.data.dataset in WORLD_DATASETS
    # On real data what the base model knows is itself a finding (on the world it is built in).
    base = None if world else json.loads((layout.unfamiliarity_dir / "summary.json").read_text()).get("long_form")
    results = build_results(evaluation, rm_eval, cfg.seed, wall, cfg.reward_model.kind, base)
    results["intervals_95"] = run_intervals(cfg, rm_eval)
    atomic_write_json(layout.results, results)
    fig6(results, layout.figure("fig6"), "halluray demo world" if world else Path(cfg.model.pretrained_path).name)
    copy_figures({layout.rm_eval_dir / "fig5.png": layout.figure("fig5"),
                  layout.eval_dir / "fig7.png": layout.figure("fig7")})
    markdown = render(results, evaluation, rm_eval, WORLD_INTRO if world else real_intro(cfg))
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
