"""The sections naming what a run starts from: the synthetic world, the base model (built and pretrained on
the world, or a local one), the prompt data, and the fact checker that grades every response."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from halluray.config.base import Float, Int, Section

WORLD_DATASETS = ("world", "world_qa")
"""`data.dataset` values whose prompts come from the synthetic world (everything else is real data)."""


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
    bio_facts: list[Int] = [6, 6]
    """[min, max] facts a reference biography (the long-form SFT target) states, drawn per person, the facts chosen
    at random. Real biographies vary in length; an SFT model that always states every fact never tries a
    shorter bio, so RL has nothing to learn "say less" from. [0, 0] ... [6, 6]; 0 is a fact-free mention."""

    @model_validator(mode="after")
    def _check(self) -> WorldConfig:
        if len(self.fact_frequencies) != len(self.frequency_weights):
            raise ValueError("fact_frequencies and frequency_weights must have the same length")
        if set(self.splits) != {"sft", "rm", "ppo", "val", "eval"} or abs(sum(self.splits.values()) - 1) > 1e-6:
            raise ValueError("splits must give sft, rm, ppo, val and eval fractions summing to 1")
        if len(self.bio_facts) != 2 or not 0 <= self.bio_facts[0] <= self.bio_facts[1] <= 6:
            raise ValueError(f"bio_facts must be [min, max] with 0 <= min <= max <= 6, not {self.bio_facts}")
        return self


class PretrainConfig(Section):
    """Defaults measured on the demo world: the most frequent third then states 0.9 of facts truly."""
    steps: Int = Field(1000, ge=1)
    batch_size: Int = Field(16, ge=1)
    lr: Float = Field(3e-3, gt=0)
    warmup_steps: Int = Field(50, ge=0)
    weight_decay: Float = Field(0.01, ge=0)
    log_every: Int = Field(50, ge=1)
    precision: Literal["fp32", "bf16", "auto"] = "fp32"
    """bf16: forward and backward under bfloat16 autocast, weights and AdamW in fp32. On a CPU with AVX512-BF16
    it about halves a step of the demo's model (docs/performance.md); elsewhere bf16 is emulated, and on an AVX2
    CPU a step took 6-8x as long as in fp32. auto: bf16 where the hardware computes it (a CUDA GPU with bf16, a CPU
    with AVX512-BF16 or AMX), else fp32."""


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
    def _check(self) -> ModelConfig:
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        return self


class DataConfig(Section):
    """Prompt datasets (halluray/data): the world's prompts, or WikiBios, WikiPlots, TriviaQA, MMLU, fact tables
    and entity tables from local files (fact and entity tables also built in)."""
    dataset: Literal["world", "world_qa", "wikibios", "wikiplots", "triviaqa", "mmlu", "fact_table",
                     "entity_table"] = "world"
    """Which loader reads the prompts; halluray/data/<dataset>.py documents its default source columns.

    fact_table: (entity, attribute, question, answers) rows from jsonl/csv/tsv tables or built-in geography
    tables, split by entity with `entity_splits` (docs/real-model.md).
    entity_table: long form, one prompt per entity of an entity table ("Tell me about Peru." -> its reference
    text), split by entity with `entity_splits`, stratified by fame (halluray/data/entity_prompts.py)."""
    path: str | None = None
    """Local file or directory for real datasets (no hub access at run time).

    A jsonl/json/csv/tsv/parquet file ('{split}' in it is replaced by the source split), a save_to_disk
    directory, or a directory of per-split files; anything else is a hub dataset name, which needs the hub
    or a populated datasets cache. For the world, None means the run directory. For fact_table: a table
    file, a directory of tables, or builtin:capitals,city_country. For entity_table: a .jsonl entity table or
    builtin:countries.
    """
    fields: dict[str, str | list[str]] = {}
    """Source column for a record field, overriding the loader's defaults, e.g. {name: input_text.context}.

    Dotted names reach into struct columns (answer.value); a list reads several columns (MMLU choices: [A, B, C, D]).
    """
    subset: str | None = None
    """Dataset configuration when `path` is a hub name (e.g. rc.nocontext for trivia_qa, all for cais/mmlu);
    world_qa: `mcq` asks each person's six questions as multiple choice (halluray mcq-rl)."""
    split_map: dict[Literal["sft", "rm", "ppo", "val", "eval"], str] = {}
    """Source split read for each pipeline split, e.g. {sft: train, eval: validation}; unlisted ones by their own
    name."""
    entity_splits: dict[Literal["sft", "rm", "ppo", "val", "eval"], Float] = {
        "sft": 0.4, "rm": 0.1, "ppo": 0.2, "val": 0.1, "eval": 0.2}
    """fact_table and entity_table: the share of entities in each pipeline split, summing to 1. fact_table: an
    entity's sha256 places it in [0, 1), cut by these fractions in the order listed, so all its questions share
    one split. entity_table: within each fame quartile, a seeded shuffle (`split_seed`) cut by these fractions,
    so every split spans the quartiles."""
    split_seed: Int = 0
    """entity_table only: the seed of its stratified split, apart from the run's `seed` so that runs with other
    seeds train and are evaluated on the same entities."""

    target_style: Literal["sentence", "answer"] = "sentence"
    """fact_table only: the SFT target is the full sentence ("The capital of France is Paris.") or the bare
    answer ("Paris."), as TriviaQA's are. With the bare answer the model's first token is either the answer or
    the start of "I don't know": the abstention is decided where the answer is retrieved, not one phrase
    earlier. Scoring reads the answer prefix either way."""
    mcq_answer: Literal["letter", "text"] = "letter"
    """halluray mcq-letters only: what answers a lettered multiple-choice item ("Q : ... A . x B . y C . z D . w
    Answer :"), in its SFT targets and when it is read back: `letter` ("B", MMLU's and the paper's) or `text` (the
    option's own text, "Ironleaf", the world's answer style). The relabelled arm's unfamiliar items are answered
    with the option at B or C either way. The 0.9M demo model never learns to bind a letter to its option, so
    configs/demo/mcq-letters.yaml uses `text` (README, "Fig. 2 top")."""

    @model_validator(mode="after")
    def _check_entity_splits(self) -> DataConfig:
        total = sum(self.entity_splits.values())
        if any(f < 0 for f in self.entity_splits.values()) or abs(total - 1.0) > 1e-6:
            shares = ", ".join(f"{k} {v:g}" for k, v in self.entity_splits.items())
            raise ValueError(f"entity_splits must be fractions >= 0 summing to 1 (got {shares or 'none'}: "
                             f"sum {total:g})")
        return self


CHECKER_KINDS = ("world", "qa", "fact_table", "entity_table", "openai")
"""`fact_checker.kind` values built in; anything else is an import path."""


class FactCheckerConfig(Section):
    """The fact checker every stage uses (halluray/factuality/checking.py): labels the atomic facts of long-form
    responses and grades short answers as correct, incorrect or abstain."""
    kind: str = "world"
    """'world' (the synthetic world's exact checker), 'qa' (short answers only: TriviaQA-style exact match
    against the prompt record's `answers`; free and deterministic), 'fact_table' (a table of accepted answers,
    `table_path`: short answers exactly, long form by a string-matching heuristic), 'entity_table' (long form
    about the entities of an entity table, `options.path`, default builtin:countries: claims split, resolved
    to their entity and labelled true, false or not checkable; docs/real-model.md), 'openai' (FActScore over
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
    """Keyword arguments passed to a user callable given as `kind`; kind 'entity_table': `path`, the .jsonl
    entity table or built-in one the claims are checked against (default builtin:countries)."""
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
    def _check(self) -> FactCheckerConfig:
        module, sep, attr = self.kind.partition(":")
        if self.kind not in CHECKER_KINDS and not (sep and module.strip() and attr.strip()):
            raise ValueError(f"kind must be 'world', 'qa', 'fact_table', 'entity_table', 'openai' or an import path "
                             f"'package.module:callable' (got {self.kind!r})")
        if self.kind == "entity_table" and (set(self.options) - {"path"} or
                                            not isinstance(self.options.get("path", ""), str)):
            raise ValueError(f"kind 'entity_table' takes one option, path (a .jsonl entity table or "
                             f"builtin:countries); got {self.options!r}")
        if self.kind == "fact_table" and not self.table_path:
            raise ValueError("kind 'fact_table' needs table_path: a .csv or .jsonl of entity, attribute, answers")
        return self
