"""Preflight: check a stage's config against its inputs and this machine before Ray starts or an actor is placed.

`check(cfg, stage)` reads what the stage needs (model configs and safetensors headers, never weights; a stage
that runs needs the weights, tokenizers and data files to exist, `plan` only the models' config.json), checks
that every training batch splits over its ranks, that the roles placed at once fit this machine's CPUs and
GPUs, and that each actor's estimated memory fits its device; it writes nothing and takes well under a second
once imported (a plan from a config.json without weights first imports transformers: a few seconds). A
problem raises `InputError` with one paragraph naming the config key (or path) and the fix; otherwise it
returns the `Plan`, whose `table()` `halluray plan` prints.
"""

from __future__ import annotations

import math

from halluray.config import ExperimentConfig, RoleResources
from halluray.errors import InputError
from halluray.preflight.cluster import Node, demands, placement_problem
from halluray.preflight.memory import (
    ActorMemory,
    Machine,
    forward_memory,
    generation_memory,
    this_machine,
    training_memory,
)
from halluray.preflight.plan import PhasePlan, Plan, PlanError, Row, fmt_bytes
from halluray.preflight.stages import STAGES, Inputs, Phase, Use

__all__ = ["Plan", "PlanError", "STAGES", "check"]


def check(cfg: ExperimentConfig, stage: str, nodes: list[Node] | None = None) -> Plan:
    """The plan of `halluray <stage>` with `cfg` ("plan": the whole pipeline, checking only what no stage
    writes), or InputError naming what to fix. Starts nothing and writes nothing. With RAY_ADDRESS set, the fit is
    checked against `nodes`, the cluster's live nodes (actors/cluster.py `live_nodes`), when given."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; expected one of {', '.join(STAGES)}")
    inputs = Inputs(cfg, running=stage != "plan")
    phases = STAGES[stage](inputs)
    machine = this_machine()
    plan = Plan(stage, tuple(PhasePlan(p.name, tuple(_row(cfg, use) for use in p.uses)) for p in phases), machine,
                _model_lines(phases), tuple(dict.fromkeys(inputs.notes)), tuple(nodes or ()))
    if machine.cluster:
        for phase in plan.phases if nodes is not None else ():
            problem = placement_problem(demands(phase), cfg.actors.placement_strategy, nodes)
            if problem:
                raise PlanError(f"{phase.name} on the Ray cluster at RAY_ADDRESS={machine.cluster}: {problem}", plan)
        return plan
    for phase in plan.phases:
        _fit(phase, machine, plan)
    return plan


def split_error(batch_key: str, batch: int, role: str, actors: int, accumulation: int) -> str | None:
    """Why `batch` does not split over a role's ranks x gradient accumulation (with the fix), or None. The one
    wording of this check: ActorGroup.from_config (actors/group.py) raises it too."""
    if batch % (actors * accumulation) == 0:
        return None
    return (f"{batch_key} ({batch}) must split evenly over the {actors} {role} actors x "
            f"deepspeed.gradient_accumulation_steps ({accumulation}); make it a multiple of {actors * accumulation} "
            f"or change actors.{role}.num_actors")


def _row(cfg: ExperimentConfig, use: Use) -> Row:
    """The role's resources and the memory of one of its actors; training roles check their batch split first."""
    resources: RoleResources = getattr(cfg.actors, use.role)
    n, on_gpu, ds = resources.num_actors, resources.num_gpus > 0, cfg.deepspeed
    if use.work == "train":
        error = split_error(use.batch_key, use.batch, use.role, n, ds.gradient_accumulation_steps)
        if error:
            raise InputError(error)
        memory = training_memory(use.model, ds, n, on_gpu, use.batch // (n * ds.gradient_accumulation_steps),
                                 use.seq, use.adapters)
        return Row(use, resources, memory, ds.zero_stage)
    share = use.batch and math.ceil(use.batch / n)  # call_sharded splits a call's sequences over the actors
    if use.model is None:
        memory = ActorMemory(0, 0, 0, 0)
    elif use.work == "generate":
        memory = generation_memory(use.model, share, use.seq, use.adapters)
    else:
        memory = forward_memory(use.model, share, use.seq)
    return Row(use, resources, memory, None)


def _model_lines(phases: list[Phase]) -> tuple[str, ...]:
    roles: dict[tuple[str, int, float], list[str]] = {}
    for phase in phases:
        for use in phase.uses:
            if use.model:
                m = use.model
                roles.setdefault((m.where, m.params, m.stored_bytes), []).append(use.role)
    return tuple(f"{where}: {params:,} parameters, {width:g} bytes each as saved ({', '.join(dict.fromkeys(r))})"
                 for (where, params, width), r in roles.items())


def _fix(row: Row, phase: str, host: bool) -> str:
    """What makes one actor of `phase` fit its GPU, or the phase's actors fit host memory together."""
    role, key = row.use.role, row.use.batch_key
    if row.zero is None and host:
        return (f"lower {key}, run fewer actors.{role}.num_actors (each holds a whole copy of the weights), or run "
                f"the role on GPUs (actors.{role}.num_gpus)")
    if row.zero is None:
        return (f"lower {key} or add actors.{role}.num_actors (each actor holds a whole copy of the weights, so a "
                f"model larger than one GPU does not fit this role)")
    lora = _lora_fix(row, phase)
    if host:
        return (f"use deepspeed.zero_stage=3, which keeps one copy of the weights and optimizer state across the "
                f"{role} ranks instead of one per rank, {lora}set deepspeed.gradient_checkpointing=true or lower "
                f"{key}, or run the role on GPUs (actors.{role}.num_gpus)")
    return (f"spread it over more ranks with deepspeed.zero_stage=3 (raise actors.{role}.num_actors), offload to "
            f"host memory with deepspeed.offload_optimizer=true (and offload_param=true under ZeRO-3), {lora}or set "
            f"deepspeed.gradient_checkpointing=true or lower {key}")


def _lora_fix(row: Row, phase: str) -> str:
    """LoRA trains adapters on a frozen model: a fix for PPO's policy or critic while they train every weight
    (SFT and reward-model training always do)."""
    if phase != "ppo" or row.use.adapters:
        return ""
    return {"policy": "enable LoRA (lora.enabled=true), ",
            "critic": "give it LoRA adapters (lora.enabled=true, ppo.lora_critic=true), "}.get(row.use.role, "")


def _breakdown(m: ActorMemory) -> str:
    parts = (("parameters", m.params), ("gradients", m.grads), ("optimizer", m.optimizer),
             ("activations", m.activations))
    return ", ".join(f"{name} {fmt_bytes(b)}" for name, b in parts if b)


def _fit(phase: PhasePlan, machine: Machine, plan: Plan) -> None:
    """This machine runs every actor of the phase at once (`init_ray` without RAY_ADDRESS): CPUs per actor
    (Ray's CPUs here are logical, so only one actor's own request is a limit), GPUs, GPU and host memory."""
    for row in phase.rows:
        r = row.resources
        if r.num_cpus > machine.cpus:
            raise PlanError(f"actors.{row.use.role}.num_cpus ({r.num_cpus:g}) is more than this machine's "
                            f"{machine.cpus} CPUs; lower it (torch threads come from actors.threads_per_actor), or "
                            f"submit the job to a Ray cluster (RAY_ADDRESS)", plan)
    if phase.gpus > machine.gpus:
        asks = " + ".join(f"{r.use.role} {r.resources.num_actors} x {r.resources.num_gpus:g}"
                          for r in phase.rows if r.on_gpu)
        largest = max(phase.rows, key=lambda r: r.resources.num_actors * r.resources.num_gpus).use.role
        raise PlanError(f"actors.{largest}.num_gpus: {phase.name} places {asks} = {phase.gpus:g} GPUs at once and "
                        f"this machine has {machine.gpus}; lower actors.<role>.num_gpus (0 runs a role on CPU) or "
                        f"num_actors, or submit the job to a Ray cluster (RAY_ADDRESS)", plan)
    for row in phase.rows:
        allowance = min(row.resources.num_gpus, 1) * machine.gpu_bytes  # an actor uses one device, or a share
        if row.on_gpu and row.memory.on_device > allowance:
            raise PlanError(f"actors.{row.use.role}: each {row.use.role} actor of {phase.name} needs about "
                            f"{fmt_bytes(row.memory.on_device)} of GPU memory ({_breakdown(row.memory)}) and its "
                            f"share of a GPU here is {fmt_bytes(int(allowance))}; "
                            f"{_fix(row, phase.name, host=False)}", plan)
    if phase.host_bytes > machine.host_bytes:
        largest = max(phase.rows, key=lambda r: r.resources.num_actors * r.host_bytes)
        raise PlanError(f"actors.{largest.use.role}: the {phase.name} actors need about {fmt_bytes(phase.host_bytes)} "
                        f"of host memory at once ({largest.use.role}: {largest.resources.num_actors} x "
                        f"{fmt_bytes(largest.host_bytes)}, {_breakdown(largest.memory)} each) and this machine has "
                        f"{fmt_bytes(machine.host_bytes)} available; {_fix(largest, phase.name, host=True)}", plan)
