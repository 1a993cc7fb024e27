"""What a config's stages read that must already exist, checked on demand: the models (base, SFT, PPO init,
reward model, as shapes read from their configs), PPO's reward, the prompt data of each split, and what the
fact checker reads. `stages.py` builds each stage's checks and phases on these.
"""

from __future__ import annotations

import json
from dataclasses import replace
from functools import cached_property
from pathlib import Path

from halluray.config import CHECKER_REWARDS, RM_KINDS, ExperimentConfig
from halluray.data.entity_table import DEFAULT_TABLE, read_entity_table
from halluray.data.source import looks_like_path
from halluray.data.world import world_prompt_files
from halluray.data.world_qa import find_world_file
from halluray.errors import InputError
from halluray.factuality.reward_functions import import_callable
from halluray.layout import RM_FILE, WORLD_DATASETS, RunLayout, require
from halluray.preflight.models import ModelShape, planned_base_model, read_model
from halluray.world.build import make_world
from halluray.world.vocab import ATTRIBUTES

TEXT_RM_NOTE = "reward: the text RM's verifier (same size as its decomposer) is not in the estimate"


def written_model(base: ModelShape, path: Path | str, stage: str) -> ModelShape:
    """The model `stage` of this command writes to `path`, trained from (so shaped like) `base`."""
    return replace(base, where=f"{path} (written by {stage}, shaped like the base model)")


def _outside(path: str, run_dir: Path) -> bool:
    """A path no stage of this run writes (stages write only under the run directory)."""
    return not Path(path).expanduser().resolve().is_relative_to(run_dir.resolve())


class RunInputs:
    """One config's inputs, checked on demand; `notes` says what could not be checked or is estimated.
    `running`: the command runs its stages, so the models' weights and tokenizers and the data files must be
    here; False for `halluray plan`, which sizes the stages from the models' configs alone."""

    def __init__(self, cfg: ExperimentConfig, *, running: bool = True):
        self.cfg, self.layout, self.notes, self.running = cfg, RunLayout(cfg), [], running

    # -- models ---------------------------------------------------------------------------------------

    def _model(self, path: Path, key: str | None, fix: str) -> ModelShape:
        return read_model(path, key, fix, weights=self.running)

    def base_model(self) -> ModelShape:
        """The base model, which must exist: model.pretrained_path, or the run's own from `halluray world`."""
        if self.cfg.model.pretrained_path:
            return self._model(self.layout.base_model, "model.pretrained_path",
                               "set model.pretrained_path to a local Hugging Face model directory, or remove it to "
                               "pretrain the tiny base model with `halluray world`")
        return self._model(self.layout.base_model, None, "run `halluray world` with this config first")

    @cached_property
    def planned_base(self) -> ModelShape:
        """The base model of a command that may build it: model.pretrained_path, else the GPT-2 of `model.*`."""
        if self.cfg.model.pretrained_path:
            return self.base_model()
        return planned_base_model(self.cfg)

    def sft_model(self) -> ModelShape:
        return self._model(self.layout.sft_model("standard", "long_form"), None,
                           "run `halluray sft` (sft.strategy=standard, sft.task=long_form) with this config first")

    def policy_init(self) -> ModelShape:
        """ppo.init_model, else the run's standard SFT model, else its base model (`RunLayout.default_policy_init`)."""
        if self.cfg.ppo.init_model:
            return self._model(Path(self.cfg.ppo.init_model).expanduser(), "ppo.init_model",
                               "set ppo.init_model to a model directory (such as an SFT run's model/), or remove it "
                               "to start from this run's SFT model")
        if self.layout.default_policy_init() != self.layout.base_model:
            return self._model(self.layout.default_policy_init(), None, "run `halluray sft` with this config first")
        if self.cfg.model.pretrained_path:
            return self.base_model()
        return self._model(self.layout.base_model, None,
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
        return written_model(self.planned_base, self.layout.sft_model("standard", "long_form"), "sft")

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
            self.notes.append(TEXT_RM_NOTE)
            return self._model(path / "decomposer", "ppo.reward.target", fix)
        shape = self._model(path, "ppo.reward.target", fix)
        return shape if kind == "two-stage" else replace(shape, logits=False)

    def planned_reward_model(self, base: ModelShape) -> ModelShape:
        """The reward model `halluray train-rm` will train from the base model (reward_model.kind)."""
        return base if self.cfg.reward_model.kind != "scalar" else base.with_value_head()

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
        if r.kind in CHECKER_REWARDS:
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
            if self.cfg.reward_model.kind == "two-stage-text":
                self.notes.append(TEXT_RM_NOTE)
            return written_model(self.planned_reward_model(self.planned_base), target, "train-rm")
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
        if d.dataset == "entity_table":
            read_entity_table(d.path)  # one small file: a bad row stops the run here, naming its line
            return
        local = Path(d.path.replace("{split}", d.split_map.get(split, split))).expanduser()
        if local.exists():
            return
        if not looks_like_path(d.path):
            self.notes.append(f"data.path {d.path!r} is not a local path, so it is read as a hub dataset name: that "
                              f"needs the hub or a populated datasets cache (not checked)")
        elif self.running:
            raise InputError(f"data.path: {local} (split '{split}') does not exist; point data.path at a local file "
                             f"or directory, or map the split onto an existing one with data.split_map")
        else:  # a plan does not read the prompts (their count is known only once they are read)
            self.notes.append(f"data.path: {local} (split '{split}') does not exist here: the plan does not read it, "
                              f"the stages that run do")

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

    @property
    def world_data(self) -> bool:
        return self.cfg.data.dataset in WORLD_DATASETS

    def unfamiliarity_scores(self) -> None:
        """The stored unfamiliarity scores exist and passed their gates (pipeline/shared/unfamiliarity_gates.py):
        scores kept after a gate stopped the run are for inspection, not for relabeling or bucketing."""
        require(self.layout.unfamiliarity_scores, "unfamiliarity")
        summary = self.layout.unfamiliarity_dir / "summary.json"
        gates = json.loads(summary.read_text()).get("gates") if summary.is_file() else None
        if gates:
            raise InputError(f"{summary}: the unfamiliarity scores failed their gates ({'; '.join(gates)}); fix the "
                             f"data and run `halluray unfamiliarity` again")

    def checker(self) -> None:
        """What the fact checker reads exists: the run's world (kind world), the fact table, or the entity table
        (read whole: a bad row is an error naming its line)."""
        fc = self.cfg.fact_checker
        if fc.kind == "world":
            if not self.world_data:
                raise InputError(f"fact_checker.kind is 'world', which checks the synthetic world's prompts only; "
                                 f"for data.dataset '{self.cfg.data.dataset}' set fact_checker.kind to qa (short "
                                 f"answers), fact_table, openai (FActScore-style) or a callable")
            require(self.layout.world_json, "world")
        elif fc.kind == "fact_table" and fc.table_path and not Path(fc.table_path).expanduser().is_file():
            raise InputError(f"fact_checker.table_path: {fc.table_path} is not a file")
        elif fc.kind == "entity_table":
            read_entity_table(fc.options.get("path", DEFAULT_TABLE))
