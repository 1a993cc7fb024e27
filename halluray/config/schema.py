"""The one typed experiment config: every section, key, default (the paper's where it gives them) and
what it means. This file is the reference for what a config may contain; `loading.py` reads YAML into it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from halluray.errors import InputError
from halluray.secrets import redact


class ConfigError(InputError):
    """A config that cannot be used; the message names the offending key or path."""


def _not_bool(value: Any) -> Any:
    # YAML reads true/false/yes/no as booleans, which pydantic would take as the numbers 1/0.
    if isinstance(value, bool):
        raise ValueError("must be a number, not a boolean")
    return value


def _dir_name(value: str) -> str:
    # The name joins a directory the run writes into and replaces: a separator, '..' or an absolute path
    # would point outside the output directory; a leading dot, at a hidden (or the same) directory.
    if not value or value.startswith(".") or any(c in value for c in "/\\\0"):
        raise ValueError("must be a single directory name: not empty, without '/' or '\\', not starting with '.'")
    return value


Int = Annotated[int, BeforeValidator(_not_bool)]
"""Every integer of the config: a boolean is refused."""
Float = Annotated[float, BeforeValidator(_not_bool)]
"""Every float of the config: a boolean is refused, and nan/inf by `Section`'s allow_inf_nan=False."""
def _as_list(value):
    """One number stands for a list of one (`reward_data.source_accuracy=0.7`)."""
    return [value] if isinstance(value, (int, float)) else value


DirName = Annotated[str, AfterValidator(_dir_name)]
"""A config value used as one directory name inside the run's output directory."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class RunConfig(Section):
    name: DirName = "demo"
    """Run name; the run directory is `output_dir/name` (one directory name: no '/', '..' or leading '.')."""
    output_dir: str = "runs"


class WorldConfig(Section):
    """The synthetic knowledge world (docs/design.md#the-synthetic-knowledge-world)."""
    num_people: Int = Field(400, ge=8)
    fact_frequencies: list[Int] = [0, 2, 6, 24]
    """Number of corpus documents stating a person's facts, one value per familiarity tier."""
    frequency_weights: list[Float] = [2.0, 1.0, 1.0, 2.0]
    """Relative share of people in each tier (same length as fact_frequencies)."""
    name_mentions: Int = Field(3, ge=1)
    """Fact-free sentences per person, so every name has a representation."""
    qa_doc_fraction: Float = Field(0.25, ge=0, le=1)
    instruction_doc_fraction: Float = Field(0.5, ge=0, le=1)
    splits: dict[Literal["sft", "rm", "ppo", "val", "eval"], Float] = {
        "sft": 0.3, "rm": 0.2, "ppo": 0.2, "val": 0.1, "eval": 0.2}
    """People per split, stratified by familiarity: train (sft, rm, ppo), validation (val: every tuning choice
    and PPO's plateau check), test (eval: every reported number)."""

    @model_validator(mode="after")
    def _check(self) -> "WorldConfig":
        if len(self.fact_frequencies) != len(self.frequency_weights):
            raise ValueError("fact_frequencies and frequency_weights must have the same length")
        if set(self.splits) != {"sft", "rm", "ppo", "val", "eval"} or abs(sum(self.splits.values()) - 1) > 1e-6:
            raise ValueError("splits must give sft, rm, ppo, val and eval fractions summing to 1")
        return self


class PretrainConfig(Section):
    """Defaults measured on the demo world: the most frequent third then states 0.9 of facts truly."""
    steps: Int = Field(1000, ge=1)
    batch_size: Int = Field(16, ge=1)
    lr: Float = Field(3e-3, gt=0)
    warmup_steps: Int = Field(50, ge=0)
    weight_decay: Float = Field(0.01, ge=0)
    log_every: Int = Field(50, ge=1)


class ModelConfig(Section):
    """The base model. With `pretrained_path` unset, a GPT-2-shape model is built and pretrained on the world."""
    pretrained_path: str | None = None
    """A local Hugging Face model directory to use instead of pretraining one."""
    trust_remote_code: bool = False
    chat_template: bool = False
    """Wrap every prompt in the base model's chat template (as one user turn) before any stage uses it: an
    instruction-tuned model answers its own format far better (measured on SmolLM2-135M-Instruct: capitals
    0-shot .39 greedy accuracy in chat format vs .10 with bare few-shot answers)."""
    system_prompt: str | None = None
    """System message for the chat template; None uses the template's own default."""
    n_layer: Int = Field(4, ge=1)
    n_embd: Int = Field(128, ge=8)
    n_head: Int = Field(4, ge=1)
    n_positions: Int = Field(192, ge=16)
    pretrain: PretrainConfig = PretrainConfig()

    @model_validator(mode="after")
    def _check(self) -> "ModelConfig":
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        return self


class DataConfig(Section):
    """Prompt datasets (halluray/data): the world's prompts, or WikiBios, WikiPlots, TriviaQA, MMLU and fact tables
    from local files (fact tables also built in)."""
    dataset: Literal["world", "world_qa", "wikibios", "wikiplots", "triviaqa", "mmlu", "fact_table"] = "world"
    """Which loader reads the prompts; halluray/data/<dataset>.py documents its default source columns.

    fact_table: (entity, attribute, question, answers) rows from jsonl/csv/tsv tables or built-in geography
    tables, split by entity with `entity_splits` (docs/real-model.md)."""
    path: str | None = None
    """Local file or directory for real datasets (no hub access at run time).

    A jsonl/json/csv/tsv/parquet file ('{split}' in it is replaced by the source split), a save_to_disk
    directory, or a directory of per-split files; anything else is a hub dataset name, which needs the hub
    or a populated datasets cache. For the world, None means the run directory. For fact_table: a table
    file, a directory of tables, or builtin:capitals,city_country.
    """
    fields: dict[str, str | list[str]] = {}
    """Source column for a record field, overriding the loader's defaults, e.g. {name: input_text.context}.

    Dotted names reach into struct columns (answer.value); a list reads several columns (MMLU choices: [A, B, C, D]).
    """
    subset: str | None = None
    """Dataset configuration when `path` is a hub name (e.g. rc.nocontext for trivia_qa, all for cais/mmlu);
    world_qa: `mcq` asks each person's six questions as multiple choice (halluray mcq-rl)."""
    split_map: dict[Literal["sft", "rm", "ppo", "val", "eval"], str] = {}
    """Source split read for each pipeline split, e.g. {sft: train, eval: validation}; unlisted ones by their own name."""
    entity_splits: dict[Literal["sft", "rm", "ppo", "val", "eval"], Float] = {
        "sft": 0.4, "rm": 0.1, "ppo": 0.2, "val": 0.1, "eval": 0.2}
    """fact_table only: the share of entities in each pipeline split, summing to 1. An entity's sha256 places
    it in [0, 1), cut by these fractions in the order listed, so all its questions share one split."""

    target_style: Literal["sentence", "answer"] = "sentence"
    """fact_table only: the SFT target is the full sentence ("The capital of France is Paris.") or the bare
    answer ("Paris."), as TriviaQA's are. With the bare answer the model's first token is either the answer or
    the start of "I don't know": the abstention is decided where the answer is retrieved, not one phrase
    earlier. Scoring reads the answer prefix either way."""

    @model_validator(mode="after")
    def _check_entity_splits(self) -> "DataConfig":
        total = sum(self.entity_splits.values())
        if any(f < 0 for f in self.entity_splits.values()) or abs(total - 1.0) > 1e-6:
            shares = ", ".join(f"{k} {v:g}" for k, v in self.entity_splits.items())
            raise ValueError(f"entity_splits must be fractions >= 0 summing to 1 (got {shares or 'none'}: "
                             f"sum {total:g})")
        return self


class FactCheckerConfig(Section):
    """The fact checker every stage uses (halluray/factuality/checking.py): labels the atomic facts of long-form
    responses and grades short answers as correct, incorrect or abstain."""
    kind: str = "world"
    """'world' (the synthetic world's exact checker), 'qa' (short answers only: TriviaQA-style exact match
    against the prompt record's `answers`; free and deterministic), 'fact_table' (a table of accepted answers,
    `table_path`: short answers exactly, long form by a string-matching heuristic), 'openai' (FActScore over
    an OpenAI-compatible API: the measure to report for long form, and the only kind that needs no
    ground-truth answers), or 'package.module:callable' returning an object with decompose(response) and
    verify(topic, facts)."""
    base_url: str = "https://api.openai.com/v1"
    """OpenAI-compatible endpoint; chat completions are POSTed to `base_url`/chat/completions. https only,
    unless `allow_http`."""
    allow_http: bool = False
    """Allow a plain http:// `base_url`, whose key and prompts cross the network unencrypted; no host is
    exempt, a local server on 127.0.0.1 needs it too."""
    model: str = "gpt-3.5-turbo"
    """Chat model that decomposes and verifies (FActScore used GPT-3.5)."""
    api_key_env: str = "OPENAI_API_KEY"
    """NAME of the variable holding the API key, read from the node's environment or from the 0600 file
    named by `<NAME>_FILE` (halluray/secrets.py); the key itself never goes in a config or a log."""
    timeout_s: Float = Field(60.0, gt=0)
    """Seconds to wait for the connection or the next bytes of a reply (each socket wait)."""
    total_timeout_s: Float = Field(300.0, gt=0)
    """Deadline of one chat request over all its attempts, retry waits and reads."""
    max_response_bytes: Int = Field(4 * 1024 * 1024, ge=1)
    """A reply larger than this fails at once (it is not retried)."""
    max_retries: Int = Field(3, ge=0)
    """Retries after a timeout, connection error, HTTP 408/409/425/429/5xx or malformed body, with exponential
    backoff, or after the server's Retry-After seconds on 429/503 (within `total_timeout_s`)."""
    retry_backoff_s: Float = Field(1.0, ge=0)
    """Wait before the first retry; doubled for each further retry."""
    max_tokens: Int = Field(256, ge=1)
    """Completion length limit per request."""
    knowledge_path: str | None = None
    """Optional jsonl of knowledge-source passages ({"topic" or "title": ..., "text": ...}) shown to the verifier."""
    max_passage_chars: Int = Field(4000, ge=0)
    """A knowledge passage is cut to this many characters in the verification prompt."""
    options: dict[str, Any] = {}
    """Keyword arguments passed to a user callable given as `kind`."""
    table_path: str | None = None
    """kind 'fact_table': a .csv or .jsonl of `entity`, `attribute`, `answers` (a list, or `|`-separated
    aliases, canonical first). A table can hold aliases a prompt record lacks, and gives long-form checking a
    ground truth that costs no API calls."""
    cache_path: str | None = None
    """A jsonl of the HTTP checker's replies by (model, messages), shared by every stage that names it: API
    calls are the slow and paid part, and at temperature 0 a re-run must not pay twice. None: the cache file
    the stage passes (the run directory's fact_checker_cache.jsonl), else memory only."""
    max_concurrency: Int = Field(4, ge=1)
    """Requests in flight at once in a batch: one at a time, a checker is bound by the API's latency, not its
    throughput. Keep it within the API's rate limit (a 429 is retried after its Retry-After)."""
    prompt_price_per_1m: Float = Field(0.0, ge=0)
    """USD per million prompt tokens, only for the cost estimate printed after each batch, so a run's bill is
    seen while it grows; 0 (and a 0 completion price) leaves the estimate out."""
    completion_price_per_1m: Float = Field(0.0, ge=0)
    """USD per million completion tokens, for the same estimate."""
    responder_model: str | None = None
    """Model that answers the prompts as the independent source of `reward_data.source: standard` on real
    data; the point of that source is knowledge that is not the policy's. None: `model`."""

    @model_validator(mode="after")
    def _check(self) -> "FactCheckerConfig":
        module, sep, attr = self.kind.partition(":")
        if self.kind not in ("world", "qa", "fact_table", "openai") and not (sep and module.strip() and attr.strip()):
            raise ValueError(f"kind must be 'world', 'qa', 'fact_table', 'openai' or an import path "
                             f"'package.module:callable' (got {self.kind!r})")
        if self.kind == "fact_table" and not self.table_path:
            raise ValueError("kind 'fact_table' needs table_path: a .csv or .jsonl of entity, attribute, answers")
        return self


class UnfamiliarityConfig(Section):
    """Unfamiliarity scores (paper §4.1, App. B–D), measured by few-shot prompting the base model."""
    tasks: list[Literal["long_form", "short_qa", "mcq"]] = ["long_form", "short_qa", "mcq"]
    n_shots: Int = Field(2, ge=0)
    long_form_samples: Int = Field(2, ge=1)
    long_form_threshold: Float = 2.0
    """A bio prompt is unfamiliar if its mean number of false facts exceeds this."""
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


class RewardDataConfig(Section):
    """Reward-model training data on the RM prompt split, labeled by the ground-truth fact checker."""
    source: Literal["conservative", "standard"] = "conservative"
    """conservative: samples from the SFT model (same knowledge as the RM); standard: the independent source."""
    samples_per_prompt: Int = Field(4, ge=1)
    temperature: Float = Field(1.0, gt=0)
    max_new_tokens: Int = Field(48, ge=1)
    source_accuracy: Annotated[list[Annotated[Float, Field(ge=0, le=1)]] | None, BeforeValidator(_as_list)] = None
    """Probability that the independent response source (GPT-3.5's role for the standard RM) states a fact
    correctly: one number for every person, or one per familiarity tier (same length as world.fact_frequencies,
    least familiar first). None: rising evenly from 0.6 on the least familiar tier to 0.9 on the most familiar
    (a strong external model knows famous people better too, and is usually right)."""


class RewardModelConfig(Section):
    """Reward models initialised from the pretrained base model (paper: batch 32, lr 2e-5)."""
    kind: Literal["two-stage", "two-stage-text", "scalar"] = "two-stage"
    """two-stage-text (paper §5, App. D; what the shipped demo and llama2 configs use): a decomposer LM writes the
    atomic facts, a verifier LM classifies each given the prompt (works on any text); two-stage: the ablation with
    the world's template decomposer + a linear verifier over three numbers of the LM's belief in the stated
    value (the field default, cheap for small tests); scalar: a head regressing the reward."""
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
    decomposer_recombined: Int = Field(0, ge=0)
    """two-stage-text: this many extra decomposer examples made by recombining the training responses'
    sentences across responses (where each fact is one of its response's sentences, as in the synthetic
    world): teaches a small LM to copy facts rather than write what it knows (halluray/reward_models/text.py)."""
    """two-stage-text: the decomposer's learning rate; None: `lr`."""
    decomposer_max_new_tokens: Int = Field(64, ge=1)
    """two-stage-text: the most tokens the decomposer writes for one response (greedy)."""
    max_length: Int | None = Field(None, ge=16)
    """two-stage-text: the longest input in tokens: longer decomposer examples are left out of training,
    longer verifier inputs keep their end (the fact). None: the base model's context length."""


class RoleResources(Section):
    """How many Ray actors a role gets and what each reserves on its placement-group bundle."""
    num_actors: Int = Field(1, ge=1)
    num_cpus: Float = Field(1.0, ge=0)
    num_gpus: Float = Field(0.0, ge=0)


class ActorsConfig(Section):
    """Ray actor groups (actors/). Training roles run DeepSpeed across their `num_actors` ranks."""
    policy: RoleResources = RoleResources(num_actors=2)
    critic: RoleResources = RoleResources(num_actors=2)
    reference: RoleResources = RoleResources(num_actors=1)
    reward: RoleResources = RoleResources(num_actors=1)
    rollout: RoleResources = RoleResources(num_actors=1)
    reward_trainer: RoleResources = RoleResources(num_actors=2)
    """The ranks that train reward models (`halluray train-rm`): the two-stage verifier or the scalar RM."""
    threads_per_actor: Int | None = Field(None, ge=1)
    """torch threads per actor. None: a node's cores over the actors that compute at once (`busy_actors`), at
    least 1; with more actors than cores, more threads only oversubscribe (docs/runtime.md#threads)."""
    rollout_mode: Literal["separate", "one-step-off", "colocated"] = "separate"
    """Who generates PPO's responses. `separate`: the rollout group, synced with the policy after every update
    (on-policy). `one-step-off`: the rollout group generates batch t+1 while policy and critic train on batch t,
    so each batch comes from the policy one update behind (logged as `rollout/policy_lag`; PPO's ratio is still
    taken against the current policy's log-probs). `colocated`: the policy ranks generate themselves, no rollout
    group and no weight sync (the hybrid-engine idea, for small clusters). docs/performance.md has the timings."""
    placement_strategy: Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"] = "PACK"
    call_timeout_s: Float = Field(600.0, gt=0)
    """Every ray.get the framework issues gives up after this and names the role and rank."""
    collective_timeout_s: Float = Field(300.0, gt=0)
    """Timeout of the torch.distributed groups (gloo/NCCL) the actors join."""
    max_restarts: Int = Field(2, ge=0)
    """How often a run recovers from dying workers: Ray restarts a stateless worker (rollout, reward,
    reference) and the phase is redone; a failed training rank (policy, critic) restarts every group from the
    last complete checkpoint. 0: the first failure ends the run (with the `--resume` command to continue)."""
    weight_sync: Literal["object_store", "broadcast"] = "broadcast"
    """How the policy's weights reach rollout workers. `make bench` measured, 110M params, ZeRO-3 x 2 on
    2 CPU cores: gloo broadcast 0.60 s, object store 3.24 s."""
    reuse_actors: bool = True
    """Keep a group's actors alive when its stage or run ends cleanly and hand them to the next group of the
    same role, ranks and resources that this process starts (the demo's second PPO run, every stage's eval).
    A new actor costs a process and seconds of imports; docs/performance.md#actor-reuse. Idle actors are
    killed when a new group needs their resources, and by Ray when the driver exits."""

    def busy_actors(self, lora: bool = False) -> int:
        """The most actors that compute at the same moment in one run: PPO's scoring phase (policy, critic,
        reference unless LoRA makes the policy its own reference, reward), its rollout, or reward training."""
        scoring = self.policy.num_actors + self.critic.num_actors + self.reward.num_actors
        scoring += 0 if lora else self.reference.num_actors
        rollout = 0 if self.rollout_mode == "colocated" else self.rollout.num_actors
        return max(scoring, rollout, self.reward_trainer.num_actors)

    def threads(self, cores: int, lora: bool = False) -> int:
        """`threads_per_actor`, or `cores` shared by the actors busy at once."""
        return self.threads_per_actor or max(1, cores // self.busy_actors(lora))


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


class DeepSpeedConfig(Section):
    """Merged into configs/deepspeed/zero{zero_stage}.json for every training role."""
    zero_stage: Annotated[Literal[0, 2, 3], BeforeValidator(_not_bool)] = 2
    offload_optimizer: bool = False
    offload_param: bool = False
    """ZeRO-3 only."""
    gradient_accumulation_steps: Int = Field(1, ge=1)
    gradient_clipping: Float = Field(1.0, ge=0)
    gradient_checkpointing: bool = False
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """auto: bf16 on GPU, fp32 on CPU."""


class RewardConfig(Section):
    """What scores PPO responses (the reward actor)."""
    kind: Literal["fact_checker", "qa_checker", "callable", "model"] = "fact_checker"
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


class PPOConfig(Section):
    """PPO (paper App. D, long form: batch 16, cliprange 0.005, KL coef 0.5, lr 1e-5, LoRA r=16)."""
    name: DirName = "ppo"
    """Subdirectory of the run directory for this PPO run (checkpoints/, model/); one directory name."""
    steps: Int = Field(20, ge=1)
    """PPO iterations (each: rollout a prompt batch, score, update, sync)."""
    batch_size: Int = Field(16, ge=1)
    """Prompts per iteration."""
    minibatch_size: Int = Field(16, ge=1)
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

    @model_validator(mode="after")
    def _check(self) -> "PPOConfig":
        if self.plateau_patience and not self.eval_every:
            raise ValueError("plateau_patience needs eval_every > 0 (the plateau is read from the evaluations)")
        if self.batch_size % self.minibatch_size:
            raise ValueError(f"batch_size ({self.batch_size}) must be a multiple of minibatch_size "
                             f"({self.minibatch_size})")
        return self


class LoggingConfig(Section):
    wandb_mode: Literal["online", "offline", "disabled", "auto"] = "auto"
    """auto: WANDB_MODE if set, else online when WANDB_API_KEY or WANDB_API_KEY_FILE is set, offline
    otherwise (logs under run_dir/wandb). disabled: metrics.jsonl only. W&B runs are named
    `<run.name>-<stage>`, grouped by run.name."""
    project: str = "halluray"
    """W&B project."""
    entity: str | None = None
    """W&B team or user; None uses the API key's default entity."""
    tags: list[str] = []
    """W&B tags added to every stage's run."""
    init_timeout_s: Float = Field(90.0, gt=0)
    """Seconds `wandb.init` may take; past it the stage warns and logs to metrics.jsonl only."""
    finish_timeout_s: Float = Field(120.0, gt=0)
    """Seconds the end of a stage waits for W&B to finish; past it the stage warns and goes on (an
    unfinished online run can be uploaded later with `wandb sync`)."""


class EvalConfig(Section):
    samples_per_prompt: Int = Field(1, ge=1)
    temperature: Float = Field(1.0, gt=0)
    split: Literal["eval", "val"] = "eval"
    """The split the short-QA experiments are measured on. Tune settings with `val` (the world's validation
    people, a fact table's validation entities), report with `eval` (test people or entities)."""


class ExperimentConfig(Section):
    run: RunConfig = RunConfig()
    seed: Int = 0
    threads: Int | None = Field(None, ge=1)
    """torch threads for this process; None lets torch decide."""
    world: WorldConfig = WorldConfig()
    model: ModelConfig = ModelConfig()
    lora: LoRAConfig = LoRAConfig()
    data: DataConfig = DataConfig()
    fact_checker: FactCheckerConfig = FactCheckerConfig()
    unfamiliarity: UnfamiliarityConfig = UnfamiliarityConfig()
    sft: SFTConfig = SFTConfig()
    reward_data: RewardDataConfig = RewardDataConfig()
    reward_model: RewardModelConfig = RewardModelConfig()
    ppo: PPOConfig = PPOConfig()
    actors: ActorsConfig = ActorsConfig()
    deepspeed: DeepSpeedConfig = DeepSpeedConfig()
    logging: LoggingConfig = LoggingConfig()
    eval: EvalConfig = EvalConfig()

    @model_validator(mode="after")
    def _check_sections(self) -> "ExperimentConfig":
        a, tiers = self.reward_data.source_accuracy, len(self.world.fact_frequencies)
        if a and len(a) not in (1, tiers):
            raise ValueError(f"reward_data.source_accuracy has {len(a)} values but world.fact_frequencies has "
                             f"{tiers} tiers: give one number, or one per tier")
        return self

    @property
    def run_dir(self) -> Path:
        return Path(self.run.output_dir) / self.run.name

    def source_accuracy_by_frequency(self) -> dict[int, float]:
        """The independent source's accuracy for a person of each corpus frequency."""
        a, frequencies = self.reward_data.source_accuracy, self.world.fact_frequencies
        if a is None:
            a = [round(0.6 + 0.3 * i / max(1, len(frequencies) - 1), 4) for i in range(len(frequencies))]
        return dict(zip(frequencies, a * len(frequencies) if len(a) == 1 else a))

    def redacted(self) -> dict:
        """The config as plain data without secrets (halluray.secrets.redact), for files and W&B."""
        return redact(self.model_dump(mode="json"), env_names=[self.fact_checker.api_key_env])

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.redacted(), sort_keys=False)
