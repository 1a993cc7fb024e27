"""A PPO run survives dying workers and a killed driver, and stops cleanly on what a restart cannot fix; the
colocated and one-step-off rollout modes generate what they should.

Every scenario is compared with one uninterrupted 6-step run of the smoke config (2 policy, 2 critic and
2 rollout actors): the metrics that do not measure time must be the same, step by step.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from halluray.cli import main
from halluray.io import read_jsonl

ray = pytest.importorskip("ray")

from halluray.trainers import ppo_driver as driver_mod  # noqa: E402
from halluray.trainers.ppo_driver import PPODriver  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SMOKE = str(ROOT / "configs" / "demo" / "ppo-smoke.yaml")
RUN = ["ppo.steps=6", "ppo.save_every=2", "ppo.keep_last=1", "ppo.log_samples_every=0",
       "actors.rollout.num_actors=2", "actors.call_timeout_s=120", "actors.collective_timeout_s=60"]
pytestmark = pytest.mark.ray


def _metrics(out: Path) -> dict[int, dict]:
    """The last record of each PPO step (a redone step is logged again), without wall-clock values."""
    rows = [r for r in read_jsonl(out / "ppo-smoke" / "metrics.jsonl") if r["stage"] == "ppo" and "reward_mean" in r]
    return {r["step"]: {k: v for k, v in r.items() if isinstance(v, float) and not k.startswith("time")
                        and k != "tokens_per_s"} for r in rows}


def _same(run: dict, baseline: dict) -> None:
    assert sorted(run) == sorted(baseline) == list(range(1, 7))
    for step in baseline:
        assert run[step] == pytest.approx(baseline[step], rel=1e-5, abs=1e-7), f"step {step}"


@pytest.fixture(scope="module")
def smoke_world(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    assert main(["world", "--config", SMOKE, f"run.output_dir={out}"]) == 0
    return out / "ppo-smoke"


def _fresh(world: Path, dest: Path) -> Path:
    shutil.copytree(world, dest / "ppo-smoke")
    return dest


@pytest.fixture(scope="module")
def baseline(ray_cluster, smoke_world, tmp_path_factory):
    out = _fresh(smoke_world, tmp_path_factory.mktemp("baseline"))
    assert main(["ppo", "--config", SMOKE, f"run.output_dir={out}", *RUN]) == 0
    return _metrics(out)


def test_a_killed_rollout_worker_is_restarted_and_the_run_ends_as_if_nothing_happened(
        ray_cluster, smoke_world, baseline, tmp_path, monkeypatch, capsys):
    out, real_step, killed = _fresh(smoke_world, tmp_path), PPODriver.step, []

    def step(self):
        if self.step_done == 2 and not killed:  # before step 3: its rollout finds worker 1 dead or restarting
            killed.append(ray.get(self.rollout.actors[1].address.remote()))
            ray.kill(self.rollout.actors[1], no_restart=False)
        return real_step(self)

    monkeypatch.setattr(PPODriver, "step", step)
    assert main(["ppo", "--config", SMOKE, f"run.output_dir={out}", *RUN]) == 0
    assert killed
    assert "re-initialising the rollout workers" in capsys.readouterr().err
    _same(_metrics(out), baseline)


def test_colocated_policy_ranks_generate_exactly_what_rollout_workers_would(ray_cluster, smoke_world, baseline,
                                                                            tmp_path):
    """Two policy ranks sampling their shards with their own weights = two rollout workers with synced ones."""
    out = _fresh(smoke_world, tmp_path)
    assert main(["ppo", "--config", SMOKE, f"run.output_dir={out}", *RUN, "actors.rollout_mode=colocated"]) == 0
    _same(_metrics(out), baseline)


def test_one_step_off_trains_on_the_batch_generated_one_update_behind_and_survives_a_dead_worker(
        ray_cluster, smoke_world, baseline, tmp_path, monkeypatch, capsys):
    """Step 1 is the on-policy step (nothing to overlap yet); later batches come from the policy one update
    behind, except step 3's: started during step 2 on rollout worker 1, it is lost when that worker is killed,
    and generated again by the restarted workers with the current weights."""
    out, real_step, killed = _fresh(smoke_world, tmp_path), PPODriver.step, []

    def step(self):
        if self.step_done == 2 and not killed:  # step 3's batch is waited for on a dead worker
            killed.append(ray.get(self.rollout.actors[1].address.remote()))
            ray.kill(self.rollout.actors[1], no_restart=False)
        return real_step(self)

    monkeypatch.setattr(PPODriver, "step", step)
    assert main(["ppo", "--config", SMOKE, f"run.output_dir={out}", *RUN, "actors.rollout_mode=one-step-off"]) == 0
    assert killed and "re-initialising the rollout workers" in capsys.readouterr().err
    run = _metrics(out)
    assert {s: m["rollout/policy_lag"] for s, m in run.items()} == {1: 0, 2: 1, 3: 0, 4: 1, 5: 1, 6: 1}
    assert run[1] == pytest.approx(baseline[1], rel=1e-5, abs=1e-7)
    assert run[2] != pytest.approx(baseline[2], rel=1e-5, abs=1e-7)  # generated by the step-0 weights


def _kill_critic_rank_1_in_value_train_at_step_4(monkeypatch) -> list:
    real_step, killed = PPODriver.step, []

    def step(self):
        if self.step_done == 3 and not killed:
            issue = self.critic.call_sharded

            def call_sharded(method, *args, **kwargs):
                refs = issue(method, *args, **kwargs)
                if method == "value_train" and not killed:
                    killed.append(1)
                    ray.kill(self.critic.actors[1])
                return refs

            self.critic.call_sharded = call_sharded
        return real_step(self)

    monkeypatch.setattr(PPODriver, "step", step)
    return killed


def test_a_critic_rank_dying_in_training_restarts_every_group_from_the_last_checkpoint(
        ray_cluster, smoke_world, baseline, tmp_path, monkeypatch, capsys):
    out = _fresh(smoke_world, tmp_path)
    killed = _kill_critic_rank_1_in_value_train_at_step_4(monkeypatch)
    assert main(["ppo", "--config", SMOKE, f"run.output_dir={out}", *RUN]) == 0
    assert killed
    err = capsys.readouterr().err
    assert "critic rank 1 died" in err and "restarting every group from" in err and "step_000002" in err
    _same(_metrics(out), baseline)


def _free_cpus_return(timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ray.available_resources().get("CPU") == ray.cluster_resources()["CPU"]:
            return True
        time.sleep(0.5)
    return False


def test_without_restarts_a_dying_rank_ends_the_run_in_one_line_with_the_resume_command(
        ray_cluster, smoke_world, tmp_path, monkeypatch, capsys):
    out = _fresh(smoke_world, tmp_path)
    _kill_critic_rank_1_in_value_train_at_step_4(monkeypatch)
    t0 = time.monotonic()
    assert main(["ppo", "--config", SMOKE, f"run.output_dir={out}", *RUN, "actors.max_restarts=0"]) == 1
    assert time.monotonic() - t0 < 120  # actors.call_timeout_s: the death is seen at once, not waited out
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("halluray ppo:")]
    assert len(lines) == 1, lines
    assert "step 4: critic rank 1 died" in lines[0]
    assert lines[0].endswith(f"continue with: halluray ppo --resume {out / 'ppo-smoke' / 'ppo'}")
    assert all(pg["state"] == "REMOVED" for pg in ray.util.placement_group_table().values())
    assert _free_cpus_return(), "actors still hold CPUs after the run ended"


def test_a_nan_loss_stops_the_step_before_the_optimizer_naming_step_role_and_rank(
        ray_cluster, smoke_world, tmp_path, monkeypatch, capsys):
    out, real, calls = _fresh(smoke_world, tmp_path), driver_mod.make_experience, []

    def nan_in_step_2(*args, **kwargs):
        exp, stats = real(*args, **kwargs)
        calls.append(1)
        if len(calls) == 2:
            exp.advantages[0] = math.nan
        return exp, stats

    monkeypatch.setattr(driver_mod, "make_experience", nan_in_step_2)
    assert main(["ppo", "--config", SMOKE, f"run.output_dir={out}", *RUN]) == 1
    err = capsys.readouterr().err
    assert "step 2: policy rank" in err and "NonFiniteError: non-finite loss" in err
    assert "stopped before the optimizer step" in err and "restarting" not in err  # a restart would repeat it


def test_a_nan_loss_leaves_the_weights_untouched(ray_cluster, tiny_model_dir):
    from actors.base import EngineSpec
    from actors.group import ActorGroup
    from actors.policy import PolicyActor
    from halluray.config import DeepSpeedConfig, OptimizerConfig, RoleResources
    from halluray.errors import ActorFailure

    ids = torch.randint(3, 50, (4, 8), generator=torch.Generator().manual_seed(0))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "action_mask": torch.ones(4, 7),
             "old_logprobs": torch.zeros(4, 7), "advantages": torch.ones(4, 7)}
    batch["advantages"][3, 2] = math.nan  # rank 1's shard
    group = ActorGroup(PolicyActor, "policy", RoleResources(num_actors=2), call_timeout_s=120)
    try:
        group.gather(group.init_engines(EngineSpec(model_path=str(tiny_model_dir), ds=DeepSpeedConfig(zero_stage=2),
                                                   optim=OptimizerConfig(lr=1e-2), total_steps=4, micro_batch_size=1)))
        probe = {k: batch[k] for k in ("input_ids", "attention_mask")}
        before = torch.cat(group.run_sharded("logprobs", probe))
        with pytest.raises(ActorFailure, match=r"non-finite loss.* on policy rank\(s\) \[1\]; stopped before the "
                                               r"optimizer step \(epoch 1, minibatch 1\)"):
            group.run_sharded("ppo_train", batch, 2, 1, 0, 0.2)
        after = torch.cat(group.run_sharded("logprobs", probe))
    finally:
        group.shutdown()
    assert torch.equal(before, after)


# -- the driver SIGKILLed while it saves a checkpoint (dropout on: the resumed RNG must be the saved one) ------

KILLER = """
import os, signal, sys
from halluray import checkpoints
point = sys.argv[1]

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

def at_step_4(real):
    def wrapped(*args, **kwargs):
        if any("step_000004" in str(a) for a in args) or (point == "retention" and "step_000002" in str(args[0])):
            die()
        return real(*args, **kwargs)
    return wrapped

if point == "before-rename":        # every part written, not yet renamed: a temp dir is all there is
    checkpoints.commit = at_step_4(checkpoints.commit)
elif point == "after-rename":       # step 4 complete, step 2 not yet deleted
    real_keep = checkpoints.keep_last
    checkpoints.keep_last = lambda d, n: die() if (d / "step_000004").is_dir() else real_keep(d, n)
elif point == "retention":          # step 2 renamed away for deletion, not yet deleted
    checkpoints.shutil.rmtree = at_step_4(checkpoints.shutil.rmtree)
from halluray.cli import main
sys.exit(main(sys.argv[2:]))
"""
POINTS = ["before-rename", pytest.param("after-rename", marks=pytest.mark.slow),
          pytest.param("retention", marks=pytest.mark.slow)]


@pytest.fixture(scope="module")
def dropout_world(smoke_world, tmp_path_factory):
    """The smoke world with dropout 0.1 in the model, so that training draws random numbers."""
    out = _fresh(smoke_world, tmp_path_factory.mktemp("dropout"))
    config = out / "ppo-smoke" / "base_model" / "config.json"
    cfg = json.loads(config.read_text())
    cfg.update(resid_pdrop=0.1, embd_pdrop=0.1, attn_pdrop=0.1)
    config.write_text(json.dumps(cfg))
    return out / "ppo-smoke"


@pytest.fixture(scope="module")
def dropout_baseline(ray_cluster, dropout_world, tmp_path_factory):
    out = _fresh(dropout_world, tmp_path_factory.mktemp("dropout-baseline"))
    assert main(["ppo", "--config", SMOKE, f"run.output_dir={out}", *RUN]) == 0
    return _metrics(out)


@pytest.mark.parametrize("point", POINTS)
def test_a_driver_killed_while_saving_resumes_to_the_same_final_metrics(dropout_world, dropout_baseline, tmp_path,
                                                                        point):
    out = _fresh(dropout_world, tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    killed = subprocess.run([sys.executable, "-c", KILLER, point, "ppo", "--config", SMOKE,
                             f"run.output_dir={out}", *RUN], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    ppo_dir = out / "ppo-smoke" / "ppo"
    assert main(["ppo", "--resume", str(ppo_dir)]) == 0
    _same(_metrics(out), dropout_baseline)
    assert sorted(p.name for p in (ppo_dir / "checkpoints").iterdir()) == ["step_000006"]  # keep_last=1, no temp
