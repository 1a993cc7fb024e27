"""Every path of a run directory, defined once. Stages, experiments, campaigns, trainers and reports ask
`RunLayout`; they never build a path themselves or ask another module where it wrote.

    runs/<run.name>/
      config.<stage>.yaml   metrics.jsonl   stamps/        resolved configs, all metrics, step fingerprints
      world/                the world file, corpus.txt, prompts_<split>.jsonl, qa.jsonl, mcq.jsonl
      base_model/           the pretrained base model (or model.pretrained_path)
      base_model-letters/   a copy with the answer letters' words in its vocabulary (mcq-letters)
      unfamiliarity/        unfamiliarity.jsonl, summary.json, histogram.png
      sft[-<task>-<strategy>]/model        reward-data/<source>.jsonl   rm-<source>/
      <ppo.name>/           config.yaml, checkpoints/step_*/, model/
      eval/  rm_eval/  qa_experiment/  qa_rl/  mcq_experiment/  mcq_letters/  mcq_rl/  qa_rm/   results, figures
      results.json  report.md  *.png   a campaign's report;  summary.*  qa-summary.*  sweep/   over seeds, a sweep
      seed-<s>/             one seed's whole run directory (`--seeds`)
"""

from __future__ import annotations

from pathlib import Path

from halluray.config import ExperimentConfig
from halluray.config.inputs import WORLD_DATASETS as WORLD_DATASETS  # re-exported: the stages read it here
from halluray.errors import InputError

WORLD_DIR = "world"
"""The world stage's directory inside a run directory."""
WORLD_FILE = "world.json"
"""The world's people and facts, inside the world directory."""
CORPUS_FILE = "corpus.txt"
"""The pretraining corpus, one document a line, inside the world directory (SFT replays from it)."""
REWARD_SOURCES = ("conservative", "standard")
"""`reward_data.source` values: whose responses an RM is trained on."""
RM_FILE = "rm.json"
"""A reward-model directory's description (its kind and reward scheme), written by `train-rm`."""


class RunLayout:
    def __init__(self, cfg: ExperimentConfig):
        self.run_dir = cfg.run_dir
        self._pretrained = cfg.model.pretrained_path
        self._sft = (cfg.sft.strategy, cfg.sft.task)
        self._source = cfg.reward_data.source

    # -- the run directory ---------------------------------------------------------------------------

    @property
    def metrics(self) -> Path:
        return self.run_dir / "metrics.jsonl"

    def stage_config(self, stage: str) -> Path:
        return stage_config_file(self.run_dir, stage)

    def stamp(self, step: str) -> Path:
        """A campaign step's fingerprint and seconds (halluray/pipeline/shared/steps.py)."""
        return self.run_dir / "stamps" / f"{step}.json"

    def seed_dir(self, seed: int) -> Path:
        """One seed's whole run directory inside a `--seeds` run's."""
        return self.run_dir / f"seed-{seed}"

    def campaign_file(self, name: str) -> Path:
        """A campaign's own output beside its steps' (summary.md, qa-summary.json, seeds.png)."""
        return self.run_dir / name

    @property
    def sweep_dir(self) -> Path:
        return self.run_dir / "sweep"

    # -- world and base model ------------------------------------------------------------------------

    @property
    def world_dir(self) -> Path:
        return self.run_dir / WORLD_DIR

    @property
    def world_json(self) -> Path:
        return self.world_dir / WORLD_FILE

    @property
    def world_corpus(self) -> Path:
        return self.world_dir / CORPUS_FILE

    @property
    def world_qa_items(self) -> Path:
        return self.world_dir / "qa.jsonl"

    @property
    def world_mcq_items(self) -> Path:
        return self.world_dir / "mcq.jsonl"

    @property
    def base_model(self) -> Path:
        return Path(self._pretrained) if self._pretrained else self.run_dir / "base_model"

    @property
    def letters_base_model(self) -> Path:
        """The base model with the words of MMLU-style letter prompts added to its vocabulary (mcq-letters)."""
        return self.run_dir / "base_model-letters"

    @property
    def fact_checker_cache(self) -> Path:
        """Replies of an HTTP fact checker, by request (re-running a stage re-sends nothing)."""
        return self.run_dir / "fact_checker_cache.jsonl"

    # -- unfamiliarity, SFT, reward models -----------------------------------------------------------

    @property
    def unfamiliarity_dir(self) -> Path:
        return self.run_dir / "unfamiliarity"

    @property
    def unfamiliarity_scores(self) -> Path:
        return self.unfamiliarity_dir / "unfamiliarity.jsonl"

    def sft_dir(self, strategy: str | None = None, task: str | None = None) -> Path:
        """The config's SFT run unless strategy/task are given; the standard long-form one is plain `sft`."""
        strategy, task = strategy or self._sft[0], task or self._sft[1]
        return self.run_dir / ("sft" if (strategy, task) == ("standard", "long_form") else f"sft-{task}-{strategy}")

    def sft_model(self, strategy: str | None = None, task: str | None = None) -> Path:
        return self.sft_dir(strategy, task) / "model"

    def reward_data(self, source: str | None = None) -> Path:
        return self.run_dir / "reward-data" / f"{source or self._source}.jsonl"

    def rm_dir(self, source: str | None = None) -> Path:
        return self.run_dir / f"rm-{source or self._source}"

    @property
    def shared_decomposer(self) -> Path:
        """The decomposer both text RMs copy (`reward_model.shared_decomposer`)."""
        return self.run_dir / "decomposer"

    @property
    def generator_model(self) -> Path:
        """The world's independent generator (the standard RM's response source, reward-data)."""
        return self.run_dir / "reward-data" / "generator"

    # -- PPO -----------------------------------------------------------------------------------------

    def ppo_dir(self, name: str) -> Path:
        return self.run_dir / name

    def ppo_checkpoints(self, name: str) -> Path:
        return self.ppo_dir(name) / "checkpoints"

    def ppo_placement(self, name: str) -> Path:
        """Which node holds each rank of each group of the run's current attempt (rewritten on a restart)."""
        return self.ppo_dir(name) / "placement.json"

    def ppo_model(self, name: str) -> Path:
        return self.ppo_dir(name) / "model"

    @staticmethod
    def ppo_name_with_rm(source: str) -> str:
        """The PPO run against the reward model trained on `source` data (the demo's two RL runs)."""
        return f"ppo-{source}-rm"

    def default_policy_init(self) -> Path:
        """PPO starts from the run's standard long-form SFT model when there is one, else the base model."""
        sft = self.sft_model("standard", "long_form")
        return sft if sft.is_dir() else self.base_model

    # -- evaluations ---------------------------------------------------------------------------------

    @property
    def eval_dir(self) -> Path:
        return self.run_dir / "eval"

    @property
    def rm_eval_dir(self) -> Path:
        return self.run_dir / "rm_eval"

    @property
    def qa_experiment_dir(self) -> Path:
        return self.run_dir / "qa_experiment"

    @property
    def qa_rl_dir(self) -> Path:
        return self.run_dir / "qa_rl"

    @property
    def mcq_experiment_dir(self) -> Path:
        return self.run_dir / "mcq_experiment"

    @property
    def mcq_letters_dir(self) -> Path:
        return self.run_dir / "mcq_letters"

    @property
    def mcq_rl_dir(self) -> Path:
        return self.run_dir / "mcq_rl"

    @property
    def qa_rm_dir(self) -> Path:
        return self.run_dir / "qa_rm"

    # -- the demo's report ---------------------------------------------------------------------------

    @property
    def results(self) -> Path:
        return self.run_dir / "results.json"

    @property
    def report(self) -> Path:
        return self.run_dir / "report.md"

    def figure(self, name: str) -> Path:
        return self.run_dir / f"{name}.png"


def stage_config_file(run_dir: Path, stage: str) -> Path:
    """The resolved config a stage ran with (what `--resume` reads back)."""
    return run_dir / f"config.{stage}.yaml"


def require(path: Path, stage: str) -> Path:
    """`path`, or an error telling which stage writes it."""
    if not path.exists():
        raise InputError(f"{path} does not exist: run `halluray {stage}` with this config first")
    return path
