"""What each `halluray <stage>` reads that must already exist, and which roles it places at once (its phases).

The inputs follow halluray/stages/*.py. What an earlier stage of the same command writes is not checked:
`demo` writes everything itself and `plan` describes the whole pipeline, so both check only what no stage
writes (model.pretrained_path, data.path, and paths outside the run directory) and plan the models from the
base model's shape (an SFT, PPO or reward model has its base model's shape, give or take a head).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Callable

from halluray.config import ExperimentConfig
from halluray.data.source import looks_like_path
from halluray.data.world import world_prompt_files
from halluray.data.world_qa import find_world_file
from halluray.errors import InputError
from halluray.factuality.reward_functions import import_callable
from halluray.layout import WORLD_DATASETS, RunLayout, require
from halluray.preflight.memory import PROMPT_TOKENS
from halluray.preflight.models import ModelShape, planned_base_model, read_model
from halluray.world.build import make_world
from halluray.world.vocab import ATTRIBUTES

RM_FILE = "rm.json"
"""A reward-model directory's metadata (halluray/reward_models/models.py; importing it costs seconds of torch)."""
RM_KINDS = ("two-stage", "two-stage-text", "scalar")
PPO_WITH_RM = ("standard", "conservative")
"""The reward-data sources of the demo's two PPO runs, whose models `halluray eval` compares."""


@dataclass(frozen=True)
class Use:
    """One role in a phase: the model its actors hold and the work they do with it."""

    role: str
    """A `Role` value of actors/roles.py, which is not imported here: it imports Ray, DeepSpeed and transformers
    (seconds), and a preflight must fail fast."""
    model: ModelShape | None
    """None: a reward role scoring with a checker or a callable (no weights)."""
    work: str
    """train (DeepSpeed ranks), generate (rollout) or forward (reference log-probs, reward-model scores)."""
    batch: int | None
    """train: the global batch that splits over ranks x accumulation; otherwise the sequences the group
    processes in one call. None: known only once the data is read."""
    batch_key: str
    seq: int
    """Tokens per sequence (an estimate: PROMPT_TOKENS plus the generated tokens, within the model's context)."""
    adapters: int = 0
    """LoRA parameters on top of the model (the policy and its rollout copy with lora.enabled)."""


@dataclass(frozen=True)
class Phase:
    """Roles one stage places at the same time."""

    name: str
    uses: tuple[Use, ...]


def _seq(model: ModelShape, new_tokens: int) -> int:
    wanted = PROMPT_TOKENS + new_tokens
    return min(wanted, model.context) if model.context else wanted


def _written(base: ModelShape, path: Path | str, stage: str) -> ModelShape:
    """The model `stage` of this command writes to `path`, trained from (so shaped like) `base`."""
    return replace(base, where=f"{path} (written by {stage}, shaped like the base model)")


def _outside(path: str, run_dir: Path) -> bool:
    """A path no stage of this run writes (stages write only under the run directory)."""
    return not Path(path).expanduser().resolve().is_relative_to(run_dir.resolve())


class Inputs:
    """One config's inputs, checked on demand; `notes` says what could not be checked or is estimated."""

    def __init__(self, cfg: ExperimentConfig):
        self.cfg, self.layout, self.notes = cfg, RunLayout(cfg), []

    # -- models ---------------------------------------------------------------------------------------

    def base_model(self) -> ModelShape:
        """The base model, which must exist: model.pretrained_path, or the run's own from `halluray world`."""
        if self.cfg.model.pretrained_path:
            return read_model(self.layout.base_model, "model.pretrained_path",
                              "set model.pretrained_path to a local Hugging Face model directory, or remove it to "
                              "pretrain the tiny base model with `halluray world`")
        return read_model(self.layout.base_model, None, "run `halluray world` with this config first")

    @cached_property
    def planned_base(self) -> ModelShape:
        """The base model of a command that may build it: model.pretrained_path, else the GPT-2 of `model.*`."""
        if self.cfg.model.pretrained_path:
            return self.base_model()
        return planned_base_model(self.cfg)

    def sft_model(self) -> ModelShape:
        return read_model(self.layout.sft_model("standard", "long_form"), None,
                          "run `halluray sft` (sft.strategy=standard, sft.task=long_form) with this config first")

    def policy_init(self) -> ModelShape:
        """ppo.init_model, else the run's standard SFT model, else its base model (`RunLayout.default_policy_init`)."""
        if self.cfg.ppo.init_model:
            return read_model(Path(self.cfg.ppo.init_model).expanduser(), "ppo.init_model",
                              "set ppo.init_model to a model directory (such as an SFT run's model/), or remove it "
                              "to start from this run's SFT model")
        if self.layout.default_policy_init() != self.layout.base_model:
            return read_model(self.layout.default_policy_init(), None, "run `halluray sft` with this config first")
        if self.cfg.model.pretrained_path:
            return self.base_model()
        return read_model(self.layout.base_model, None,
                          "PPO starts from ppo.init_model, else this run's SFT model, else its base model, and none "
                          "exists: run `halluray world` and `halluray sft` with this config first, or set "
                          "ppo.init_model")

    def planned_policy_init(self) -> ModelShape:
        """The PPO init of a command that writes its own SFT model: ppo.init_model only when no stage writes it."""
        init = self.cfg.ppo.init_model
        if init and (_outside(init, self.layout.run_dir) or Path(init).is_dir()):
            return self.policy_init()
        return self.planned_sft

    @property
    def planned_sft(self) -> ModelShape:
        return _written(self.planned_base, self.layout.sft_model("standard", "long_form"), "sft")

    def reward_model(self, path: Path) -> ModelShape:
        """The reward model ppo.reward.target names: a model and rm.json (`halluray train-rm` writes both)."""
        fix = "point it at a directory `halluray train-rm` wrote (run_dir/rm-<reward_data.source>)"
        where = f"ppo.reward.target: {path}"
        if not path.is_dir():
            raise InputError(f"{where} is not a directory; {fix}")
        try:
            kind = json.loads((path / RM_FILE).read_text()).get("kind")
        except FileNotFoundError:
            raise InputError(f"{where} is not a reward-model directory (no {RM_FILE}); {fix}") from None
        except (ValueError, UnicodeDecodeError, AttributeError) as e:
            raise InputError(f"{where}: {RM_FILE} is not a JSON object ({e}); {fix}") from None
        if kind not in RM_KINDS:
            raise InputError(f"{where}: {RM_FILE} names reward-model kind {kind!r}, not one of {RM_KINDS}; {fix}")
        if kind == "two-stage-text":
            self.notes.append("reward: the text RM's verifier (same size as its decomposer) is not in the estimate")
            return read_model(path / "decomposer", "ppo.reward.target", fix)
        shape = read_model(path, "ppo.reward.target", fix)
        return shape if kind == "two-stage" else replace(shape, logits=False)

    def planned_reward_model(self, base: ModelShape) -> ModelShape:
        """The reward model `halluray train-rm` will train from the base model (reward_model.kind)."""
        return base if self.cfg.reward_model.kind in ("two-stage", "two-stage-text") else base.with_value_head()

    def ppo_reward(self, *, planned: bool) -> ModelShape | None:
        """Check what PPO scores with (ppo.reward) and return the reward model's shape (None: no weights). A planned
        command does not check what a stage of this run writes."""
        r, run_dir = self.cfg.ppo.reward, self.layout.run_dir
        if r.kind == "callable":
            if not r.target:
                raise InputError("ppo.reward.target must be set for reward kind 'callable': an import path "
                                 "'package.module:function' taking (prompts, responses, topics)")
            try:
                import_callable(r.target)
            except InputError as e:
                raise InputError(f"ppo.reward.target: {e}; make the module importable here and on every node "
                                 f"(installed, or on PYTHONPATH)") from None
            return None
        target = Path(r.target).expanduser() if r.target else None
        written_here = planned and target is not None and not _outside(r.target, run_dir)
        if r.kind in ("fact_checker", "qa_checker"):
            if target is None and not planned:
                self.checker()
            elif target is not None and not written_here and not target.is_file():
                raise InputError(f"ppo.reward.target: {target} is not a file; point it at a world file "
                                 f"(run_dir/world/world.json), or remove it to use this run's world")
            return None
        if target is None:
            raise InputError("ppo.reward.target must be set for reward kind 'model': the reward-model directory "
                             "`halluray train-rm` writes (run_dir/rm-<reward_data.source>)")
        if written_here and not target.is_dir():
            return _written(self.planned_reward_model(self.planned_base), target, "train-rm")
        return self.reward_model(target)

    # -- data ---------------------------------------------------------------------------------------

    def prompts(self, split: str, *, planned: bool = False) -> None:
        """The prompt source of pipeline split `split` exists (as `halluray.data.prompts_for` reads it)."""
        d = self.cfg.data
        if d.dataset in WORLD_DATASETS:
            if planned and not d.path:
                return  # the world stage of this command writes it
            try:
                if d.dataset == "world":
                    world_prompt_files(d.path or self.layout.world_dir, split)
                else:
                    find_world_file(d.path or self.layout.run_dir)
            except InputError as e:
                raise InputError(f"data.path: {e}" if d.path else str(e)) from None
            return
        if not d.path:
            raise InputError(f"data.path must be set for dataset '{d.dataset}': a local data file ('{{split}}' in "
                             f"it becomes the split's name) or a directory")
        if d.dataset == "fact_table" and d.path.startswith("builtin:"):
            return  # generated from an installed package when read
        local = Path(d.path.replace("{split}", d.split_map.get(split, split))).expanduser()
        if local.exists():
            return
        if looks_like_path(d.path):
            raise InputError(f"data.path: {local} (split '{split}') does not exist; point data.path at a local file "
                             f"or directory, or map the split onto an existing one with data.split_map")
        self.notes.append(f"data.path {d.path!r} is not a local path, so it is read as a hub dataset name: that needs "
                          f"the hub or a populated datasets cache (not checked)")

    @cached_property
    def _world(self):
        return make_world(self.cfg)

    def prompt_count(self, split: str) -> int | None:
        """Prompts of `split` in this config's world (all six questions per person for world_qa); None for
        other data, whose size is known only once it is read."""
        d = self.cfg.data
        if d.dataset not in WORLD_DATASETS or d.path:
            return None
        return len(self._world.split(split)) * (len(ATTRIBUTES) if d.dataset == "world_qa" else 1)

    # -- phases -------------------------------------------------------------------------------------

    def sft_phase(self, model: ModelShape) -> Phase:
        return Phase("sft", (Use("policy", model, "train", self.cfg.sft.batch_size, "sft.batch_size",
                                 _seq(model, 0)),))

    def sampling_phase(self, name: str, model: ModelShape, split: str, samples: int, samples_key: str,
                       new_tokens: int) -> Phase:
        """Rollout actors generating `samples` responses to every prompt of `split`, all in one call."""
        n = self.prompt_count(split)
        if n is None:
            self.notes.append(f"{name}: the rollout actors generate every prompt of the '{split}' split x "
                              f"{samples_key} in one call; its KV cache is known once the data is read")
        return Phase(name, (Use("rollout", model, "generate", n and n * samples, samples_key,
                                _seq(model, new_tokens)),))

    def train_rm_phase(self, base: ModelShape) -> Phase:
        rm = self.planned_reward_model(base)
        return Phase("train-rm", (Use("reward_trainer", rm, "train", self.cfg.reward_model.batch_size,
                                      "reward_model.batch_size", _seq(rm, self.cfg.reward_data.max_new_tokens)),))

    def ppo_phase(self, policy: ModelShape, reward: ModelShape | None, eval_sequences: int) -> Phase:
        """policy + critic + reference (none with LoRA) + reward + rollout, all placed before the first step;
        the rollout actors also generate the held-out evaluation (`eval_sequences`) in one call."""
        c, ppo = self.cfg, self.cfg.ppo
        seq = _seq(policy, ppo.max_new_tokens)
        adapters = policy.lora_params(c.lora) if c.lora.enabled else 0
        if c.lora.enabled and not adapters:
            raise InputError(f"lora.target_modules {c.lora.target_modules} match no weight of {policy.where}; name "
                             f"its linear layers (GPT-2: c_attn; Llama: q_proj, v_proj)")
        uses = [Use("policy", policy, "train", ppo.minibatch_size, "ppo.minibatch_size", seq, adapters),
                Use("critic", policy.with_value_head(), "train", ppo.minibatch_size, "ppo.minibatch_size", seq)]
        if not c.lora.enabled:  # with LoRA the policy without its adapter is the reference
            uses.append(Use("reference", policy, "forward", ppo.batch_size, "ppo.batch_size", seq))
        uses.append(Use("reward", reward, "forward", ppo.batch_size, "ppo.batch_size", seq))
        rollout_batch, key = ((eval_sequences, "eval.samples_per_prompt") if eval_sequences > ppo.batch_size
                              else (ppo.batch_size, "ppo.batch_size"))
        if c.actors.rollout_mode != "colocated":  # colocated: the policy ranks generate, no rollout actors
            uses.append(Use("rollout", policy, "generate", rollout_batch, key, seq, adapters))
        return Phase("ppo", tuple(uses))

    def ppo_eval_sequences(self, *, planned: bool = False) -> int:
        """Validation sequences the PPO stage generates at once: with the world's prompts only (its checker)."""
        if self.cfg.data.dataset != "world":
            return 0
        if not planned:
            require(self.layout.world_json, "world")
        self.prompts("val", planned=planned)
        return (self.prompt_count("val") or 0) * self.cfg.eval.samples_per_prompt

    # -- the stages ---------------------------------------------------------------------------------

    def world(self) -> list[Phase]:
        if self.cfg.model.pretrained_path:
            self.base_model()
        self.notes.append("world: pretraining runs in this process (no actors)")
        return []

    @property
    def world_data(self) -> bool:
        return self.cfg.data.dataset in WORLD_DATASETS

    def checker(self) -> None:
        """What the fact checker reads exists: the run's world (kind world) or the fact table."""
        fc = self.cfg.fact_checker
        if fc.kind == "world":
            if not self.world_data:
                raise InputError(f"fact_checker.kind is 'world', which checks the synthetic world's prompts only; "
                                 f"for data.dataset '{self.cfg.data.dataset}' set fact_checker.kind to qa (short "
                                 f"answers), fact_table, openai (FActScore-style) or a callable")
            require(self.layout.world_json, "world")
        elif fc.kind == "fact_table" and fc.table_path and not Path(fc.table_path).expanduser().is_file():
            raise InputError(f"fact_checker.table_path: {fc.table_path} is not a file")

    def unfamiliarity(self) -> list[Phase]:
        self.checker()
        self.base_model()
        if not self.world_data:
            for split in self.cfg.unfamiliarity.splits:
                self.prompts(split)
        self.notes.append("unfamiliarity: the base model scores prompts in this process (no actors)")
        return []

    def sft(self) -> list[Phase]:
        s, layout = self.cfg.sft, self.layout
        base = self.base_model()
        if s.task == "long_form" or not self.world_data:
            self.prompts("sft")
        else:
            require(layout.world_qa_items if s.task == "short_qa" else layout.world_mcq_items, "world")
        if s.strategy != "standard":  # which examples to relabel comes from the unfamiliarity scores
            require(layout.unfamiliarity_scores, "unfamiliarity")
        return [self.sft_phase(base)]

    def reward_data(self) -> list[Phase]:
        rd = self.cfg.reward_data
        self.checker()
        self.prompts("rm")
        if rd.source == "standard":
            if not self.world_data and self.cfg.fact_checker.kind != "openai":
                raise InputError("reward_data.source=standard on real data writes its responses with the fact "
                                 "checker's chat model: set fact_checker.kind=openai (or use source=conservative)")
            self.notes.append("reward-data: the standard source is independent of the policy (the world's source "
                              "or the fact checker's chat model; no actors)")
            return []
        return [self.sampling_phase("reward-data", self.sft_model(), "rm", rd.samples_per_prompt,
                                    "reward_data.samples_per_prompt", rd.max_new_tokens)]

    def train_rm(self) -> list[Phase]:
        require(self.layout.reward_data(), "reward-data")
        return [self.train_rm_phase(self.base_model())]

    def eval_rm(self) -> list[Phase]:
        rd = self.cfg.reward_data
        require(self.layout.unfamiliarity_scores, "unfamiliarity")
        self.checker()
        self.prompts("eval")
        self.notes.append("eval-rm: the reward models score in this process")
        return [self.sampling_phase("eval-rm", self.sft_model(), "eval", rd.samples_per_prompt,
                                    "reward_data.samples_per_prompt", rd.max_new_tokens)]

    def ppo(self) -> list[Phase]:
        policy = self.policy_init()
        reward = self.ppo_reward(planned=False)
        self.prompts("ppo")
        return [self.ppo_phase(policy, reward, self.ppo_eval_sequences())]

    def eval(self) -> list[Phase]:
        e, layout = self.cfg.eval, self.layout
        require(layout.unfamiliarity_scores, "unfamiliarity")
        self.checker()
        self.prompts("eval")
        sft = self.sft_model()
        missing = [layout.ppo_name_with_rm(source) for source in PPO_WITH_RM  # halluray/stages/evaluate.py
                   if not (layout.ppo_model(layout.ppo_name_with_rm(source)) / "config.json").is_file()]
        if missing:
            self.notes.append(f"eval: no {' or '.join(missing)} model in this run directory; SFT and the RL runs "
                              f"that exist are evaluated")
        return [self.sampling_phase("eval", sft, "eval", e.samples_per_prompt, "eval.samples_per_prompt",
                                    self.cfg.ppo.max_new_tokens)]

    def _qa_or_mcq(self, task: str, *, planned: bool = False) -> ModelShape:
        """The held-out items need the world (or, on real data, the eval prompts), the stored scores of `task`
        (unless this command writes them) and the base model (to score the rest)."""
        layout = self.layout
        self.checker()
        if not planned:
            require(layout.unfamiliarity_scores, "unfamiliarity")
        if not self.world_data:
            if task != "short_qa":
                raise InputError(f"the {task} experiment runs on the world only; real data has short QA "
                                 f"(data.dataset fact_table or triviaqa)")
            self.prompts("sft")
            self.prompts("eval")
        else:
            require(layout.world_qa_items if task == "short_qa" else layout.world_mcq_items, "world")
        self.notes.append(f"{task} answers are sampled and scored in this process")
        return self.base_model()

    def qa_experiment(self) -> list[Phase]:
        return [self.sft_phase(self._qa_or_mcq("short_qa"))]

    def mcq_experiment(self) -> list[Phase]:
        return [self.sft_phase(self._qa_or_mcq("mcq"))]

    def _rl(self, task: str, stage: str) -> list[Phase]:
        base = self._qa_or_mcq(task)
        self.notes.append(f"{stage}: its PPO runs generate one-word answers (halluray/stages/qa_rl.py sets their "
                          "max_new_tokens); the plan sizes them with this config's ppo.max_new_tokens")
        # Each PPO run starts from a short-QA or MCQ SFT model (the base model's shape) and scores with the
        # world's answer checker; its prompts are world_qa (no held-out generation on the rollout actors).
        return [self.sft_phase(base), self.ppo_phase(base, None, 0)]

    def qa_rl(self) -> list[Phase]:
        return self._rl("short_qa", "qa-rl")

    def mcq_rl(self) -> list[Phase]:
        return self._rl("mcq", "mcq-rl")

    def qa_rm(self) -> list[Phase]:
        # One verifier per task and training distribution, one after another on the reward-trainer ranks.
        for task in ("short_qa", "mcq"):
            base = self._qa_or_mcq(task)
        return [self.train_rm_phase(base)]

    def demo_real(self) -> list[Phase]:
        # unfamiliarity -> qa-experiment -> qa-rl, all on this config (halluray/stages/demo_real.py)
        if self.world_data:
            raise InputError("demo-real runs on real data: set data.dataset (e.g. fact_table) and "
                             "model.pretrained_path; `halluray demo` is the synthetic world's demo")
        for split in self.cfg.unfamiliarity.splits:
            self.prompts(split)
        base = self._qa_or_mcq("short_qa", planned=True)
        self.prompts("ppo")
        return [self.sft_phase(base), self.ppo_phase(base, None, 0)]

    def _pipeline(self, reward: ModelShape | None, conservative_data: bool) -> list[Phase]:
        """sft -> reward-data -> train-rm -> eval-rm -> ppo -> eval, every model from the (planned) base model."""
        c, rd, base, sft = self.cfg, self.cfg.reward_data, self.planned_base, self.planned_sft
        for split in ("sft", "rm", "ppo", "eval"):
            self.prompts(split, planned=True)
        phases = [self.sft_phase(base)]
        if conservative_data:
            phases.append(self.sampling_phase("reward-data", sft, "rm", rd.samples_per_prompt,
                                              "reward_data.samples_per_prompt", rd.max_new_tokens))
        phases += [self.train_rm_phase(base),
                   self.sampling_phase("eval-rm", sft, "eval", rd.samples_per_prompt, "reward_data.samples_per_prompt",
                                       rd.max_new_tokens),
                   self.ppo_phase(self.planned_policy_init(), reward, self.ppo_eval_sequences(planned=True)),
                   self.sampling_phase("eval", sft, "eval", c.eval.samples_per_prompt, "eval.samples_per_prompt",
                                       c.ppo.max_new_tokens)]
        return phases

    def demo(self) -> list[Phase]:
        # The demo trains both reward models and runs PPO against each (halluray/stages/demo.py).
        rms = self.layout.run_dir / "rm-{standard,conservative}"
        return self._pipeline(_written(self.planned_reward_model(self.planned_base), rms, "train-rm"),
                              conservative_data=True)

    def plan(self) -> list[Phase]:
        return self._pipeline(self.ppo_reward(planned=True), self.cfg.reward_data.source == "conservative")


STAGES: dict[str, Callable[[Inputs], list[Phase]]] = {
    "world": Inputs.world, "unfamiliarity": Inputs.unfamiliarity, "sft": Inputs.sft,
    "reward-data": Inputs.reward_data, "train-rm": Inputs.train_rm, "eval-rm": Inputs.eval_rm, "ppo": Inputs.ppo,
    "eval": Inputs.eval, "qa-experiment": Inputs.qa_experiment, "qa-rl": Inputs.qa_rl,
    "mcq-experiment": Inputs.mcq_experiment, "mcq-rl": Inputs.mcq_rl, "qa-rm": Inputs.qa_rm, "demo": Inputs.demo,
    "demo-real": Inputs.demo_real, "sweep": Inputs.demo,
    "plan": Inputs.plan,
}
"""CLI stage name -> its checks and phases; `plan` checks everything that does not depend on running a stage."""
