"""What a phase is: the roles one stage places at the same time (`Phase`), each with the model its actors hold
and the work they do (`Use`). `halluray.preflight.stages` builds them; `plan.py` sizes them."""

from __future__ import annotations

from dataclasses import dataclass

from halluray.preflight.models import ModelShape


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
    """LoRA parameters on top of the model (the policy and its rollout copy with lora.enabled; the critic with
    ppo.lora_critic too)."""


@dataclass(frozen=True)
class Phase:
    """Roles one stage places at the same time."""

    name: str
    uses: tuple[Use, ...]
