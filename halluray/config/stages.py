"""The sections of the stages: unfamiliarity, sft, reward data, reward model, ppo (with its optimizers, LoRA
and reward) and eval, and the kind names other layers read (`RM_KINDS`, `CHECKER_REWARDS`)."""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import BeforeValidator, Field, model_validator

from halluray.config.base import DirName, Float, Int, Section

RewardModelKind = Literal["two-stage", "two-stage-text", "scalar"]
RM_KINDS: tuple[str, ...] = get_args(RewardModelKind)
"""`reward_model.kind` values (what `train-rm` writes into a reward-model directory's rm.json)."""
RewardKind = Literal["fact_checker", "qa_checker", "callable", "model"]
CHECKER_REWARDS = ("fact_checker", "qa_checker")
"""`ppo.reward.kind` values that are the run's fact checker itself: their reward is the ground truth."""


def _as_list(value):
    """One number stands for a list of one (`reward_data.source_accuracy=0.7`)."""
    return [value] if isinstance(value, (int, float)) else value


class UnfamiliarityConfig(Section):
    """Unfamiliarity scores (paper §4.1, App. B–D), measured by few-shot prompting the base model."""
    tasks: list[Literal["long_form", "short_qa", "mcq"]] = ["long_form", "short_qa", "mcq"]
    n_shots: Int = Field(2, ge=0)
    long_form_samples: Int = Field(2, ge=1)
    long_form_threshold: Float = 2.0
    """A long-form prompt is unfamiliar if its score (`long_form_score`) exceeds this."""
    long_form_score: Literal["false_facts", "false_fraction"] = "false_facts"
    """How the k samples score a long-form prompt. false_facts: mean false facts per sample (the paper's).
    false_fraction: (false + 0.5) / (true + false + 1) of the checkable facts pooled over the samples, so a
    prompt drawing no checkable fact scores 0.5. A count also grows with how much checkable text a prompt draws:
    on SmolLM2-135M and countries the prompts with the most false facts also drew the most true ones, and the
    fraction was the score that ranked the model's knowledge (docs/real-model.md)."""
    short_qa_samples: Int = Field(12, ge=1)
    short_qa_threshold: Float | None = None
    """Unfamiliar if more incorrect samples than this; None means short_qa_samples / 2 (paper: > 6 of 12)."""
    mcq_threshold: Float = 0.36
    """Unfamiliar if the NLL of the correct choice exceeds this (paper, MMLU)."""
    short_qa_score: Literal["samples", "p_gold"] = "samples"
    """Which short-QA score decides `unfamiliar` (and the buckets): samples = incorrect of short_qa_samples
    (the paper's); p_gold = 1 - P(canonical answer) in one forward pass, a cheap deterministic proxy that needs
    records with `answers` (real data; it tracks the sampled accuracy closely on a real 135M model)."""
    p_gold_threshold: Float = Field(0.1, gt=0, lt=1)
    """With short_qa_score=p_gold: unfamiliar when P(canonical answer) is below this."""
    splits: list[str] = ["sft", "eval"]
    """Real data: the pipeline splits whose prompts are scored (the world scores every person)."""
    sampled_splits: list[str] | None = None
    """Real data, short QA: splits that also get the k-sample score (None: all of `splits`). Sampling costs
    k generations per query; P(gold) is always computed."""
    temperature: Float = Field(1.0, gt=0)
    max_new_tokens: Int = Field(48, ge=1)
    batch_size: Int = Field(64, ge=1)
    # Real short QA: gates that stop the run after scoring, before any SFT, when the scores are noise.
    gate_max_label_share: Float = Field(0.98, gt=0, le=1)
    """Stop when one grade (correct, incorrect or abstain) is at least this share of the base model's sampled
    answers: the checker is not reading them (aliases, answer_prefix, prompt format). 1 disables."""
    gate_min_p_gold_spread: Float = Field(0.02, ge=0, lt=1)
    """Stop when P(gold)'s 10th-to-90th percentile range is below this: it orders no query. 0 disables."""
    gate_min_corr: Float = Field(0.1, ge=-1, le=1)
    """Stop when corr(P(gold), sampled accuracy) is below this, with at least 20 sampled queries: P(gold) does
    not measure what the model knows. -1 disables."""


class SFTConfig(Section):
    """Supervised finetuning on the policy actors (paper: batch 24, AdamW lr 1e-5, cosine schedule)."""
    strategy: Literal["standard", "unfamiliar-idk", "random-idk"] = "standard"
    """standard: ground truth; unfamiliar-idk: unfamiliar examples relabeled to an abstention;
    random-idk: the same number of abstentions on random examples (the control)."""
    task: Literal["long_form", "short_qa", "mcq"] = "long_form"
    """Which prompts and which unfamiliarity score decide what is unfamiliar (mcq: the world's
    multiple-choice items, target the correct choice's text, unfamiliar by the mcq NLL score)."""
    batch_size: Int = Field(24, ge=1)
    lr: Float = Field(1e-5, gt=0)
    warmup_steps: Int = Field(10, ge=0)
    steps: Int = Field(120, ge=1)
    abstention: str | None = None
    """The abstention target; None: the world's phrase on world data, "I don't know." on real data."""
    lora: bool = False
    """Train LoRA adapters (the run's `lora` section: rank, alpha, modules) instead of every weight, as the paper
    finetunes all its models; the exported model has them merged, so RL starts from a plain model."""
    replay_documents: Int = Field(0, ge=0)
    """World data only: this many documents of the pretraining corpus mixed into the SFT examples (loss on the
    whole document), as InstructGPT mixes pretraining text into its PPO. They keep the base model's grammar, which
    SFT on a few hundred bios alone wears down (docs/design.md, "Why a fifth of the world bios come out
    malformed"). Documents that carry the bio prompt are left out, so the bios alone say how long a bio is."""


class RewardDataConfig(Section):
    """Reward-model training data on the RM prompt split, labeled by the ground-truth fact checker."""
    source: Literal["conservative", "standard"] = "conservative"
    """conservative: samples from the SFT model (same knowledge as the RM); standard: the independent source."""
    samples_per_prompt: Int = Field(4, ge=1)
    temperature: Float = Field(1.0, gt=0)
    max_new_tokens: Int = Field(48, ge=1)
    standard_source: Literal["generator", "oracle", "reader"] = "generator"
    """The independent source (GPT-3.5's role for the standard RM). On the synthetic world — generator: a second
    world model, the base model trained further on its own draw of biographies of the RM people (more of them
    than the pretraining corpus has: `generator_documents`), sampled on the same prompts at `temperature`, so it
    knows more than the policy and errs as a model does; oracle: the exact world stating every fact, each right
    with probability `source_accuracy`, whatever any model knows (the sweep's knob). On real data — reader: the
    base model (`model.pretrained_path`) answering the same prompts with the prompt's reference text (its SFT
    target) in its system prompt, sampled at `temperature`: it knows more than the policy, and errs as a model
    does (it reads past the notes, or embellishes them). Without a `reader`, real data take the fact checker's
    chat model (fact_checker.kind openai)."""
    generator_documents: Annotated[list[Annotated[Int, Field(ge=0)]] | None, BeforeValidator(_as_list)] = None
    """generator: biographies per person of each familiarity tier in its corpus (same length as
    world.fact_frequencies, least familiar first). None: twice the tier's pretraining count, at least 4."""
    generator_steps: Int = Field(200, ge=1)
    """generator: training steps (batch and block size as pretraining's)."""
    generator_lr: Float = Field(1e-3, gt=0)
    source_accuracy: Annotated[list[Annotated[Float, Field(ge=0, le=1)]] | None, BeforeValidator(_as_list)] = None
    """oracle: probability that it states a fact correctly: one number for every person, or one per familiarity
    tier (same length as world.fact_frequencies, least familiar first). None: rising evenly from 0.6 on the
    least familiar tier to 0.9 on the most familiar (a strong external model knows famous people better too)."""


class RewardModelConfig(Section):
    """Reward models initialised from the pretrained base model (paper: batch 32, lr 2e-5)."""
    kind: RewardModelKind = "two-stage"
    """two-stage-text (paper §5, App. D; what the shipped demo and llama2 configs use): a decomposer LM writes the
    atomic facts, a verifier LM classifies each given the prompt (works on any text); two-stage: the ablation with
    the world's template decomposer + a linear verifier over three numbers of the LM's belief in the stated
    value (the field default, cheap for small tests); scalar: a head regressing the reward."""
    verifier: Literal["text", "belief"] = "text"
    """two-stage-text (other kinds ignore it): how the verifier judges a fact given the prompt. text: the LM,
    finetuned with a value head on "prompt + Fact: fact" (the paper's). belief: the LM as pretrained, frozen,
    read right after the prompt; a logistic head on how far the fact falls below the LM's own best guess token
    by token (`models/heads.py` `ClaimBeliefVerifier`; only `head_lr` and `epochs` apply). On the demo world's
    val people the text verifier judged familiar people's facts no better than "always true" (0.76, the share
    of true ones), the belief verifier 0.86 (docs/design.md)."""
    decision: Literal["expected", "threshold"] = "expected"
    """Two-stage kinds: how a fact's P(true) becomes reward. expected: p * true_fact + (1 - p) * false_fact.
    threshold: true_fact where p > 0.5, else false_fact, as the authors' RM judges each fact with its greedy
    yes/no. With an unsure verifier the expected reward under-values what it gets right (a fact it calls true
    with p 0.75 earns +0.75 of +2): on the demo world's val people the conservative RM scored familiar people's
    SFT bios 4 points below the ground truth, and PPO stopped writing about them."""
    batch_size: Int = Field(32, ge=1)
    lr: Float = Field(2e-5, gt=0)
    head_lr: Float | None = Field(None, gt=0)
    """A larger learning rate for the freshly initialised head; None: `lr`."""
    warmup_steps: Int = Field(10, ge=0)
    epochs: Int = Field(2, ge=1)
    """Epochs of the verifier (two-stage kinds) or of the scalar RM."""
    decomposer_epochs: Int = Field(2, ge=1)
    """two-stage-text: epochs of the decomposer LM over the non-abstained responses. A tiny model learns to
    copy sentences slowly (in the tests a 2-layer, 32-wide GPT-2 needs 60 epochs at lr 1e-2 to get half of
    its held-out fact lists exactly right): raise it for the demo world."""
    decomposer_lr: Float | None = Field(None, gt=0)
    """two-stage-text: the decomposer's learning rate; None: `lr`."""
    decomposer_recombined: Int = Field(0, ge=0)
    """two-stage-text: this many extra decomposer examples made by recombining the training responses'
    sentences across responses (where each fact is one of its response's sentences, as in the synthetic
    world): teaches a small LM to copy facts rather than write what it knows (halluray/reward_models/text.py)."""
    shared_decomposer: bool = False
    """two-stage-text: one decomposer for both RMs, as the authors trained it: fitted once on the responses of
    every reward-data source (conservative and standard, both needed), kept in run_dir/decomposer and copied
    into each RM, so the two RMs differ only in their verifiers. False: each RM fits its own on its data."""
    decomposer_max_new_tokens: Int = Field(64, ge=1)
    """two-stage-text: the most tokens the decomposer writes for one response (greedy)."""
    decomposer_copy_only: bool = False
    """two-stage-text: the decomposer may write only tokens of the response itself (and its fact separators): an
    extractive decomposer. A small LM otherwise writes what it believes about the name where the response says
    something else (demo world, val: a familiar person's bio scored -3.5 by the RM through its facts, +1.1
    through the checker's). Leave it off where facts must be reworded (a pronoun resolved to a name)."""
    max_length: Int | None = Field(None, ge=16)
    """two-stage-text: the longest input in tokens: longer decomposer examples are left out of training,
    longer verifier inputs keep their end (the fact). None: the base model's context length."""
    lora: bool = False
    """two-stage-text and scalar: train LoRA adapters (the run's `lora` section: rank, modules) and the value
    head instead of every weight, as the policy does; each exported model has its adapters merged. The paper
    fully finetunes its RMs; on a CPU LoRA is what makes a 135M-parameter RM affordable."""

    @model_validator(mode="after")
    def _check_lora(self) -> RewardModelConfig:
        if self.lora and self.kind == "two-stage":
            raise ValueError("reward_model.lora: the two-stage RM's verifier is a small head over the frozen LM's "
                             "beliefs, with nothing to adapt; use it with kind two-stage-text or scalar")
        if self.lora and self.kind == "two-stage-text" and self.verifier == "belief":
            raise ValueError("reward_model.lora: the belief verifier keeps its LM frozen, with nothing to adapt; "
                             "use verifier text")
        return self


class LoRAConfig(Section):
    """peft LoRA on the policy (paper: r=16, alpha=16, dropout 0). Target modules depend on the architecture."""
    enabled: bool = False
    r: Int = Field(16, ge=1)
    alpha: Int = Field(16, ge=1)
    dropout: Float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] = ["c_attn"]
    """GPT-2 names its fused attention projection c_attn; Llama uses q_proj/v_proj."""


class OptimizerConfig(Section):
    """AdamW with a warmup + cosine schedule (paper: betas 0.9/0.95, eps 1e-8, wd 1e-6)."""
    lr: Float = Field(1e-5, gt=0)
    betas: tuple[Float, Float] = (0.9, 0.95)
    eps: Float = Field(1e-8, gt=0)
    weight_decay: Float = Field(1e-6, ge=0)
    warmup_steps: Int = Field(0, ge=0)
    min_lr_ratio: Float = Field(0.0, ge=0, le=1)
    head_lr: Float | None = Field(None, gt=0)
    """Learning rate of newly initialised heads (parameters under `head.` / `value_head.`); None: `lr`."""


class RewardConfig(Section):
    """What scores PPO responses (the reward actor)."""
    kind: RewardKind = "fact_checker"
    """fact_checker: the run's fact checker (`fact_checker`) labels each response's facts (long form);
    qa_checker: its short-answer labels (correct / incorrect / abstain, paper §4.2 RL); callable: `target` is
    'package.module:function' taking (prompts, responses, topics); model: `target` is a learned reward-model
    directory."""
    target: str | None = None
    """With fact_checker or qa_checker and `fact_checker.kind: world`: a world file; None means the run's own."""
    true_fact: Float = 2.0
    false_fact: Float = -3.0
    correct: Float = 2.0
    """qa_checker: reward of a correct short answer (paper: +2)."""
    incorrect: Float = -3.0
    """qa_checker: reward of an incorrect short answer (paper: -3)."""
    abstain: Float = 0.0
    """qa_checker: reward of "I do not know" (paper: 0; -3 in the control that punishes abstaining)."""
    malformed_penalty: Float | None = None
    """Long form (every kind but qa_checker): the reward of a response that is not a well-formed answer,
    replacing whatever its facts would earn; None: no such rule. The run's fact checker decides the form
    (`Checker.well_formed`: the world's grammar, else a finished last sentence). The authors give five false
    facts' reward (-15 at -3 a fact); set it below the worst well-formed response's reward, or a malformed one
    pays (bios that always state six facts can earn -18). Evaluations report the malformed rate either way, and
    the ground-truth reward applies the same rule."""
    malformed_credit: Literal["response", "segment"] = "response"
    """How PPO credits a malformed response's tokens. response: every token bears the penalty, as the authors
    do. segment: the tokens of its well-formed prefix (the whole sentences before the first one the checker
    rejects) are credited with the reward that prefix earns as a response of its own, and only the tokens from
    there on with the penalty (halluray/ppo/segments.py), so a bio that goes wrong late is not taught to say
    less. Needs `malformed_penalty`."""

    @model_validator(mode="after")
    def _check_credit(self) -> RewardConfig:
        if self.malformed_credit == "segment" and (self.malformed_penalty is None or self.kind == "qa_checker"):
            raise ValueError("malformed_credit 'segment' credits the well-formed prefix of a malformed long-form "
                             "response: it needs malformed_penalty set and a kind other than qa_checker")
        return self


AdvantageEstimator = Literal["gae", "grpo", "rloo", "reinforce_pp"]
CRITIC_FREE = ("grpo", "rloo", "reinforce_pp")
GROUP_ESTIMATORS = ("grpo", "rloo")


class PPOConfig(Section):
    """PPO (paper App. D, long form: batch 16, cliprange 0.005, KL coef 0.5, lr 1e-5, LoRA r=16)."""
    name: DirName = "ppo"
    """Subdirectory of the run directory for this PPO run (checkpoints/, model/); one directory name."""
    steps: Int = Field(20, ge=1)
    """PPO iterations (each: rollout a prompt batch, score, update, sync)."""
    batch_size: Int = Field(16, ge=1)
    """Prompts per iteration; each gets `samples_per_prompt` responses."""
    advantage_estimator: AdvantageEstimator = "gae"
    """gae: a critic's values and GAE (PPO as in the paper). Critic-free (no critic is placed): grpo, the score
    minus its prompt group's mean, over the group's std (`grpo_scale_by_std`); rloo, the score minus the mean of
    the other responses to the same prompt; reinforce_pp, REINFORCE++: returns whitened over the batch. Each
    keeps the per-token KL penalty in the reward (halluray/ppo/advantages.py)."""
    samples_per_prompt: Int = Field(1, ge=1)
    """Responses sampled per prompt each iteration (the group of grpo and rloo, which need >= 2)."""
    lora_critic: bool = True
    """With `lora.enabled`, the critic gets the policy's adapters on its frozen backbone (adapters + value head
    trained), so it costs what the policy costs; False finetunes the whole critic. Ignored without LoRA."""
    grpo_scale_by_std: bool = True
    """grpo: divide by the group's std (DeepSeekMath); False is Dr. GRPO (Liu et al. 2025), which argues the std
    re-weights prompts by how much their responses agree."""
    minibatch_size: Int = Field(16, ge=1)
    """Responses per optimizer step (of batch_size x samples_per_prompt per iteration)."""
    ppo_epochs: Int = Field(1, ge=1)
    cliprange: Float = Field(0.005, gt=0)
    cliprange_value: Float = Field(0.2, gt=0)
    gamma: Float = Field(1.0, ge=0, le=1)
    lam: Float = Field(0.95, ge=0, le=1)
    kl_coef: Float = Field(0.5, ge=0)
    kl_estimator: Literal["k1", "k3"] = "k1"
    adaptive_kl: bool = False
    """Ziegler et al. (2019) controller towards kl_target over kl_horizon samples."""
    kl_target: Float = Field(6.0, gt=0)
    kl_horizon: Int = Field(10000, ge=1)
    entropy_coef: Float = Field(0.0, ge=0)
    reward_clip: Float | None = Field(None, gt=0)
    normalize_rewards: bool = False
    whiten_advantages: bool = True
    temperature: Float = Field(1.0, gt=0)
    top_p: Float = Field(1.0, gt=0, le=1)
    max_new_tokens: Int = Field(48, ge=1)
    stop: list[str] = []
    policy_optimizer: OptimizerConfig = OptimizerConfig(lr=1e-5)
    critic_optimizer: OptimizerConfig = OptimizerConfig(lr=1e-5)
    init_model: str | None = None
    """Policy/reference initialisation: a model directory; None means the run's SFT model, else its base model."""
    reward: RewardConfig = RewardConfig()
    save_every: Int = Field(10, ge=0)
    """Checkpoint every N iterations (0: only at the end); a restart or `--resume` continues from there."""
    keep_last: Int = Field(2, ge=0)
    """Complete checkpoints kept (the newest); 0 keeps every one."""
    eval_every: Int = Field(0, ge=0)
    """Every N iterations (0: only before and after training), long-form runs measure the policy on the
    validation prompts (`val` split): the checker's ground truth and, with a learned RM, the RM's reward on the
    same responses by unfamiliarity tercile (the over-estimation monitor)."""
    plateau_patience: Int = Field(0, ge=0)
    """Stop before `steps` once the validation reward has not risen by more than `plateau_min_delta` for this
    many evaluations in a row (0: always run `steps`). Needs eval_every."""
    plateau_min_delta: Float = Field(0.1, ge=0)
    overestimation_warn: Float = Field(2.0, gt=0)
    """Warn (stderr, W&B, metrics JSONL) when the learned RM's over-estimation (RM reward minus the checker's)
    on the most unfamiliar validation tercile has grown by more than this since step 0: reward hacking."""
    log_samples_every: Int = Field(5, ge=0)
    claims_table_prompts: Int = Field(8, ge=0)
    """At every validation (long-form runs), the first sample of each of the first N validation prompts goes
    into a per-claim table, W&B `val/claims` and metrics.jsonl records of stage `val/claims`: each claim the
    reward reads (a two-stage RM's own, else the checker's) with the checker's label and the RM's P(true), beside
    the response's RM and ground-truth rewards (halluray/eval/claims_table.py). 0: no table."""

    @model_validator(mode="after")
    def _check(self) -> PPOConfig:
        if self.plateau_patience and not self.eval_every:
            raise ValueError("plateau_patience needs eval_every > 0 (the plateau is read from the evaluations)")
        if self.responses_per_step % self.minibatch_size:
            raise ValueError(f"batch_size x samples_per_prompt ({self.responses_per_step}) must be a multiple of "
                             f"minibatch_size ({self.minibatch_size})")
        if self.advantage_estimator in GROUP_ESTIMATORS and self.samples_per_prompt < 2:
            raise ValueError(f"advantage_estimator {self.advantage_estimator} compares the responses to one prompt: "
                             f"set samples_per_prompt >= 2 (got {self.samples_per_prompt})")
        return self

    @property
    def responses_per_step(self) -> int:
        return self.batch_size * self.samples_per_prompt

    @property
    def critic_free(self) -> bool:
        """No critic: the estimator needs no values."""
        return self.advantage_estimator in CRITIC_FREE

    @property
    def updates(self) -> int:
        """Optimizer steps of a whole run (the LR schedule's length): one per minibatch, epoch and iteration."""
        return self.steps * self.ppo_epochs * (self.responses_per_step // self.minibatch_size)


class EvalConfig(Section):
    samples_per_prompt: Int = Field(1, ge=1)
    temperature: Float = Field(1.0, gt=0)
    greedy: bool = True
    """Long form (`halluray eval`): also the greedy response of each model to each held-out prompt, the
    authors' decoding at evaluation; its metrics go under `greedy` beside the sampled ones."""
    split: Literal["eval", "val"] = "eval"
    """The split the short-QA experiments are measured on. Tune settings with `val` (the world's validation
    people, a fact table's validation entities), report with `eval` (test people or entities)."""
