"""A Ray cluster of several nodes on this one machine, for tests of what a cluster user meets: a head node that
runs no actors and worker nodes that run them, each its own raylet (`ray.cluster_utils.Cluster`), all on
127.0.0.1. `halluray` runs against it in a subprocess with RAY_ADDRESS set, as under `ray job submit`.

Ray declares a node dead after its health checks fail; the head here checks every second and gives up after 3
misses (Ray's defaults are 3 s x 5) so that a lost node is reported in seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from ray.cluster_utils import Cluster

ROOT = Path(__file__).resolve().parents[1]
WORKER_CPUS = 4
"""Each worker node's CPUs: the smoke PPO run's 7 actors fit two workers, and not one."""


class LocalCluster:
    def __init__(self, workers: int = 2):
        self.cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 0, "node_ip_address": "127.0.0.1",
            "_system_config": {"health_check_period_ms": 1000, "health_check_failure_threshold": 3}})
        self.workers = {}
        for _ in range(workers):
            self.add_worker()

    @property
    def address(self) -> str:
        return self.cluster.address

    def add_worker(self) -> str:
        node = self.cluster.add_node(num_cpus=WORKER_CPUS, node_ip_address="127.0.0.1")
        self.workers[node.node_id] = node
        return node.node_id

    def kill(self, node_id: str) -> None:
        """Every process of the node at once (raylet, object store, workers): what a crashed machine looks like."""
        self.cluster.remove_node(self.workers.pop(node_id), allow_graceful=False)

    def ensure_workers(self, n: int = 2) -> None:
        while len(self.workers) < n:
            self.add_worker()

    def shutdown(self) -> None:
        for node_id in list(self.workers):
            self.cluster.remove_node(self.workers.pop(node_id))
        self.cluster.remove_node(self.cluster.head_node)

    def env(self) -> dict[str, str]:
        # Loopback as the node address for the driver too, as the nodes were started with it.
        env = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}  # see tests/ppo_runs.py driver_env
        return {**env, "RAY_ADDRESS": self.address, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}

    def halluray(self, *args: str, **popen) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "halluray.cli", *args], env=self.env(), cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)

    def placement_groups(self) -> int:
        """Placement groups of the cluster not yet removed (asked from a process of its own: this one may be
        connected to another Ray)."""
        code = ("import ray; from ray.util import placement_group_table as t; ray.init(log_to_driver=False); "
                "print(sum(p['state'] != 'REMOVED' for p in t().values()))")
        out = subprocess.run([sys.executable, "-c", code], env=self.env(), capture_output=True, text=True,
                             timeout=120, check=True)
        return int(out.stdout.strip().splitlines()[-1])


def wait_for_step(metrics: Path, step: int, proc: subprocess.Popen, timeout_s: float = 300.0) -> None:
    """Until the run has logged PPO step `step` (or it ended)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        if metrics.is_file():
            for line in metrics.read_text().splitlines():
                if '"reward_mean"' in line and json.loads(line).get("step") == step:
                    return
        time.sleep(0.1)
    raise AssertionError(f"step {step} was not logged (run ended: {proc.poll()})")
