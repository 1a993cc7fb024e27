"""The Ray cluster as the driver sees it: joining the one at RAY_ADDRESS, its live nodes, which node holds each
bundle of a placement group, and whether a node that held one has died.

Ray declares a node dead when its raylet misses health checks (`health_check_period_ms` x
`health_check_failure_threshold` on the head: 3 s x 5 by default). Before that, the actors of a killed node
already fail their calls ("actor unavailable"); `node_lost` tells that apart from one dead actor process by
asking the node's raylet, and then waits for Ray's verdict, so a lost node is named as such.
"""

from __future__ import annotations

import logging
import socket
import sys
import time
from urllib.parse import urlparse

import ray
from ray.util.placement_group import PlacementGroup, placement_group_table

from halluray import stopping
from halluray.errors import InputError
from halluray.preflight.cluster import Demand, Node, placement_problem

VERDICT_WAIT_S = 60.0
"""How long `node_lost` waits for Ray to declare dead a node whose raylet no longer answers (Ray's default
health checks take about 15 s)."""


def join_cluster(address: str, timeout_s: float) -> None:
    """Join the cluster at `address` (RAY_ADDRESS). ray.init has no timeout of its own: fail fast, naming the
    address, when nothing listens there."""
    _reachable(address, timeout_s)
    # A submitted job keeps its own runtime env (actors set their threads); Ray's "connecting" lines would
    # come before a preflight error that is meant to be one line.
    ray.init(log_to_driver=False, logging_level=logging.WARNING)


def _reachable(address: str, timeout_s: float) -> None:
    if address == "auto":
        return
    parsed = urlparse(address if "://" in address else f"ray://{address}")
    if parsed.hostname is None or parsed.port is None:
        return
    try:
        socket.create_connection((parsed.hostname, parsed.port), timeout=min(timeout_s, 30.0)).close()
    except OSError as e:
        raise InputError(f"RAY_ADDRESS={address}: nothing answers there ({e.__class__.__name__}); start the "
                         f"cluster first (`ray up cluster.yaml`) or unset RAY_ADDRESS to run locally") from None


def live_nodes() -> list[Node]:
    """Every live node with its total CPUs, GPUs and memory."""
    return [_as_node(n) for n in ray.nodes() if n.get("Alive")]


def bundle_nodes(pg: PlacementGroup) -> list[str]:
    """The node id holding each bundle of a ready placement group, in bundle order (a group's rank order)."""
    table = placement_group_table(pg)["bundles_to_node_id"]
    return [table[i] for i in range(len(table))]


def _node_records() -> dict[str, dict]:
    return {n["NodeID"]: n for n in ray.nodes()}


def dead_node(node_ids: list[str]) -> Node | None:
    """The first of `node_ids` that Ray has declared dead, or None."""
    records = _node_records()
    for node_id in dict.fromkeys(node_ids):
        record = records.get(node_id)
        if record is not None and not record.get("Alive"):
            return _as_node(record)
    return None


def node_lost(node_id: str, wait_s: float = VERDICT_WAIT_S) -> Node | None:
    """The node, when it is dead or dying (its raylet does not answer: Ray will declare it dead), after waiting
    up to `wait_s` for Ray to say so; None when the node is alive (only a process on it died)."""
    record = _node_records().get(node_id)
    if record is None:
        return None
    if record.get("Alive") and _raylet_answers(record):
        return None
    deadline = time.monotonic() + wait_s
    while record.get("Alive") and time.monotonic() < deadline:
        time.sleep(0.5)
        record = _node_records().get(node_id, record)
    return _as_node(record)


def _raylet_answers(record: dict) -> bool:
    try:
        socket.create_connection((record["NodeManagerAddress"], record["NodeManagerPort"]), timeout=2.0).close()
    except OSError:
        return False
    return True


def _as_node(record: dict) -> Node:
    resources = record.get("Resources") or {}
    return Node(record["NodeID"], record["NodeManagerAddress"], resources.get("CPU", 0.0), resources.get("GPU", 0.0),
                int(resources.get("memory", 0)))


def placement(groups: list) -> dict[str, list[dict]]:
    """Each group's ranks with the node holding them (ActorGroup.nodes), as a run directory records it."""
    records = _node_records()
    return {g.role: [{"rank": rank, "node_id": node, "ip": records.get(node, {}).get("NodeManagerAddress")}
                     for rank, node in enumerate(g.nodes)] for g in groups}


def node_name(node_id: str) -> str:
    record = _node_records().get(node_id)
    return _as_node(record).name if record else node_id[:8]


ROOM_REPORT_S = 10.0
"""How often `wait_for_room` says what it still waits for."""


def wait_for_room(wanted: list[Demand], strategy: str, wait_s: float, prefix: str) -> str | None:
    """Wait until `wanted`, placed with `strategy`, fits the live nodes (a replacement node joined), saying on
    stderr every ROOM_REPORT_S what is missing; returns None once it fits, else why not after `wait_s`."""
    start = time.monotonic()
    next_report = start
    while True:
        problem = placement_problem(wanted, strategy, live_nodes())
        waited = time.monotonic() - start
        if problem is None:
            if waited >= 1.0:
                print(f"{prefix}: the cluster can place every group again after {waited:.0f} s", file=sys.stderr,
                      flush=True)
            return None
        if waited >= wait_s:
            return problem
        stopping.check("while waiting for a node")  # nothing runs: a stop asked for now need not wait for a step
        if time.monotonic() >= next_report:
            print(f"{prefix}: waiting for a node ({waited:.0f} s of actors.node_wait_s={wait_s:g}): {problem}",
                  file=sys.stderr, flush=True)
            next_report += ROOM_REPORT_S
        time.sleep(1.0)
