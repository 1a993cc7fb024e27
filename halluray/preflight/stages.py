"""What each `halluray <stage>` reads that must already exist, and which roles it places at once (its phases).

The inputs follow halluray/pipeline/*.py (and the experiments and campaigns built on them). What an earlier
stage of the same command writes is not checked: `demo` writes everything itself and `plan` describes the whole
pipeline, so both check only what no stage writes (model.pretrained_path, data.path, and paths outside the run
directory) and plan the models from the base model's shape (an SFT, PPO or reward model has its base model's
shape, give or take a head). `plan` runs nothing, so it needs no weights, tokenizer or prompts: a model
directory with only its config.json is sized from that, and a missing data file is a note. The checks of
single inputs are in `inputs.py`, the phases' parts in `phases.py`.
"""

from __future__ import annotations

from collections.abc import Callable

from halluray.errors import InputError
from halluray.layout import require
from halluray.preflight.inputs import RunInputs, written_model
from halluray.preflight.memory import PROMPT_TOKENS
from halluray.preflight.models import ModelShape
from halluray.preflight.phases import Phase, Use

__all__ = ["PPO_WITH_RM", "STAGES", "Inputs", "Phase", "Use"]

PPO_WITH_RM = ("standard", "conservative")
"""The reward-data sources of the demo's two PPO runs, whose models `halluray eval` compares."""


def _seq(model: ModelShape, new_tokens: int) -> int:
    wanted = PROMPT_TOKENS + new_tokens
    return min(wanted, model.context) if model.context else wanted


class Inputs(RunInputs):
    """One config's inputs (`RunInputs`) and, per stage, what it checks and the phases it places."""

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
        """policy + critic (none with a critic-free estimator) + reference (none with LoRA) + reward + rollout, all
        placed before the first step. Each step's calls process ppo.batch_size x ppo.samples_per_prompt responses;
        the rollout actors also generate the held-out evaluation (`eval_sequences`) in one call."""
        c, ppo = self.cfg, self.cfg.ppo
        seq = _seq(policy, ppo.max_new_tokens)
        adapters = policy.lora_params(c.lora) if c.lora.enabled else 0
        if c.lora.enabled and not adapters:
            raise InputError(f"lora.target_modules {c.lora.target_modules} match no weight of {policy.where}; name "
                             f"its linear layers (GPT-2: c_attn; Llama: q_proj, v_proj)")
        responses, key = ppo.responses_per_step, "ppo.batch_size x ppo.samples_per_prompt"
        uses = [Use("policy", policy, "train", ppo.minibatch_size, "ppo.minibatch_size", seq, adapters)]
        if not ppo.critic_free:
            uses.append(self.critic_use(policy, seq))
        if not c.lora.enabled:  # with LoRA the policy without its adapter is the reference
            uses.append(Use("reference", policy, "forward", responses, key, seq))
        uses.append(Use("reward", reward, "forward", responses, key, seq))
        rollout_batch, rollout_key = ((eval_sequences, "eval.samples_per_prompt") if eval_sequences > responses
                                      else (responses, key))
        if c.actors.rollout_mode != "colocated":  # colocated: the policy ranks generate, no rollout actors
            uses.append(Use("rollout", policy, "generate", rollout_batch, rollout_key, seq, adapters))
        return Phase("ppo", tuple(uses))

    def critic_use(self, policy: ModelShape, seq: int) -> Use:
        """The critic: the policy's backbone with a value head, all of it trained, or (ppo.lora_critic) frozen
        under the policy's adapters (only they and the head train: it then costs what the policy costs)."""
        critic, lora = policy.with_value_head(), self.cfg.lora
        adapters = critic.lora_params(lora) if lora.enabled and self.cfg.ppo.lora_critic else 0
        return Use("critic", critic, "train", self.cfg.ppo.minibatch_size, "ppo.minibatch_size", seq, adapters)

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
            self.unfamiliarity_scores()
        return [self.sft_phase(base)]

    def reward_data(self) -> list[Phase]:
        rd = self.cfg.reward_data
        self.checker()
        self.prompts("rm")
        if rd.source == "standard" and rd.standard_source == "reader":
            if self.world_data:
                raise InputError("reward_data.standard_source=reader reads each prompt's reference text, which "
                                 "real data have: on the world use generator or oracle")
            return [self.sampling_phase("reward-data", self.base_model(), "rm", rd.samples_per_prompt,
                                        "reward_data.samples_per_prompt", rd.max_new_tokens)]
        if rd.source == "standard":
            if not self.world_data and self.cfg.fact_checker.kind != "openai":
                raise InputError("reward_data.source=standard on real data writes its responses with the fact "
                                 "checker's chat model: set fact_checker.kind=openai, or "
                                 "reward_data.standard_source=reader (or use source=conservative)")
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
        self.unfamiliarity_scores()
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
        self.unfamiliarity_scores()
        self.checker()
        self.prompts("eval")
        sft = self.sft_model()
        missing = [layout.ppo_name_with_rm(source) for source in PPO_WITH_RM  # halluray/pipeline/evaluate.py
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
            self.unfamiliarity_scores()
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
        self.notes.append(f"{stage}: its PPO runs generate one-word answers (halluray/experiments/qa_rl.py sets their "
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
        # unfamiliarity -> qa-experiment -> qa-rl, all on this config (halluray/campaigns/demo_real.py)
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
        # The demo trains both reward models and runs PPO against each (halluray/campaigns/demo.py).
        rms = self.layout.run_dir / "rm-{standard,conservative}"
        return self._pipeline(written_model(self.planned_reward_model(self.planned_base), rms, "train-rm"),
                              conservative_data=True)

    def plan(self) -> list[Phase]:
        return self._pipeline(self.ppo_reward(planned=True), self.cfg.reward_data.source == "conservative")


STAGES: dict[str, Callable[[Inputs], list[Phase]]] = {
    "world": Inputs.world, "unfamiliarity": Inputs.unfamiliarity, "sft": Inputs.sft,
    "reward-data": Inputs.reward_data, "train-rm": Inputs.train_rm, "eval-rm": Inputs.eval_rm, "ppo": Inputs.ppo,
    "eval": Inputs.eval, "qa-experiment": Inputs.qa_experiment, "qa-rl": Inputs.qa_rl,
    "mcq-experiment": Inputs.mcq_experiment, "mcq-letters": Inputs.mcq_experiment, "mcq-rl": Inputs.mcq_rl,
    "qa-rm": Inputs.qa_rm, "demo": Inputs.demo, "demo-real": Inputs.demo_real, "sweep": Inputs.demo,
    "ablation": Inputs.demo,
    "plan": Inputs.plan,
}
"""CLI stage name -> its checks and phases; `plan` checks everything that does not depend on running a stage."""
