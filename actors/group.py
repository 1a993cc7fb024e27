"""ActorGroup: N Ray actors of one role on a placement group; rendezvous, fan-out with sharding, gather.

Every wait has a timeout, and a dead actor is reported by role and rank instead of hanging the driver.
`ActorGroup.from_config(role, cfg)` is how stages and the driver build a group: placement, threads,
timeouts and the batch divisibility check all come from the config there, once.
"""

from __future__ import annotations

import os
import time
from typing import Any

import ray
import torch
from ray.exceptions import GetTimeoutError, RayActorError, RayError, RayTaskError
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from actors.cluster import bundle_nodes, dead_node, join_cluster, node_lost
from actors.roles import Role
from actors.warm_pool import WARM_POOL, kill_group
from halluray import stopping
from halluray.config import ExperimentConfig, RoleResources
from halluray.errors import ActorFailure, InputError
from halluray.preflight import split_error


def init_ray(cfg: ExperimentConfig) -> None:
    """Join the cluster named by RAY_ADDRESS (e.g. inside `ray job submit`), or start a local one (on
    127.0.0.1 only when started from the CLI, which sets that up before Ray is imported)."""
    if ray.is_initialized():
        return
    env = {"DS_ACCELERATOR": os.environ.get("DS_ACCELERATOR", "cpu" if not torch.cuda.is_available() else "cuda"),
           "OMP_NUM_THREADS": str(cfg.actors.threads(node_cores(), cfg.lora.enabled)),
           "TOKENIZERS_PARALLELISM": "false",
           "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE"),
           "WANDB_MODE": os.environ.get("WANDB_MODE", "")}
    address = os.environ.get("RAY_ADDRESS")
    if address:
        join_cluster(address, cfg.actors.call_timeout_s)
    else:
        needed = sum(r.num_actors * r.num_cpus for r in (getattr(cfg.actors, role.value) for role in Role))
        # Logical CPUs: actors mostly wait on each other, so more actors than cores is fine (1 thread each).
        # address="local": without it ray.init joins any Ray already running on this machine (another job's).
        ray.init(address="local", num_cpus=max(int(needed + 0.999), os.cpu_count() or 1), include_dashboard=False,
                 log_to_driver=False, runtime_env={"env_vars": env})
    stopping.rearm()  # ray.init replaced the CLI's SIGTERM handler with one that exits 1


def node_cores() -> int:
    """The cores an actor's node has: this machine's for a local cluster, the smallest worker node's (with any
    CPUs) on a Ray cluster named by RAY_ADDRESS."""
    if os.environ.get("RAY_ADDRESS") and ray.is_initialized():
        cpus = [n["Resources"].get("CPU", 0) for n in ray.nodes() if n.get("Alive")]
        if any(cpus):
            return int(min(c for c in cpus if c))
    return os.cpu_count() or 1


def shard(batch: Any, n: int) -> list[Any]:
    """Split a dict of tensors/lists (or one tensor/list) along the first dimension into n contiguous parts."""
    if isinstance(batch, dict):
        parts = {k: shard(v, n) for k, v in batch.items()}
        return [{k: parts[k][i] for k in batch} for i in range(n)]
    if torch.is_tensor(batch):
        return list(torch.tensor_split(batch, n, dim=0))
    if isinstance(batch, (list, tuple)):
        bounds = [round(i * len(batch) / n) for i in range(n + 1)]
        return [batch[bounds[i]:bounds[i + 1]] for i in range(n)]
    raise TypeError(f"cannot shard a {type(batch).__name__}")


DEATH_GRACE_S = 3.0
"""How long a failed call waits for a peer's death to be reported, so that the dead rank is named."""
NODE_POLL_S = 1.0
"""How often a wait asks Ray whether a node holding one of the group's ranks has died."""


class ActorGroup:
    def __init__(self, actor_cls: type, role: str, resources: RoleResources, *, threads: int = 1,
                 strategy: str = "PACK", call_timeout_s: float = 600.0, collective_timeout_s: float = 300.0,
                 accumulation_steps: int = 1, max_restarts: int = 0, reuse: bool = False):
        self.role, self.call_timeout_s, self.accumulation_steps = role, call_timeout_s, accumulation_steps
        n = resources.num_actors
        bundle = {"CPU": resources.num_cpus, **({"GPU": resources.num_gpus} if resources.num_gpus else {})}
        # A parked group (actors/warm_pool.py) is reused only where these all match.
        self.reuse_key = ((actor_cls, role, n, tuple(sorted(bundle.items())), strategy, threads, collective_timeout_s,
                           max_restarts) if reuse else None)
        parked = WARM_POOL.take(self.reuse_key) if reuse else None
        if parked:
            self.placement_group, self.actors = parked.placement_group, parked.actors
            self.nodes = bundle_nodes(self.placement_group)
            return
        WARM_POOL.make_room([bundle] * n)
        self.placement_group = placement_group([dict(bundle) for _ in range(n)], strategy=strategy)
        try:
            ray.get(self.placement_group.ready(), timeout=call_timeout_s)
        except GetTimeoutError:
            remove_placement_group(self.placement_group)
            raise ActorFailure(f"{role}: the cluster cannot place {n} actors of {bundle} "
                               f"within {call_timeout_s:.0f} s (resources: {ray.cluster_resources()})",
                               role) from None
        self.nodes = bundle_nodes(self.placement_group)
        """The node id holding each rank: what names a lost node's ranks after it is gone."""
        remote_cls = ray.remote(actor_cls)
        self.actors = [
            remote_cls.options(
                num_cpus=resources.num_cpus, num_gpus=resources.num_gpus, max_restarts=max_restarts,
                scheduling_strategy=PlacementGroupSchedulingStrategy(self.placement_group,
                                                                     placement_group_bundle_index=i),
            ).remote(role=role, rank=i, world_size=n, threads=threads, collective_timeout_s=collective_timeout_s)
            for i in range(n)
        ]

    @classmethod
    def from_config(cls, role: Role | str, cfg: ExperimentConfig, *, batch_size: int | None = None,
                    batch_key: str = "") -> ActorGroup:
        """The group of `role` as `cfg.actors` describes it. A training role checks first (before placing
        anything) that `batch_size`, named `batch_key` in errors, splits over its ranks x accumulation.
        Stateless roles get `actors.max_restarts` process restarts from Ray (the driver re-initialises them);
        a training rank is never restarted alone: its group restarts from a checkpoint."""
        role = Role(role)
        a, accumulation = cfg.actors, cfg.deepspeed.gradient_accumulation_steps
        resources: RoleResources = getattr(a, role.value)
        error = None if batch_size is None else split_error(batch_key, batch_size, role.value, resources.num_actors,
                                                             accumulation)
        if error:
            raise InputError(error)
        return cls(role.actor_class, role.value, resources, threads=a.threads(node_cores(), cfg.lora.enabled),
                   strategy=a.placement_strategy, call_timeout_s=a.call_timeout_s,
                   collective_timeout_s=a.collective_timeout_s, accumulation_steps=accumulation,
                   max_restarts=0 if role.trains else a.max_restarts, reuse=a.reuse_actors)

    def __len__(self) -> int:
        return len(self.actors)

    def per_rank(self, batch_size: int) -> int:
        """Each rank's share of a batch that the group splits."""
        return batch_size // len(self)

    def micro_batch_size(self, batch_size: int) -> int:
        """What one rank puts through the model at once: its share over the gradient-accumulation steps."""
        return self.per_rank(batch_size) // self.accumulation_steps

    def init_engines(self, spec) -> list[ray.ObjectRef]:
        """Rendezvous, then every rank starts building its DeepSpeed engine (a collective); returns at once
        so several roles build together."""
        addr, port = self.rendezvous()
        return self.call("init_engine", addr, port, spec)

    def rendezvous(self) -> tuple[str, int]:
        """Rank 0's node address and a free port there: where the role's process group meets."""
        return self.gather([self.actors[0].address.remote()])[0]

    def call(self, method: str, *args, **kwargs) -> list[ray.ObjectRef]:
        """The same call on every actor; returns refs at once so roles can overlap."""
        return [getattr(a, method).remote(*args, **kwargs) for a in self.actors]

    def call_sharded(self, method: str, batch: Any, *args, **kwargs) -> list[ray.ObjectRef]:
        """Actor i gets the i-th contiguous shard of `batch` as its first argument."""
        return [getattr(a, method).remote(part, *args, **kwargs)
                for a, part in zip(self.actors, shard(batch, len(self.actors)))]

    def gather(self, refs: list[ray.ObjectRef], timeout_s: float | None = None) -> list[Any]:
        """Results in rank order. The first failure is raised at once (not after the others finish)."""
        timeout_s = self.call_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout_s
        rank_of = {ref: i for i, ref in enumerate(refs)}
        results: dict[int, Any] = {}
        pending = list(refs)
        while pending:
            left = deadline - time.monotonic()
            ready, pending = ray.wait(pending, num_returns=1, timeout=max(0.0, min(left, NODE_POLL_S)))
            if not ready:
                self._check_nodes()
                if left > NODE_POLL_S:
                    continue
                ranks = sorted(rank_of[r] for r in pending)
                raise ActorFailure(f"{self.role}: rank(s) {ranks} did not answer within {timeout_s:.0f} s",
                                   self.role, ranks[0])
            ref = ready[0]
            rank = rank_of[ref]
            try:
                results[rank] = ray.get(ref)
            except RayActorError as e:
                raise self._died(rank, e) from None
            except RayTaskError as e:
                # A rank whose peer died fails in the collective a moment before the death is reported:
                # name the dead rank (the cause) when one shows up within a short grace period.
                dead = self._first_death(pending, rank_of) or self._lost_peer(sorted(rank_of[r] for r in pending))
                if dead is not None:
                    raise dead from None
                cause = e.cause if getattr(e, "cause", None) is not None else e
                raise ActorFailure(f"{self.role} rank {rank} failed: {cause.__class__.__name__}: {cause}",
                                   self.role, rank, cause=cause.__class__.__name__) from None
            except RayError as e:  # an object lost with its node or owner: the rank's result is gone
                raise self._died(rank, e) from None
        return [results[i] for i in range(len(refs))]

    def _check_nodes(self) -> None:
        """A node holding one of this group's ranks that Ray declared dead ends the wait at once."""
        node = dead_node(self.nodes)
        if node is not None:
            ranks = self.ranks_on(node.node_id)
            raise ActorFailure(f"node {node.name} died ({self.role} ranks {ranks})", self.role, ranks[0],
                               died=True, node_id=node.node_id)

    def _lost_peer(self, ranks: list[int]) -> ActorFailure | None:
        """A peer whose node was lost: its rank's call may hang instead of failing, so ask about the node."""
        for rank in ranks:
            node = node_lost(self.nodes[rank])
            if node is not None:
                return ActorFailure(f"node {node.name} died ({self.role} rank {rank})", self.role, rank, died=True,
                                    node_id=node.node_id)
        return None

    def ranks_on(self, node_id: str) -> list[int]:
        return [rank for rank, node in enumerate(self.nodes) if node == node_id]

    def _died(self, rank: int, error: RayError) -> ActorFailure:
        first_line = str(error).splitlines()[0] if str(error) else ""
        node = node_lost(self.nodes[rank])
        if node is not None:
            return ActorFailure(f"node {node.name} died ({self.role} rank {rank}: {error.__class__.__name__})",
                                self.role, rank, died=True, node_id=node.node_id)
        return ActorFailure(f"{self.role} rank {rank} died: {error.__class__.__name__}: {first_line}", self.role,
                            rank, died=True)

    def _first_death(self, pending: list, rank_of: dict, grace_s: float = DEATH_GRACE_S) -> ActorFailure | None:
        deadline = time.monotonic() + grace_s
        while pending:
            ready, pending = ray.wait(pending, num_returns=1, timeout=max(0.0, deadline - time.monotonic()))
            if not ready:
                return None
            try:
                ray.get(ready[0])
            except RayActorError as e:
                return self._died(rank_of[ready[0]], e)
            except RayTaskError:
                continue
        return None

    def run(self, method: str, *args, **kwargs) -> list[Any]:
        return self.gather(self.call(method, *args, **kwargs))

    def run_sharded(self, method: str, batch: Any, *args, **kwargs) -> list[Any]:
        return self.gather(self.call_sharded(method, batch, *args, **kwargs))

    def wait_alive(self, timeout_s: float | None = None) -> None:
        """Until every actor answers (after Ray restarted a dead one), or ActorFailure."""
        self.gather([a.address.remote() for a in self.actors], timeout_s)
        self.reuse_key = None  # a restart used up one of `max_restarts`: the next run gets fresh actors

    def shutdown(self, timeout_s: float = 30.0, graceful: bool = True) -> None:
        """Let live actors tear down engines and process groups, then kill them all and free the bundles; a
        reusable group whose actors all released their models is parked instead (actors/warm_pool.py).
        After a failure (graceful=False) the survivors may be stuck in a collective with the dead: kill at once."""
        if graceful:
            refs = self.call("release" if self.reuse_key else "shutdown")
            done, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout_s)  # dead or stuck actors are killed
            if self.reuse_key and len(done) == len(refs) and _all_succeeded(done):
                WARM_POOL.park(self.reuse_key, self.placement_group, self.actors)
                return
        kill_group(self.actors, self.placement_group)


def _all_succeeded(refs: list[ray.ObjectRef]) -> bool:
    try:
        ray.get(refs)
    except (RayActorError, RayTaskError):
        return False
    return True
