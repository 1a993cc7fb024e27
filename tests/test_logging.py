"""RunLogger with real wandb in offline mode (never online): JSONL, the offline run's history, redaction."""

import json
import math
import os
import struct
import sys
import time
import types
import warnings

import pytest

from halluray.config import build_config
from halluray.errors import InputError
from halluray.logging import RunLogger, resolve_wandb_mode

FAKE_KEY = "fakekey0123456789abcdef0123456789abcdef01"


@pytest.fixture
def wandb_env(tmp_path, monkeypatch):
    """Offline W&B with its config/cache dirs inside tmp_path (a developer's ~/.config/wandb is not read)."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "wandb-home" / var.lower()))
    return tmp_path


def make_cfg(tmp_path, mode="offline", name="t", *overrides):
    return build_config({}, [f"run.output_dir={tmp_path}", f"run.name={name}", f"logging.wandb_mode={mode}",
                             "logging.tags=[unit]", *overrides])


def wandb_records(run_dir, timeout=10.0):
    """Every protobuf Record of the one offline run under run_dir/wandb, read from W&B's leveldb-style log
    (a 7-byte file header, then 32 KiB blocks of chunks with a crc32/length/type header). wandb 0.31's
    `finish()` can return before wandb-core has written the file, so wait for the run's exit record."""
    deadline = time.monotonic() + timeout
    while True:
        (path,) = (run_dir / "wandb").glob("offline-run-*/run-*.wandb")
        records = _parse_wandb_log(path.read_bytes())
        if any(r.WhichOneof("record_type") == "exit" for r in records) or time.monotonic() > deadline:
            return records
        time.sleep(0.05)


def _parse_wandb_log(data):
    from wandb.proto import wandb_internal_pb2 as pb

    assert data[:4] == b":W&B"
    block, pos, buf, out = 32768, 7, b"", []
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if pos + 7 + length > len(data):  # a chunk still being written
            break
        buf += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST chunk ends a record
            record = pb.Record()
            record.ParseFromString(buf)
            out.append(record)
            buf = b""
    return out


def history(records):
    """{step: {key: value}}; a nested key (a Table's fields) becomes a nested dict."""
    steps = {}
    for r in records:
        if r.WhichOneof("record_type") == "history":
            row = steps.setdefault(r.history.step.num, {})
            for item in r.history.item:
                *parents, leaf = list(item.nested_key) or [item.key]
                node = row
                for p in parents:
                    node = node.setdefault(p, {})
                node[leaf] = json.loads(item.value_json)
    return steps


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_offline_run_has_history_config_table_and_never_the_key(wandb_env, monkeypatch, capfd):
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    cfg = make_cfg(wandb_env)
    run_dir = cfg.run_dir
    with RunLogger(run_dir, cfg, "ppo") as logger:
        assert logger.mode == "offline"
        logger.log(0, loss=1.5, reward=0.25)
        with pytest.warns(RuntimeWarning, match="non-finite"):
            logger.log(1, loss=float("nan"), reward=float("inf"))
        logger.log_samples(1, [{"prompt": "Tell me about Zorb.", "response": "I do not know.", "reward": 0.5},
                               {"prompt": "Tell me about Quix.", "response": "Quix was born in 1950."}])
        logger.log(2, loss=0.5)

    records = read_jsonl(run_dir / "metrics.jsonl")
    assert [(r["stage"], r["step"]) for r in records] == [("ppo", 0), ("ppo", 1), ("samples", 1), ("ppo", 2)]
    assert records[1]["loss"] is None and records[1]["reward"] is None
    assert records[2]["of_stage"] == "ppo" and records[2]["rows"][1]["response"] == "Quix was born in 1950."

    wb = wandb_records(run_dir)
    (run,) = [r.run for r in wb if r.WhichOneof("record_type") == "run"]
    assert run.display_name == "t-ppo" and run.run_group == "t" and list(run.tags) == ["unit"]
    config = {i.key: json.loads(i.value_json) for i in run.config.update}
    assert config["ppo"]["max_new_tokens"] == cfg.ppo.max_new_tokens  # "tokens" is not a secret word
    assert config["fact_checker"]["api_key_env"] == "OPENAI_API_KEY"  # where the key is, not the key
    steps = history(wb)
    assert steps[0]["loss"] == 1.5 and steps[2]["loss"] == 0.5
    assert math.isnan(float(steps[1]["loss"])) and float(steps[1]["reward"]) == math.inf  # W&B keeps them
    assert steps[1]["samples"]["_type"] == "table-file"
    (table_file,) = (run_dir / "wandb").glob("offline-run-*/files/media/table/samples_*.table.json")
    table = json.loads(table_file.read_text())
    assert table["columns"] == ["prompt", "response", "reward"]
    assert table["data"][1] == ["Tell me about Quix.", "Quix was born in 1950.", None]
    assert any(r.WhichOneof("record_type") == "exit" and r.exit.exit_code == 0 for r in wb)

    out = capfd.readouterr()
    assert FAKE_KEY not in out.out + out.err
    leaks = [p for p in wandb_env.rglob("*") if p.is_file() and FAKE_KEY.encode() in p.read_bytes()]
    assert not leaks


def test_disabled_writes_jsonl_only_without_importing_wandb(wandb_env, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # any `import wandb` now raises ImportError
    cfg = make_cfg(wandb_env, mode="disabled")
    with RunLogger(cfg.run_dir, cfg, "sft") as logger:
        logger.log(0, loss=2.0)
        logger.log_samples(0, [{"prompt": "p", "response": "r"}])
    assert [r["stage"] for r in read_jsonl(cfg.run_dir / "metrics.jsonl")] == ["sft", "samples"]
    assert not (cfg.run_dir / "wandb").exists()


def test_stages_in_one_process_get_their_own_runs(wandb_env):
    cfg = make_cfg(wandb_env)
    first = RunLogger(cfg.run_dir / "a", cfg, "sft")
    second = RunLogger(cfg.run_dir / "b", cfg, "rm")  # open while the first is still running
    first.log(0, loss=1.0)
    second.log(0, loss=2.0)
    second.finish()
    with pytest.raises(ValueError), first:  # an exception marks the stage's run failed
        first.log(1, loss=0.5)
        raise ValueError("boom")
    first.finish()  # idempotent
    for sub, name, losses, code in [("a", "t-sft", {0: 1.0, 1: 0.5}, 1), ("b", "t-rm", {0: 2.0}, 0)]:
        wb = wandb_records(cfg.run_dir / sub)
        assert [r.run.display_name for r in wb if r.WhichOneof("record_type") == "run"] == [name]
        assert {s: row["loss"] for s, row in history(wb).items()} == losses
        assert [r.exit.exit_code for r in wb if r.WhichOneof("record_type") == "exit"] == [code]


def test_a_run_id_file_keeps_one_wandb_run_across_restarts(wandb_env):
    """What `halluray ppo --resume` does: the second start reads the id the first one wrote and resumes it;
    offline, each start writes its own directory under that id (`wandb sync --id` joins them)."""
    cfg = make_cfg(wandb_env)
    id_file = cfg.run_dir / "ppo" / "wandb_run_id"
    for step in (1, 2):
        with RunLogger(cfg.run_dir, cfg, "ppo", id_file) as logger:
            logger.log(step, loss=float(step))
    run_id = id_file.read_text().strip()
    dirs = sorted(p.name for p in (cfg.run_dir / "wandb").glob("offline-run-*"))
    assert len(dirs) == 2 and all(f"-{run_id}" in d for d in dirs), (run_id, dirs)


def test_a_torn_last_line_is_skipped_on_read_and_dropped_on_the_next_open(tmp_path, capfd):
    from halluray.io import read_jsonl as read_records
    from halluray.logging import _JsonlWriter

    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"step": 2}\n{"step": 3, "loss": 0.')  # a crash mid-write
    with pytest.warns(RuntimeWarning, match="skipped a torn last line"):
        assert read_records(path) == [{"step": 1}, {"step": 2}]
    writer = _JsonlWriter(path)
    writer.log("ppo", 3, loss=0.5)
    writer.close()
    assert "dropped a torn last line (22 bytes)" in capfd.readouterr().err
    assert [r["step"] for r in read_records(path)] == [1, 2, 3]
    path.write_text('{"step": 1}\n{"step": \n{"step": 3}\n')  # not a torn tail: corruption, which raises
    with pytest.raises(json.JSONDecodeError):
        read_records(path)


def test_a_failed_write_is_the_error_seen_not_a_second_one_at_close(tmp_path):
    import errno

    cfg = make_cfg(tmp_path, "disabled")

    class Full:
        closed = False

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def close(self):
            self.closed = True

    with pytest.raises(OSError, match="No space left on device") as e, RunLogger(cfg.run_dir, cfg, "ppo") as logger:
        logger.writer._file.close()
        logger.writer._file = Full()
        logger.log(1, loss=1.0)
    assert e.value.__context__ is None and logger.writer._file.closed


def test_resolve_wandb_mode():
    assert resolve_wandb_mode("auto", {}) == "offline"
    assert resolve_wandb_mode("auto", {"WANDB_API_KEY": FAKE_KEY}) == "online"
    assert resolve_wandb_mode("auto", {"WANDB_API_KEY": ""}) == "offline"
    assert resolve_wandb_mode("auto", {"WANDB_API_KEY_FILE": "/run/secrets/wandb"}) == "online"
    assert resolve_wandb_mode("auto", {"WANDB_API_KEY": FAKE_KEY, "WANDB_MODE": "offline"}) == "offline"
    assert resolve_wandb_mode("auto", {"WANDB_MODE": "disabled"}) == "disabled"
    for mode in ("online", "offline", "disabled"):
        assert resolve_wandb_mode(mode, {"WANDB_MODE": "offline", "WANDB_API_KEY": FAKE_KEY}) == mode



# --- a fake wandb: what RunLogger does when W&B is slow, down or rejects the key ----------------------------------

class FakeRun:
    def __init__(self, finish_s=0.0):
        self.finish_s, self.exit_code = finish_s, None

    def log(self, metrics, step):
        pass

    def finish(self, exit_code=0):
        time.sleep(self.finish_s)
        self.exit_code = exit_code


@pytest.fixture
def fake_wandb(monkeypatch):
    """`import wandb` gives this module; set `.init_error` or `.run` before creating a RunLogger."""
    comm = type("CommError", (Exception,), {})
    errors = types.SimpleNamespace(CommError=comm, AuthenticationError=type("AuthenticationError", (comm,), {}))
    module = types.SimpleNamespace(errors=errors, Settings=dict, init_error=None, run=FakeRun(), calls=[])

    def init(**kwargs):
        module.calls.append(kwargs)
        if module.init_error:
            raise module.init_error
        return module.run

    module.init = init
    monkeypatch.setitem(sys.modules, "wandb", module)
    monkeypatch.setenv("WANDB_API_KEY", "")  # restored after the test, whatever RunLogger sets
    monkeypatch.delenv("WANDB_API_KEY")
    return module


def test_wandb_init_is_bounded_and_a_failure_falls_back_to_jsonl(tmp_path, fake_wandb, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    fake_wandb.init_error = fake_wandb.errors.CommError(f"run upsert timed out (key {FAKE_KEY})")
    cfg = make_cfg(tmp_path, "offline", "t", "logging.init_timeout_s=5", "logging.finish_timeout_s=7")
    with pytest.warns(RuntimeWarning, match=r"did not start within logging.init_timeout_s \(5 s\): CommError: "
                                            r"run upsert timed out \(key \*\*\*\); logging to metrics.jsonl only") as w:
        logger = RunLogger(cfg.run_dir, cfg, "sft")
    assert FAKE_KEY not in str(w[0].message)
    (call,) = fake_wandb.calls
    assert call["settings"]["init_timeout"] == 5 and call["settings"]["finish_timeout"] == 7
    with logger:
        logger.log(0, loss=1.0)
    assert read_jsonl(cfg.run_dir / "metrics.jsonl")[0]["loss"] == 1.0


def test_a_rejected_wandb_key_is_an_input_error(tmp_path, fake_wandb):
    fake_wandb.init_error = fake_wandb.errors.AuthenticationError("invalid API key")
    cfg = make_cfg(tmp_path)
    with pytest.raises(InputError, match="W&B rejected the API key in WANDB_API_KEY or WANDB_API_KEY_FILE"):
        RunLogger(cfg.run_dir, cfg, "sft")


def test_wandb_finish_is_bounded(tmp_path, fake_wandb):
    fake_wandb.run = FakeRun(finish_s=3.0)
    cfg = make_cfg(tmp_path, "offline", "t", "logging.finish_timeout_s=0.2")
    logger = RunLogger(cfg.run_dir, cfg, "ppo")
    logger.log(0, loss=1.0)
    start = time.monotonic()
    with pytest.warns(RuntimeWarning, match=r"ppo: W&B did not finish within logging.finish_timeout_s \(0.2 s\); "
                                            r"going on .*wandb sync"):
        logger.finish()
    assert time.monotonic() - start < 1.5
    assert logger.writer._file.closed and read_jsonl(cfg.run_dir / "metrics.jsonl")[0]["loss"] == 1.0


def test_a_key_from_wandb_api_key_file_reaches_wandb_in_this_process_only(tmp_path, fake_wandb, monkeypatch):
    key_file = tmp_path / "wandb_key"
    key_file.write_text(FAKE_KEY + "\n")
    key_file.chmod(0o600)
    monkeypatch.setenv("WANDB_API_KEY_FILE", str(key_file))
    cfg = make_cfg(tmp_path, "online")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        RunLogger(cfg.run_dir, cfg, "sft").finish()
    assert os.environ["WANDB_API_KEY"] == FAKE_KEY  # where wandb reads it
    assert FAKE_KEY not in json.dumps(fake_wandb.calls[0]["config"])
    key_file.chmod(0o640)
    monkeypatch.delenv("WANDB_API_KEY")
    with pytest.raises(InputError, match=r"WANDB_API_KEY_FILE=.*wandb_key: .*chmod 600"):
        RunLogger(cfg.run_dir, cfg, "sft")
