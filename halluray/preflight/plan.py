"""The plan `preflight.check` returns: per phase, every role's actors, resources and memory per actor, as a
fixed-width table (`halluray plan` prints it)."""

from __future__ import annotations

from dataclasses import dataclass

from halluray.config import RoleResources
from halluray.errors import InputError
from halluray.preflight.memory import LAYER_ACTIVATIONS, PROMPT_TOKENS, ActorMemory, Machine
from halluray.preflight.phases import Use

COLUMNS = (("role", 15), ("actors", 6), ("CPU", 5), ("GPU", 5), ("ZeRO", 4), ("params", 10), ("grads", 10),
           ("optimizer", 10), ("activations", 11), ("per actor", 10), ("offload", 10), ("where", 5))


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return "?"
    if n == 0:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _num(x: float) -> str:
    return f"{x:g}"


@dataclass(frozen=True)
class Row:
    """One role of a phase: its resources and what each of its actors holds."""

    use: Use
    resources: RoleResources
    memory: ActorMemory
    zero: int | None
    """The DeepSpeed ZeRO stage of a training role; None for inference roles."""

    @property
    def on_gpu(self) -> bool:
        return self.resources.num_gpus > 0

    @property
    def host_bytes(self) -> int:
        """Host memory one actor takes: everything on a CPU actor, the offloaded part on a GPU actor."""
        return self.memory.offloaded if self.on_gpu else self.memory.total

    def cells(self) -> tuple[str, ...]:
        r, m = self.resources, self.memory
        where = "GPU" if self.on_gpu else "CPU"
        return (self.use.role, str(r.num_actors), _num(r.num_cpus), _num(r.num_gpus),
                "-" if self.zero is None else str(self.zero), fmt_bytes(m.params), fmt_bytes(m.grads),
                fmt_bytes(m.optimizer), fmt_bytes(m.activations), fmt_bytes(m.on_device), fmt_bytes(m.offloaded),
                where)


@dataclass(frozen=True)
class PhasePlan:
    """The roles one stage places at once."""

    name: str
    rows: tuple[Row, ...]

    @property
    def gpus(self) -> float:
        return sum(r.resources.num_actors * r.resources.num_gpus for r in self.rows)

    @property
    def host_bytes(self) -> int:
        return sum(r.resources.num_actors * r.host_bytes for r in self.rows)

    @property
    def gpu_bytes(self) -> int:
        return sum(r.resources.num_actors * r.memory.on_device for r in self.rows if r.on_gpu)


@dataclass(frozen=True)
class Plan:
    stage: str
    phases: tuple[PhasePlan, ...]
    machine: Machine
    models: tuple[str, ...]
    """One line per model the roles hold: where it is and its size."""
    notes: tuple[str, ...]
    nodes: tuple = ()
    """The live nodes (preflight.cluster.Node) of the Ray cluster at RAY_ADDRESS that the plan was checked
    against; none when the plan was made without joining it."""

    def table(self) -> str:
        m = self.machine
        gpus = f"{m.gpus} GPUs" + (f" of {fmt_bytes(m.gpu_bytes)}" if m.gpus else "")
        where = f"this machine: {m.cpus} CPUs, {gpus}, {fmt_bytes(m.host_bytes)} host memory available"
        if m.cluster:
            n = self.nodes
            where = (f"the Ray cluster at RAY_ADDRESS={m.cluster}: {len(n)} live nodes, "
                     f"{sum(x.cpus for x in n):g} CPUs, {sum(x.gpus for x in n):g} GPUs, "
                     f"{fmt_bytes(sum(x.memory for x in n))} memory" if n
                     else f"the Ray cluster at RAY_ADDRESS={m.cluster} (not joined: its nodes are not checked)")
        lines = [f"halluray {self.stage}: actors placed on {where}"]
        lines += [f"  model {line}" for line in self.models]
        header = "  ".join(f"{name:<{w}}" if i == 0 else f"{name:>{w}}" for i, (name, w) in enumerate(COLUMNS))
        for phase in self.phases:
            lines += ["", f"[{phase.name}]", header, "-" * len(header)]
            for row in phase.rows:
                lines.append("  ".join(f"{c:<{w}}" if i == 0 else f"{c:>{w}}"
                                       for i, (c, (_, w)) in enumerate(zip(row.cells(), COLUMNS))))
            total = (f"at once: {sum(r.resources.num_actors for r in phase.rows)} actors, {_num(phase.gpus)} GPUs, "
                     f"{fmt_bytes(phase.gpu_bytes)} GPU memory, {fmt_bytes(phase.host_bytes)} host memory")
            if not m.cluster:
                total += f" (this machine: {m.gpus} GPUs, {fmt_bytes(m.host_bytes)} host memory available)"
            lines.append(total)
        if not self.phases:
            lines += ["", "no actors: this stage runs in this process"]
        notes = [*self.notes,
                 "per actor = what one actor holds on its device (GPU, or host memory on CPU); offload = host memory "
                 "ZeRO offload adds; '?' = unknown, '-' = none",
                 f"activations and KV caches are estimates: {PROMPT_TOKENS}-token prompts plus the generated tokens, "
                 f"{LAYER_ACTIVATIONS} hidden-sized values per token and layer for backward, fp32 logits",
                 "each actor process also holds its runtime (Python, torch, Ray; a CUDA context on GPU), not counted"]
        lines += ["", "notes:"] + [f"- {n}" for n in notes]
        return "\n".join(lines)


class PlanError(InputError):
    """The stage does not fit (resources or memory): the message names the key and the fix, and `plan` is the
    plan that does not fit, for `halluray plan` to print above it."""

    def __init__(self, message: str, plan: Plan):
        super().__init__(message)
        self.plan = plan
