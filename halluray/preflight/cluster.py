"""Does a phase's placement fit the live nodes of a Ray cluster? Pure: the nodes come in as data (actors/cluster.py
reads them from Ray), so the rules are tested on hand-made clusters.

Ray places a group's bundles by its strategy: STRICT_SPREAD one bundle per node, STRICT_PACK all on one node,
PACK and SPREAD wherever they fit. The checks below are the ones that hold whatever Ray decides (a group needs
enough nodes that can each hold one of its actors, and all groups together need the cluster's totals), so an
error here is never a false alarm; a placement that passes can still wait for resources other jobs hold.
"""

from __future__ import annotations

from dataclasses import dataclass

from halluray.preflight.plan import PhasePlan, fmt_bytes


@dataclass(frozen=True)
class Node:
    """A live node as Ray reports it: its total resources (what an idle node offers)."""

    node_id: str
    ip: str
    cpus: float
    gpus: float
    memory: int
    """Bytes of memory Ray may hand to tasks and actors there (its `memory` resource)."""

    @property
    def name(self) -> str:
        """How a line names the node: its address, and enough of its id to tell nodes on one machine apart."""
        return f"{self.ip} ({self.node_id[:8]})"


@dataclass(frozen=True)
class Demand:
    """One role's actors: how many, and what each asks for."""

    role: str
    actors: int
    cpus: float
    gpus: float
    host_bytes: int = 0
    """Host memory one actor needs (the plan's estimate); 0 when unknown."""

    def fits(self, node: Node) -> bool:
        return self.cpus <= node.cpus and self.gpus <= node.gpus and self.host_bytes <= node.memory

    def bundle(self) -> str:
        parts = [f"CPU: {self.cpus:g}"] + ([f"GPU: {self.gpus:g}"] if self.gpus else [])
        memory = f", about {fmt_bytes(self.host_bytes)} of memory" if self.host_bytes else ""
        return "{" + ", ".join(parts) + "}" + memory


def demands(phase: PhasePlan) -> list[Demand]:
    """What the phase's roles ask of the cluster, from the plan (`preflight.check`)."""
    return [Demand(row.use.role, row.resources.num_actors, row.resources.num_cpus, row.resources.num_gpus,
                   row.host_bytes) for row in phase.rows]


def placement_problem(wanted: list[Demand], strategy: str, nodes: list[Node]) -> str | None:
    """Why the roles in `wanted`, placed at once with `strategy`, cannot fit `nodes`; None when they can."""
    if not nodes:
        return "the cluster has no live node"
    for d in wanted:
        able = [n for n in nodes if d.fits(n)]
        if not able:
            return (f"no live node can hold one {d.role} actor ({d.bundle()}); the largest offers "
                    f"{_largest(nodes)}: lower what each asks for (actors.{d.role}.num_cpus / num_gpus; its memory: "
                    f"`halluray plan`) or add larger nodes")
        if strategy == "STRICT_SPREAD" and len(able) < d.actors:
            return (f"actors.placement_strategy=STRICT_SPREAD puts each of the {d.actors} {d.role} actors on a node "
                    f"of its own and {len(able)} of the {len(nodes)} live nodes can hold one ({d.bundle()}): add "
                    f"nodes, lower actors.{d.role}.num_actors, or use PACK or SPREAD")
        if strategy == "STRICT_PACK":
            whole = Demand(d.role, 1, d.cpus * d.actors, d.gpus * d.actors, d.host_bytes * d.actors)
            if not any(whole.fits(n) for n in nodes):
                return (f"actors.placement_strategy=STRICT_PACK puts all {d.actors} {d.role} actors on one node "
                        f"({whole.bundle()}) and the largest live node offers {_largest(nodes)}: use PACK, or "
                        f"lower actors.{d.role}.num_actors")
    for resource, unit in (("cpus", "CPUs"), ("gpus", "GPUs"), ("host_bytes", "memory")):
        need = sum(getattr(d, resource) * d.actors for d in wanted)
        have = sum(getattr(n, "memory" if resource == "host_bytes" else resource) for n in nodes)
        if need > have:
            largest = max(wanted, key=lambda d: getattr(d, resource) * d.actors)
            shown = (fmt_bytes(int(need)), fmt_bytes(int(have))) if unit == "memory" else (f"{need:g}", f"{have:g}")
            return (f"the roles placed at once need {shown[0]} {unit} and the {len(nodes)} live nodes have "
                    f"{shown[1]} (most: {largest.role}, {largest.actors} x {largest.bundle()}): add nodes or lower "
                    f"actors.{largest.role}.num_actors")
    return None


def _largest(nodes: list[Node]) -> str:
    n = max(nodes, key=lambda n: (n.gpus, n.cpus, n.memory))
    return f"CPU: {n.cpus:g}, GPU: {n.gpus:g}, {fmt_bytes(n.memory)} of memory"
