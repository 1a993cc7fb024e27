"""`halluray qa-experiment --seeds 0,1,2` and `halluray qa-rl --seeds 0,1,2`: the short-QA experiments once per
seed (paper Fig. 2 bottom and Fig. 3 right), then what holds over seeds.

Each seed runs in run_dir/seed-<s>/ (campaigns/shared/seeds.py: its own world, base model, unfamiliarity scores,
SFT models and PPO runs): world -> unfamiliarity -> qa-experiment [-> qa-rl], each step reused when its config
sections and its inputs are unchanged (pipeline/shared/steps.py), so a re-run after a failure resumes where
it stopped. run_dir/qa-summary.json and qa-summary.md then say what holds over the seeds
(campaigns/shared/qa_summary.py). On real data, `halluray demo-real --seeds` does the same with a pretrained
model and no world.
"""

from __future__ import annotations

from functools import partial

from halluray import preflight
from halluray.campaigns.shared.qa_summary import summarize
from halluray.campaigns.shared.seeds import seed_config
from halluray.config import ExperimentConfig
from halluray.errors import InputError
from halluray.experiments import qa_experiment, qa_rl
from halluray.layout import WORLD_DATASETS, RunLayout
from halluray.pipeline import unfamiliarity, world
from halluray.pipeline.shared.steps import Step, run_steps

RUNNERS = {"qa-experiment": qa_experiment.run, "qa-rl": qa_rl.run}
SECTIONS = {"qa-experiment": ("sft", "eval", "data", "fact_checker", "actors", "deepspeed"),
            "qa-rl": ("ppo", "lora", "eval", "data", "fact_checker", "actors", "deepspeed")}
"""The config sections each stage's results depend on besides the world and the unfamiliarity scores."""


def seed_steps(cfg: ExperimentConfig, stage: str) -> list[Step]:
    """world -> unfamiliarity -> qa-experiment [-> qa-rl]. qa-rl follows qa-experiment so that its SFT models
    are the ones the Fig. 2 numbers describe."""
    steps = [Step("world", world.run, cfg, ("seed", "world", "model")),
             Step("unfamiliarity", unfamiliarity.run, cfg, ("unfamiliarity",), ("world",)),
             Step("qa-experiment", partial(_checked, "qa-experiment"), cfg, SECTIONS["qa-experiment"],
                  ("world", "unfamiliarity"))]
    if stage == "qa-rl":
        steps.append(Step("qa-rl", partial(_checked, "qa-rl"), cfg, SECTIONS["qa-rl"],
                          ("world", "unfamiliarity", "qa-experiment")))
    return steps


def _checked(stage: str, cfg: ExperimentConfig) -> dict:
    """The stage after its preflight, which the CLI cannot do before this seed's world and scores exist."""
    preflight.check(cfg, stage)
    return RUNNERS[stage](cfg)


def run(cfg: ExperimentConfig, seeds: list[int], stage: str) -> dict:
    if cfg.data.dataset not in WORLD_DATASETS:
        raise InputError(f"{stage} --seeds builds a world per seed, so it runs on the synthetic world only; on real "
                         f"data (data.dataset '{cfg.data.dataset}') run `halluray demo-real --seeds`")
    for i, seed in enumerate(seeds):
        scfg = seed_config(cfg, seed)
        print(f"{stage}: seed {seed} ({i + 1} of {len(seeds)}) -> {RunLayout(scfg).run_dir}")
        run_steps(scfg, seed_steps(scfg, stage), f"{stage} seed {seed}")
    return summarize(cfg, seeds, stage)


def run_qa_experiment(cfg: ExperimentConfig, seeds: list[int]) -> dict:
    """`halluray qa-experiment --seeds`."""
    return run(cfg, seeds, "qa-experiment")


def run_qa_rl(cfg: ExperimentConfig, seeds: list[int]) -> dict:
    """`halluray qa-rl --seeds`."""
    return run(cfg, seeds, "qa-rl")
