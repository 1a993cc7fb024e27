"""Idle actor groups kept alive between the stages and runs of one driver process.

A new actor is a new process that imports torch and transformers (and DeepSpeed for a training role) before
its first call: 4-6 s of CPU each, so a PPO run's 5-8 actors on 2 cores spend 15-25 s before step 1
(docs/performance.md#actor-reuse). A group that ended cleanly released its model and engine and is parked
here with its placement group; the next group with the same key (actor class, role, ranks, bundle, strategy,
threads, timeouts, restarts) takes it back and is initialised by the usual init calls. The ranks' own
torch.distributed group is kept: same ranks, same world size.

Parked groups hold their bundles, so `make_room` kills the oldest ones when a new group would not fit. They
belong to the Ray job that started them (Ray kills them when the driver exits); a pool entry from an earlier
`ray.init` is dropped, never handed out.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import ray
from ray.util.placement_group import PlacementGroup, remove_placement_group


@dataclass
class ParkedGroup:
    key: tuple
    placement_group: PlacementGroup
    actors: list
    job_id: str | None


def _job_id() -> str | None:
    return ray.get_runtime_context().get_job_id() if ray.is_initialized() else None


def kill_group(actors: list, placement_group: PlacementGroup) -> None:
    for actor in actors:
        ray.kill(actor, no_restart=True)
    remove_placement_group(placement_group)


class WarmPool:
    def __init__(self) -> None:
        self._parked: list[ParkedGroup] = []

    def __len__(self) -> int:
        return len(self._parked)

    def take(self, key: tuple) -> ParkedGroup | None:
        """The oldest parked group with this key, removed from the pool; None if there is none."""
        self._drop_other_jobs()
        for i, parked in enumerate(self._parked):
            if parked.key == key:
                return self._parked.pop(i)
        return None

    def park(self, key: tuple, placement_group: PlacementGroup, actors: list) -> None:
        self._parked.append(ParkedGroup(key, placement_group, actors, _job_id()))

    def make_room(self, bundles: list[dict]) -> None:
        """Kill parked groups, oldest first, until the cluster's free resources cover `bundles`."""
        self._drop_other_jobs()
        needed = Counter()
        for bundle in bundles:
            needed.update(bundle)
        while self._parked and not _fits(needed, ray.available_resources()):
            oldest = self._parked.pop(0)
            kill_group(oldest.actors, oldest.placement_group)

    def _drop_other_jobs(self) -> None:
        """Entries of a Ray session that has ended: their actors are gone with it."""
        job = _job_id()
        self._parked = [p for p in self._parked if p.job_id == job]


def _fits(needed: Counter, available: dict) -> bool:
    return all(available.get(resource, 0.0) >= amount for resource, amount in needed.items())


WARM_POOL = WarmPool()
"""The driver process's pool (one per process, like its Ray connection)."""
