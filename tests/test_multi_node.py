"""PPO on a Ray cluster of a head and two worker nodes (tests/local_cluster.py), training groups spread over the
workers with STRICT_SPREAD: an infeasible placement is refused before anything is placed, and a worker node lost
at step 3 is named and recovered from, on a replacement node or by `--resume` once one joins.

Every run is a `halluray ppo` subprocess with RAY_ADDRESS, as `ray job submit` starts it; the recovered runs'
metrics are compared, step by step, with one uninterrupted run on the same cluster.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from tests.local_cluster import LocalCluster, wait_for_step
from tests.ppo_runs import assert_same_steps, fresh, smoke_world_dir, step_metrics

ROOT = Path(__file__).resolve().parents[1]
SMOKE = str(ROOT / "configs" / "demo" / "ppo-smoke.yaml")
RUN = ["ppo.steps=8", "ppo.save_every=2", "ppo.log_samples_every=0", "actors.placement_strategy=STRICT_SPREAD",
       "actors.call_timeout_s=120", "actors.collective_timeout_s=60"]
pytestmark = pytest.mark.ray
NODE_LINE = re.compile(r"node 127\.0\.0\.1 \((\w{8})\) died: policy ranks \[1\]")


@pytest.fixture(scope="module")
def cluster():
    c = LocalCluster(workers=2)
    yield c
    c.shutdown()


@pytest.fixture(autouse=True)
def two_workers(request):
    """Each test starts on two live worker nodes, whatever the one before it killed."""
    if "cluster" in request.fixturenames:
        request.getfixturevalue("cluster").ensure_workers(2)


@pytest.fixture(scope="module")
def smoke_world(tmp_path_factory):
    return smoke_world_dir(tmp_path_factory)


def _node_of_policy_rank_1(out: Path) -> str:
    placement = json.loads((out / "ppo-smoke" / "ppo" / "placement.json").read_text())
    return placement["policy"][1]["node_id"]


@pytest.fixture(scope="module")
def baseline(cluster, smoke_world, tmp_path_factory):
    out = fresh(smoke_world, tmp_path_factory.mktemp("baseline"))
    proc = cluster.halluray("ppo", "--config", SMOKE, f"run.output_dir={out}", *RUN)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    placement = json.loads((out / "ppo-smoke" / "ppo" / "placement.json").read_text())
    assert len({r["node_id"] for r in placement["policy"]}) == 2, "STRICT_SPREAD put two policy ranks on one node"
    return step_metrics(out)


def test_an_infeasible_strict_spread_is_refused_in_seconds_before_anything_is_placed(cluster, smoke_world, tmp_path):
    out = fresh(smoke_world, tmp_path)
    t0 = time.monotonic()
    proc = cluster.halluray("ppo", "--config", SMOKE, f"run.output_dir={out}", *RUN, "actors.policy.num_actors=4")
    _, err = proc.communicate(timeout=120)
    elapsed = time.monotonic() - t0
    assert proc.returncode == 2, err[-3000:]
    assert err.strip().count("\n") == 0 and "Traceback" not in err, err
    assert "STRICT_SPREAD puts each of the 4 policy actors on a node of its own" in err
    assert "2 of the 3 live nodes can hold one" in err
    # The CLI's start (imports, joining the cluster) is 3-6 s on 2 cores; a run that waited for a fourth node
    # would wait actors.node_wait_s (600 s).
    assert elapsed < 30.0, f"the refusal took {elapsed:.1f} s"
    assert cluster.placement_groups() == 0
    assert not (out / "ppo-smoke" / "ppo").exists()


@pytest.mark.slow
def test_a_worker_node_lost_at_step_3_is_named_and_the_run_finishes_on_a_replacement_as_if_nothing_happened(
        cluster, smoke_world, baseline, tmp_path):
    out = fresh(smoke_world, tmp_path)
    proc = cluster.halluray("ppo", "--config", SMOKE, f"run.output_dir={out}", *RUN)
    wait_for_step(out / "ppo-smoke" / "metrics.jsonl", 3, proc)
    victim = _node_of_policy_rank_1(out)
    cluster.kill(victim)
    time.sleep(10)
    cluster.add_worker()
    _, err = proc.communicate(timeout=600)
    print(err)  # `make demo-cluster` shows what the run said
    assert proc.returncode == 0, err[-3000:]
    named = NODE_LINE.search(err)
    assert named and victim.startswith(named.group(1)), err[-3000:]
    assert "critic ranks [1]" in err[named.start():].splitlines()[0]
    assert_same_steps(step_metrics(out), baseline, 8)
    assert cluster.placement_groups() == 0


@pytest.mark.slow
def test_without_a_replacement_the_run_stops_naming_the_node_and_resume_continues_once_one_joins(
        cluster, smoke_world, baseline, tmp_path):
    out = fresh(smoke_world, tmp_path)
    proc = cluster.halluray("ppo", "--config", SMOKE, f"run.output_dir={out}", *RUN, "actors.node_wait_s=15")
    wait_for_step(out / "ppo-smoke" / "metrics.jsonl", 3, proc)
    t_kill = time.monotonic()
    cluster.kill(_node_of_policy_rank_1(out))
    _, err = proc.communicate(timeout=600)
    print(err)
    assert proc.returncode == 1, err[-3000:]
    assert time.monotonic() - t_kill < 15 + 60, "the run did not stop within the configured wait"
    last = err.strip().splitlines()[-1]
    assert NODE_LINE.search(last) and "actors.node_wait_s=15" in last, last
    assert f"continue with: halluray ppo --resume {out / 'ppo-smoke' / 'ppo'}" in last, last
    assert "Traceback" not in err
    assert cluster.placement_groups() == 0

    cluster.add_worker()
    proc = cluster.halluray("ppo", "--resume", str(out / "ppo-smoke" / "ppo"))
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    assert_same_steps(step_metrics(out), baseline, 8)
