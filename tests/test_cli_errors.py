"""What the command line does with input it cannot run: one line, exit 2, no traceback, nothing written, fast;
and one PPO run per directory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import ray

from actors.warm_pool import WARM_POOL
from halluray.cli import main
from halluray.config import load_config
from halluray.errors import CheckerError
from tests.conftest import ONE_RANK_EACH

ROOT = Path(__file__).resolve().parents[1]
SMOKE = str(ROOT / "configs" / "demo" / "ppo-smoke.yaml")


def test_a_missing_base_model_fails_in_seconds_with_one_line_and_writes_nothing(tmp_path):
    t0 = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "halluray.cli", "ppo", "--config", SMOKE,
                             f"run.output_dir={tmp_path / 'runs'}", "model.pretrained_path=/no/such/model"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    elapsed = time.monotonic() - t0
    assert result.returncode == 2
    # 2.2 s on a quiet 2-core machine (mostly importing torch); 5.4 s was seen early in `make test`, while the
    # session's Ray cluster was still starting. Placing a PPO run's actors alone takes over 20 s here.
    assert elapsed < 15, f"{elapsed:.1f} s: the error must come before Ray starts"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr  # Ray's "Started a local Ray instance" would show
    assert lines[0].startswith("halluray ppo: model.pretrained_path: /no/such/model does not exist")
    assert not (tmp_path / "runs").exists()


def test_plan_prints_every_ppo_role_without_running():
    result = subprocess.run([sys.executable, "-m", "halluray.cli", "plan", "--config", SMOKE], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for role in ("policy", "critic", "reference", "reward", "rollout"):
        assert f"\n{role} " in result.stdout


@pytest.fixture(scope="module")
def smoke_world(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli")
    assert main(["world", "--config", SMOKE, f"run.output_dir={out}"]) == 0
    return out


def test_a_second_run_into_an_existing_ppo_directory_is_refused(smoke_world, capsys):
    ppo_dir = smoke_world / "ppo-smoke" / "ppo"
    ppo_dir.mkdir()
    (ppo_dir / "config.yaml").write_text(load_config(SMOKE, [f"run.output_dir={smoke_world}"]).to_yaml())
    try:
        assert main(["ppo", "--config", SMOKE, f"run.output_dir={smoke_world}"]) == 2
        err = capsys.readouterr().err
        assert "already holds a PPO run" in err and f"halluray ppo --resume {ppo_dir}" in err and "--overwrite" in err
        # Resuming cannot change what its checkpoints mean, nor the LR schedule's horizon, the checker or the
        # rollout mode: one line naming each key.
        assert main(["ppo", "--resume", str(ppo_dir), "seed=3", "ppo.batch_size=4", "ppo.steps=9",
                     "fact_checker.max_retries=9", "actors.rollout_mode=colocated"]) == 2
        (line,) = capsys.readouterr().err.splitlines()
        assert ("seed, ppo.batch_size, ppo.steps, fact_checker, actors.rollout_mode cannot change in a resumed "
                "run") in line
    finally:
        for f in ppo_dir.iterdir():
            f.unlink()
        ppo_dir.rmdir()


def test_a_locked_ppo_directory_is_refused_naming_the_holder(smoke_world, capsys):
    """One process per PPO directory: a second run (or resume) exits 2 naming the pid holding the lock."""
    from halluray import run_lock

    ppo_dir = smoke_world / "ppo-smoke" / "locked"
    with run_lock.hold(ppo_dir):
        assert main(["ppo", "--config", SMOKE, f"run.output_dir={smoke_world}", "ppo.name=locked"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"halluray ppo: {ppo_dir} is in use by another halluray process (pid {os.getpid()} on ")
    assert (ppo_dir / "lock").read_text().startswith(f"{os.getpid()}@")


def test_a_resume_refuses_changed_data_or_initial_model_naming_each_file(smoke_world, capsys):
    from halluray.layout import RunLayout
    from halluray.run_lock import record_inputs
    from halluray.trainers.ppo_run import policy_init, run_inputs

    cfg = load_config(SMOKE, [f"run.output_dir={smoke_world}", "ppo.name=inputs"])
    layout, ppo_dir = RunLayout(cfg), smoke_world / "ppo-smoke" / "inputs"
    ppo_dir.mkdir()
    (ppo_dir / "config.yaml").write_text(cfg.to_yaml())
    record_inputs(ppo_dir, run_inputs(cfg, policy_init(cfg)))  # as the run recorded them when it started
    world, extra = layout.world_json, layout.base_model / "added.json"
    saved = world.read_bytes()
    try:
        world.write_bytes(saved.replace(b"a", b"b", 1))  # same size, other contents
        extra.write_text("{}")
        assert main(["ppo", "--resume", str(ppo_dir)]) == 2
        (line,) = capsys.readouterr().err.splitlines()
        assert line.startswith(f"halluray ppo: --resume {ppo_dir}: data file {world} changed; init model file "
                               f"{extra} is new since the run started"), line
    finally:
        world.write_bytes(saved)
        extra.unlink()
    assert main(["ppo", "--resume", str(ppo_dir)]) == 2  # unchanged again: on to the next check
    assert "no complete checkpoint under" in capsys.readouterr().err


def _send(signum):
    def entry(cfg):
        os.kill(os.getpid(), signum)
        time.sleep(10)  # the handler raises before this ends
    return entry


def _raise(error):
    def entry(cfg):
        raise error
    return entry


@pytest.mark.parametrize(("entry", "code", "line"), [
    (_send(signal.SIGTERM), 143, "halluray plan: stopped by SIGTERM"),
    (_send(signal.SIGINT), 130, "halluray plan: stopped by SIGINT"),
    (_raise(OSError(28, "No space left on device", "/runs/x/metrics.jsonl")), 1,
     "halluray plan: No space left on device: /runs/x/metrics.jsonl"),
    (_raise(CheckerError("fact checker endpoint https://x failed after 4 attempt(s): HTTP 500")), 1,
     "halluray plan: fact checker endpoint https://x failed after 4 attempt(s): HTTP 500")], ids=[
    "SIGTERM", "SIGINT", "ENOSPC", "checker"])
def test_signals_a_full_disk_and_a_failing_checker_end_any_command_in_one_line(monkeypatch, capsys, entry, code,
                                                                              line):
    before = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr("halluray.cli._entry", lambda path: entry)
    assert main(["plan"]) == code
    assert capsys.readouterr().err.splitlines() == [line]
    assert signal.getsignal(signal.SIGTERM) is before  # the CLI's handlers are gone again


@pytest.mark.ray
def test_overwrite_replaces_the_old_run(ray_cluster, smoke_world):
    ppo_dir = smoke_world / "ppo-smoke" / "ppo"
    (ppo_dir / "checkpoints" / "step_000099").mkdir(parents=True)
    assert main(["ppo", "--config", SMOKE, f"run.output_dir={smoke_world}", "ppo.steps=1", *ONE_RANK_EACH,
                 "--overwrite"]) == 0
    assert sorted(p.name for p in (ppo_dir / "checkpoints").iterdir()) == ["step_000001"]


@pytest.mark.ray
def test_a_run_that_fails_while_starting_leaves_no_actors_behind(ray_cluster, smoke_world):
    from halluray.errors import ActorFailure
    from halluray.trainers.ppo_run import run_ppo

    cfg = load_config(SMOKE, [f"run.output_dir={smoke_world}", "ppo.name=broken", "ppo.reward.kind=callable",
                              "ppo.reward.target=tests.nope:f", *ONE_RANK_EACH])
    # Groups parked by earlier runs are alive on purpose (actors/warm_pool.py): room for the whole cluster.
    WARM_POOL.make_room([ray.cluster_resources()])
    with pytest.raises(ActorFailure, match=r"starting the actor groups: reward rank 0 failed: InputError: cannot "
                                           r"import reward callable 'tests.nope:f'"):
        run_ppo(cfg)
    assert all(pg["state"] == "REMOVED" for pg in ray.util.placement_group_table().values())
