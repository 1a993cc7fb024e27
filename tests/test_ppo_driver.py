"""The PPO driver end to end on a tiny world: metrics, checkpoints, export, exact resume, validation with a
reward model (over-estimation by unfamiliarity tercile, plateau stop), `ray job submit`."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM

from halluray.cli import main
from halluray.config import load_config
from halluray.io import read_jsonl, write_jsonl
from halluray.layout import RunLayout
from halluray.world.checker import decompose
from halluray.world.entities import World
from tests.conftest import ONE_RANK_EACH

ray = pytest.importorskip("ray")

from halluray.trainers import ppo_driver as driver_mod  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs" / "demo" / "ppo-smoke.yaml"
pytestmark = pytest.mark.ray


def _ppo_metrics(run_dir: Path) -> dict[int, dict]:
    rows = [r for r in read_jsonl(run_dir / "metrics.jsonl") if r["stage"] == "ppo" and "reward_mean" in r]
    return {r["step"]: r for r in rows}


def _comparable(m: dict) -> dict:
    """Everything but wall-clock measurements."""
    return {k: v for k, v in m.items()
            if isinstance(v, (int, float)) and not (k.startswith("time") or k == "tokens_per_s")}


def _crash_after_step(n: int, monkeypatch, argv: list[str]) -> None:
    """Run the CLI with `argv`, stopped by a simulated crash right after step `n` (and its checkpoint)."""
    real_step = driver_mod.PPODriver.step

    def step_then_crash(self):
        if self.step_done == n:
            raise KeyboardInterrupt("simulated crash")
        return real_step(self)

    monkeypatch.setattr(driver_mod.PPODriver, "step", step_then_crash)
    assert main(argv) == 130  # as Ctrl-C there: one line, exit 130
    monkeypatch.setattr(driver_mod.PPODriver, "step", real_step)


@pytest.fixture(scope="module")
def smoke_world(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke")
    assert main(["world", "--config", str(SMOKE), f"run.output_dir={out}"]) == 0
    return out


def _copy_world(smoke_world: Path, dest: Path) -> None:
    shutil.copytree(smoke_world / "ppo-smoke", dest / "ppo-smoke")


# slow since 2026-12-04 (make test's budget): the SIGTERM test (test_fault_tolerance.py) and the GRPO
# resume test cover an exact resume in make test
@pytest.mark.slow
def test_interrupted_run_resumes_with_identical_metrics(ray_cluster, smoke_world, tmp_path, monkeypatch):
    full, cut = tmp_path / "full", tmp_path / "cut"
    for d in (full, cut):
        _copy_world(smoke_world, d)
    overrides = ["ppo.steps=4", "ppo.save_every=2"]
    assert main(["ppo", "--config", str(SMOKE), f"run.output_dir={full}", *overrides]) == 0
    uninterrupted = _ppo_metrics(full / "ppo-smoke")
    assert sorted(uninterrupted) == [1, 2, 3, 4]
    m = uninterrupted[1]
    for key in ("reward_mean", "kl", "policy/entropy", "policy/clipfrac", "policy/approx_kl", "critic/loss",
                "explained_variance", "response_length", "time/generate", "time/score", "time/train",
                "time/sync", "tokens_per_s"):
        assert key in m, key
    run = full / "ppo-smoke"
    assert (run / "ppo" / "checkpoints" / "step_000002" / "driver.pt").is_file()
    assert AutoModelForCausalLM.from_pretrained(run / "ppo" / "model") is not None
    assert any(r["stage"] == "samples" for r in read_jsonl(run / "metrics.jsonl"))
    assert list((run / "wandb").glob("offline-run-*")), "the W&B offline run is missing"

    # Interrupt the same run right after its step-2 checkpoint, then resume it from the CLI.
    _crash_after_step(2, monkeypatch, ["ppo", "--config", str(SMOKE), f"run.output_dir={cut}", *overrides])
    assert main(["ppo", "--resume", str(cut / "ppo-smoke")]) == 0
    resumed = _ppo_metrics(cut / "ppo-smoke")
    for step in (3, 4):
        assert _comparable(resumed[step]) == pytest.approx(_comparable(uninterrupted[step]), rel=1e-5, abs=1e-7)


def test_a_grpo_run_places_no_critic_and_resumes_exactly(ray_cluster, smoke_world, tmp_path, monkeypatch, capsys):
    """GRPO smoke: 4 prompts x 2 samples per step, no critic anywhere (groups, checkpoints, metrics); a run
    interrupted after step 1 resumes to the same step-2 numbers, and a resume cannot switch the estimator."""
    full, cut = tmp_path / "full", tmp_path / "cut"
    for d in (full, cut):
        _copy_world(smoke_world, d)
    grpo = ["ppo.advantage_estimator=grpo", "ppo.samples_per_prompt=2", "ppo.batch_size=4", "ppo.steps=2",
            "ppo.save_every=1"]
    placed = []
    real_init = driver_mod.PPODriver.__init__

    def recording_init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        placed.append({g.role for g in self.groups})

    monkeypatch.setattr(driver_mod.PPODriver, "__init__", recording_init)
    assert main(["ppo", "--config", str(SMOKE), f"run.output_dir={full}", *grpo]) == 0
    assert placed == [{"policy", "reference", "reward", "rollout"}]  # full finetune: a reference group, no critic
    uninterrupted = _ppo_metrics(full / "ppo-smoke")
    assert sorted(uninterrupted) == [1, 2]
    assert not any(k.startswith("critic/") or k in ("explained_variance", "value_mean") for k in uninterrupted[1])
    assert uninterrupted[1]["response_length"] > 0
    step = full / "ppo-smoke" / "ppo" / "checkpoints" / "step_000002"
    assert (step / "policy").is_dir() and not (step / "critic").exists()

    # The interrupted run logs no per-claim table (the table's reward calls must not move training's numbers).
    _crash_after_step(1, monkeypatch, ["ppo", "--config", str(SMOKE), f"run.output_dir={cut}", *grpo,
                                       "ppo.claims_table_prompts=0"])
    capsys.readouterr()
    assert main(["ppo", "--resume", str(cut / "ppo-smoke"), "ppo.advantage_estimator=rloo"]) == 2
    assert "ppo.advantage_estimator cannot change" in capsys.readouterr().err
    assert main(["ppo", "--resume", str(cut / "ppo-smoke")]) == 0
    resumed = _ppo_metrics(cut / "ppo-smoke")
    assert _comparable(resumed[2]) == pytest.approx(_comparable(uninterrupted[2]), rel=1e-5, abs=1e-7)
    tables = {run: [(r["step"], len(r["rows"])) for r in read_jsonl(run / "ppo-smoke" / "metrics.jsonl")
                    if r["stage"] == "val/claims"] for run in (full, cut)}
    assert tables[cut] == [] and [step for step, _ in tables[full]] == [0, 2]
    assert all(rows >= 4 for _, rows in tables[full])  # one row at least for each of the 4 val people


def test_a_reward_model_run_logs_overestimation_by_tercile_and_stops_on_a_plateau(ray_cluster, smoke_world,
                                                                                   tmp_path, capsys):
    """PPO on a learned RM: validation (not test) prompts, the RM's reward vs the checker's per unfamiliarity
    tercile in metrics.jsonl, and a plateau stop (min_delta too large to improve by) ending 4 steps at step 1."""
    _copy_world(smoke_world, tmp_path)
    cfg = load_config(SMOKE, [f"run.output_dir={tmp_path}"])
    layout = RunLayout(cfg)
    # An untrained two-stage RM: the base model read as the fact verifier (halluray train-rm writes the same files).
    rm = tmp_path / "rm"
    shutil.copytree(layout.base_model, rm)
    (rm / "rm.json").write_text(json.dumps({"kind": "two-stage", "true_fact": 2.0, "false_fact": -3.0}))
    # Unfamiliarity scores as the unfamiliarity stage writes them, rising with each validation person.
    val_people = World.load(layout.world_json).split("val")
    assert len(val_people) == 4  # terciles of scores 0..3: {0}, {1}, {2, 3}
    write_jsonl(layout.unfamiliarity_scores, [{"task": "long_form", "name": p.name, "split": p.split, "score": i}
                                              for i, p in enumerate(val_people)])
    assert main(["ppo", "--config", str(SMOKE), f"run.output_dir={tmp_path}", "ppo.name=rm-run",
                 "ppo.reward.kind=model", f"ppo.reward.target={rm}", "ppo.steps=4", "ppo.eval_every=1",
                 "ppo.plateau_patience=1", "ppo.plateau_min_delta=1000", "ppo.save_every=0",
                 "ppo.log_samples_every=0", *ONE_RANK_EACH, "eval.samples_per_prompt=4"]) == 0
    assert "ppo: validation reward flat for 1 evaluations; stopping at step 1 of 4" in capsys.readouterr().out
    rows = [r for r in read_jsonl(tmp_path / "ppo-smoke" / "metrics.jsonl") if r["stage"] == "rm-run"]
    assert [r["step"] for r in rows] == [0, 1]  # before training, and the one step before the stop
    for row in rows:
        for t in (0, 1, 2):
            for key in ("rm_reward", "gt_reward", "overestimation"):
                assert isinstance(row[f"val/{key}_t{t}"], float), (row["step"], key, t)
        assert row["val/overestimation_t2"] == pytest.approx(row["val/rm_reward_t2"] - row["val/gt_reward_t2"])
        assert row["val/overestimation_alarm"] in (0, 1)
        # The terciles split the checker's ground truth: 4 samples per person, two people in t2.
        assert row["val/reward"] == pytest.approx((row["val/gt_reward_t0"] + row["val/gt_reward_t1"]
                                                   + 2 * row["val/gt_reward_t2"]) / 4)
        assert not any(k.startswith("eval/") for k in row)
    assert rows[1]["val/plateau_stop"] == 1 and rows[1]["val/plateau_stop_step"] == 1
    run = tmp_path / "ppo-smoke" / "rm-run"
    assert (run / "checkpoints" / "step_000001" / "driver.pt").is_file()  # the final checkpoint and export
    assert (run / "model" / "config.json").is_file()
    assert_claims_table_shows_what_the_rm_paid_for(tmp_path / "ppo-smoke", World.load(layout.world_json))


def assert_claims_table_shows_what_the_rm_paid_for(run_dir: Path, world: World) -> None:
    """The rm-run's per-claim tables (one per validation, the first sample of each of the 4 val people): each RM
    claim labelled as the world says, P(true) a probability, the rows of a response adding up to its RM reward,
    its ground truth the checker's counts; the same rows in metrics.jsonl and the offline W&B run. (The smoke
    policy seldom states a fact the RM reads; tests/test_claims_table.py checks claims on written responses.)"""
    tables = [r for r in read_jsonl(run_dir / "metrics.jsonl") if r["stage"] == "val/claims"]
    assert [(t["step"], t["of_stage"]) for t in tables] == [(0, "rm-run"), (1, "rm-run")]
    for row in (row for t in tables for row in t["rows"] if row["claim"] is not None):
        ((_, subject, attribute, value),), _ = decompose(row["claim"])
        assert subject == row["topic"]  # the RM reads every fact as a claim about the person asked about
        assert row["label"] == ("true" if world.person(subject).facts[attribute] == value else "false"), row
        assert 0.0 <= row["p_true"] <= 1.0
    for t in tables:
        by_response = {}
        for row in t["rows"]:
            by_response.setdefault(row["topic"], []).append(row)
        assert len(by_response) == 4
        for rows in by_response.values():
            first = rows[0]
            assert first["rm_reward"] == pytest.approx(sum(2 * r["p_true"] - 3 * (1 - r["p_true"])
                                                           for r in rows if r["claim"] is not None), abs=1e-4)
            assert first["gt_reward"] == 2 * first["checker_true"] - 3 * first["checker_false"]
            assert isinstance(first["malformed"], bool) and isinstance(first["response"], str) and first["prompt"]
    files = sorted((run_dir / "wandb").glob("offline-run-*/files/media/table/val/claims_*.table.json"))
    assert len(files) == 2, files
    logged = sorted((json.loads(f.read_text()) for f in files), key=lambda table: table["data"][0][0])
    for table, jsonl in zip(logged, tables):
        assert table["data"] == [[row[c] for c in table["columns"]] for row in jsonl["rows"]]


def test_resume_without_checkpoint_is_a_clear_error(tmp_path, smoke_world, capsys):
    _copy_world(smoke_world, tmp_path)
    run = tmp_path / "ppo-smoke"
    load_config(SMOKE)  # the run needs its resolved config to resume from
    (run / "config.ppo.yaml").write_text(load_config(SMOKE, [f"run.output_dir={tmp_path}"]).to_yaml())
    assert main(["ppo", "--resume", str(run)]) == 2
    assert "no complete checkpoint under" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop_cluster(temp: Path, gcs_port: int) -> None:
    """Stop only the cluster this test started (`ray stop` would also stop the session's local cluster):
    processes naming its temp dir or GCS port, and everything they started."""
    import psutil

    own = set()
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if str(temp) in cmdline or f":{gcs_port}" in cmdline:
            own.add(proc)
            try:
                own.update(proc.children(recursive=True))
            except psutil.NoSuchProcess:
                pass
    for proc in own:
        try:
            proc.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(list(own), timeout=10)
    for proc in alive:
        proc.kill()
    shutil.rmtree(temp, ignore_errors=True)


# slow since 2026-12-04 (make test's budget, 80-100 s): test_multi_node.py runs `halluray ppo` against a
# started cluster (RAY_ADDRESS) in make test; this adds the job agent and --working-dir upload
@pytest.mark.slow
def test_ray_job_submit_runs_ppo_on_a_started_cluster(smoke_world, tmp_path):
    """`ray start --head` on loopback, `ray job submit ... -- halluray ppo`, SUCCEEDED, metrics written."""
    _copy_world(smoke_world, tmp_path)
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PATH": f"{bin_dir}:{os.environ['PATH']}",
           "DS_ACCELERATOR": "cpu", "WANDB_MODE": "offline", "RAY_ADDRESS": ""}
    env.pop("RAY_ADDRESS")
    gcs, dash = _free_port(), _free_port()
    temp = Path("/tmp") / f"ray-job-test-{os.getpid()}"
    # Every port free-picked: the session's local cluster already holds Ray's defaults (e.g. the agent's 52365).
    ports = {flag: _free_port() for flag in ("dashboard-agent-listen-port", "dashboard-agent-grpc-port",
                                             "metrics-export-port", "runtime-env-agent-port", "ray-client-server-port")}
    start = [str(bin_dir / "ray"), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={gcs}",
             "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}", "--num-cpus=8", "--include-dashboard=true",
             f"--temp-dir={temp}", "--disable-usage-stats", *(f"--{k}={v}" for k, v in ports.items())]
    subprocess.run(start, env=env, check=True, capture_output=True, timeout=120)
    try:
        address = f"http://127.0.0.1:{dash}"
        submit = [str(bin_dir / "ray"), "job", "submit", "--address", address, "--working-dir", str(ROOT),
                  "--", "halluray", "ppo", "--config", "configs/demo/ppo-smoke.yaml",
                  f"run.output_dir={tmp_path}", "ppo.steps=2", *ONE_RANK_EACH]
        for _ in range(30):  # the head's job agent comes up a little after `ray start` returns
            result = subprocess.run(submit, env=env, capture_output=True, text=True, timeout=600)
            if "No available agent" not in result.stderr:
                break
            time.sleep(2)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        job_id = re.search(r"raysubmit_\w+", result.stdout).group(0)
        from ray.job_submission import JobStatus, JobSubmissionClient

        assert JobSubmissionClient(address).get_job_status(job_id) == JobStatus.SUCCEEDED
    finally:
        _stop_cluster(temp, gcs)
    metrics = _ppo_metrics(tmp_path / "ppo-smoke")
    assert sorted(metrics) == [1, 2]
