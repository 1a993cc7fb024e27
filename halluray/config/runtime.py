"""The sections of how a run executes: its name and directory, the Ray actor groups and their resources,
DeepSpeed, and logging (W&B and metrics.jsonl)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, Field

from halluray.config.base import DirName, Float, Int, Section, not_bool


class RunConfig(Section):
    name: DirName = "demo"
    """Run name; the run directory is `output_dir/name` (one directory name: no '/', '..' or leading '.')."""
    output_dir: str = "runs"


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
    node_wait_s: Float = Field(600.0, ge=0)
    """After a node holding actors dies, how long a PPO run waits for the cluster to fit every group again (a
    replacement node joining, e.g. from the autoscaler) before it stops with the `--resume` command."""
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


class DeepSpeedConfig(Section):
    """Merged into configs/deepspeed/zero{zero_stage}.json for every training role."""
    zero_stage: Annotated[Literal[0, 2, 3], BeforeValidator(not_bool)] = 2
    offload_optimizer: bool = False
    offload_param: bool = False
    """ZeRO-3 only."""
    gradient_accumulation_steps: Int = Field(1, ge=1)
    gradient_clipping: Float = Field(1.0, ge=0)
    gradient_checkpointing: bool = False
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """auto: bf16 on GPU, fp32 on CPU."""


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
