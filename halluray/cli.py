"""`halluray <stage> --config FILE [section.key=value ...]`: one subcommand per pipeline stage."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from halluray.config import ConfigError, load_config
from halluray.errors import InputError
from halluray.layout import stage_config_file

# stage name -> (module under halluray.stages, one-line help)
STAGES: dict[str, tuple[str, str]] = {
    "world": ("world", "generate the synthetic world and pretrain the tiny base model"),
    "unfamiliarity": ("unfamiliarity", "score how unfamiliar every query is to the base model (few-shot)"),
    "sft": ("sft", "supervised finetuning on the policy actors: standard, unfamiliar-idk or random-idk targets"),
    "reward-data": ("reward_data", "label RM training responses: conservative (SFT samples) or standard (independent source)"),
    "train-rm": ("train_rm", "train a two-stage (decomposer + verifier) or scalar reward model on the critic actors"),
    "eval-rm": ("eval_rm", "reward models' predicted vs true reward by unfamiliarity on held-out SFT samples (Fig. 5)"),
    "ppo": ("ppo", "PPO on Ray actor groups (policy, critic, reference, reward, rollout) under DeepSpeed"),
    "eval": ("evaluate", "held-out factuality of SFT, RL + standard RM and RL + conservative RM (Figs. 6, 7)"),
    "qa-experiment": ("qa_experiment", "paper Fig. 2: short-QA SFT with each target strategy, answers by unfamiliarity"),
    "qa-rl": ("qa_rl", "paper Fig. 3 right: PPO on short QA from each QA SFT model; +2/-3/0 reward, -3 control"),
    "mcq-experiment": ("mcq_experiment", "paper Fig. 2 top: multiple-choice SFT with each target strategy"),
    "demo": ("demo", "the whole pipeline on the synthetic world on local Ray, with a report and plots"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="halluray",
        description="Ray-distributed RLHF for factuality finetuning. Each stage reads a config and writes "
                    "into the run directory (run.output_dir/run.name).",
    )
    sub = parser.add_subparsers(dest="stage", metavar="STAGE", required=True)
    for name, (_, help_text) in STAGES.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--config", "-c", help="YAML experiment config (defaults when omitted)")
        p.add_argument("overrides", nargs="*", metavar="section.key=value",
                       help="dotted overrides applied after the file, e.g. ppo.kl_coef=0.5")
        if name == "ppo":
            p.add_argument("--resume", metavar="RUN_DIR",
                           help="continue the run in RUN_DIR from its latest complete checkpoint")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    resume = getattr(args, "resume", None)
    try:
        if resume:
            # The run's own resolved config, relocated to wherever the run directory now is.
            run_dir = Path(resume)
            cfg = load_config(stage_config_file(run_dir, args.stage),
                              [*args.overrides, f"run.output_dir={run_dir.parent}", f"run.name={run_dir.name}"])
        else:
            cfg = load_config(args.config, args.overrides)
    except ConfigError as e:
        print(f"halluray: config error: {e}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"halluray.stages.{STAGES[args.stage][0]}")
    try:
        module.run(cfg, resume=True) if resume else module.run(cfg)
    except InputError as e:
        print(f"halluray {args.stage}: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
