"""Metrics: an append-only JSONL file per run (always), W&B when configured, progress bars for long work.

`RunLogger` is the one way to write metrics: every record goes to `run_dir/metrics.jsonl`, and to a W&B run named
`<run.name>-<stage>` (grouped by run name) unless `logging.wandb_mode` resolves to `disabled`.

Decisions:
- Non-finite numbers (NaN, ±inf) are written to the JSONL file as `null` (JSON has no NaN) with one
  warning per logger; W&B receives them unchanged, since it stores NaN/inf and a NaN loss is information.
- W&B steps must not decrease within one run (W&B drops such records with a warning); `log` and
  `log_samples` at the same step are fine.
- The W&B API key comes from `WANDB_API_KEY` or the 0600 file named by `WANDB_API_KEY_FILE`
  (halluray/secrets.py). wandb reads only the variable, so a key from the file is put into this process's
  `WANDB_API_KEY` (the driver's own environment, never a Ray runtime env). The config sent to W&B is
  `cfg.redacted()`, system metadata (command line, git) is not collected, and console capture is off, so
  the key cannot reach the run's files through them.
- W&B never holds up training: `wandb.init` gives up after `logging.init_timeout_s` (a network failure
  too), and the stage then logs to metrics.jsonl only, with a warning; a key W&B rejects is an InputError.
  `finish` waits at most `logging.finish_timeout_s`, then warns and goes on: wandb's own `finish_timeout`
  bounds the upload, and a thread joined with that timeout bounds the rest (wandb waits for its service
  process without one).
- A stage given a `run_id_file` (a PPO run: `<ppo dir>/wandb_run_id`) keeps its W&B run id there and passes
  `id=..., resume="allow"`, so `--resume` continues the same W&B run online. Offline (wandb 0.31), each start
  writes its own `offline-run-*-<id>` directory with that same id; `wandb sync --id <id> <dirs>` uploads them
  into one run in start order. Steps redone after a restart are in metrics.jsonl again; W&B keeps the values
  first logged for a step and drops the repeat (its steps must not decrease).
- Offline runs land in `run_dir/wandb/offline-run-*` (upload later with `wandb sync`). In wandb 0.31
  `finish()` may return a moment before wandb-core has written the run's `.wandb` file.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

from halluray.errors import InputError
from halluray.io import atomic_write_text
from halluray.secrets import read_secret, redact

if TYPE_CHECKING:
    from halluray.config import ExperimentConfig


class _JsonlWriter:
    """Appends one JSON object per line, written unbuffered, so a crash loses at most the current line.

    A write that fails (ENOSPC) leaves nothing buffered to fail again at `close` and hide the first error. A
    line torn by a crash or a full disk (the file does not end in a newline) is cut off when the file is next
    opened here, so the next record starts on a line of its own; `halluray.io.read_jsonl` skips it meanwhile."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a+b", buffering=0)
        _drop_torn_tail(self._file, self.path)

    def log(self, stage: str, step: int | None = None, **metrics) -> None:
        record = {"stage": stage, "time": round(time.time(), 3), **({"step": step} if step is not None else {}),
                  **metrics}
        data = memoryview((json.dumps(record) + "\n").encode())
        while data:  # an unbuffered write may take part of the data
            data = data[self._file.write(data):]

    def close(self) -> None:
        self._file.close()


def _drop_torn_tail(f, path: Path) -> None:
    size = end = f.seek(0, os.SEEK_END)
    keep = 0
    while end > 0:  # back from the end, 64 KiB at a time, to the last newline
        start = max(0, end - 65536)
        f.seek(start)
        chunk = f.read(end - start)
        if end == size and chunk.endswith(b"\n"):
            return
        if (cut := chunk.rfind(b"\n")) >= 0:
            keep = start + cut + 1
            break
        end = start
    if keep == size:
        return
    f.truncate(keep)
    print(f"{path}: dropped a torn last line ({size - keep} bytes) left by an interrupted write", file=sys.stderr,
          flush=True)



def progress(iterable=None, total: int | None = None, desc: str = "", **kw):
    return tqdm(iterable, total=total, desc=desc, dynamic_ncols=True, mininterval=1.0, **kw)


def resolve_wandb_mode(mode: str, env: Mapping[str, str] | None = None) -> str:
    """`online`, `offline` or `disabled` are taken as given. `auto` follows an explicit `WANDB_MODE`
    (online/offline/disabled: W&B's own override, and what the tests set), else goes online when
    `WANDB_API_KEY` or `WANDB_API_KEY_FILE` is set and offline otherwise."""
    if mode != "auto":
        return mode
    env = os.environ if env is None else env
    if env.get("WANDB_MODE") in ("online", "offline", "disabled"):
        return env["WANDB_MODE"]
    return "online" if env.get("WANDB_API_KEY") or env.get("WANDB_API_KEY_FILE") else "offline"


def _json_value(v: Any) -> Any:
    """Plain Python numbers for JSON (numpy/torch scalars included); non-finite floats become None."""
    if hasattr(v, "item") and getattr(v, "ndim", None) == 0:
        v = v.item()
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        return v
    if isinstance(v, numbers.Integral):
        return int(v)
    return float(v) if math.isfinite(v) else None


class RunLogger:
    """One stage's metrics: JSONL always, W&B per `cfg.logging.wandb_mode`. Use as a context manager
    (or call `finish`); an exception inside the block marks the W&B run as failed."""

    def __init__(self, run_dir: str | Path, cfg: ExperimentConfig, stage: str, run_id_file: Path | None = None):
        self.run_dir = Path(run_dir)
        self.stage = stage
        self.writer = _JsonlWriter(self.run_dir / "metrics.jsonl")
        self.mode = resolve_wandb_mode(cfg.logging.wandb_mode)
        self._warned_nonfinite = False
        self._finished = False
        self._wandb = self._run = None
        self._finish_timeout_s = cfg.logging.finish_timeout_s
        if self.mode == "disabled":
            return
        key = read_secret("WANDB_API_KEY")
        if key:
            os.environ["WANDB_API_KEY"] = key  # wandb reads only the variable; see the module's decisions
        import wandb  # only when used: `disabled` must work (and stay fast) without it

        self._wandb = wandb
        resume = {}
        if run_id_file is not None:  # see the module's decisions: one W&B run across resumes
            run_id_file = Path(run_id_file)
            if not run_id_file.is_file():
                atomic_write_text(run_id_file, uuid.uuid4().hex[:12] + "\n")
            resume = {"id": run_id_file.read_text().strip(), "resume": "allow"}
        try:
            self._run = wandb.init(
                mode=self.mode, project=cfg.logging.project, entity=cfg.logging.entity,
                tags=list(cfg.logging.tags), group=cfg.run.name, job_type=stage,
                name=f"{cfg.run.name}-{stage}", dir=str(self.run_dir), config=cfg.redacted(),
                reinit="create_new",  # several stages (runs) may be open in one process
                settings=wandb.Settings(
                    silent=True, console="off", x_disable_stats=True, x_disable_meta=True,
                    x_disable_machine_info=True, disable_git=True, disable_code=True, save_code=False,
                    x_save_requirements=False, init_timeout=cfg.logging.init_timeout_s,
                    finish_timeout=cfg.logging.finish_timeout_s,
                ),
                **resume,
            )
        except wandb.errors.AuthenticationError as e:
            raise InputError(f"W&B rejected the API key in WANDB_API_KEY or WANDB_API_KEY_FILE "
                             f"({redact(str(e))})") from None
        except (wandb.errors.CommError, TimeoutError) as e:
            warnings.warn(f"{stage}: W&B did not start within logging.init_timeout_s "
                          f"({cfg.logging.init_timeout_s:g} s): {type(e).__name__}: {redact(str(e))}; "
                          "logging to metrics.jsonl only", RuntimeWarning, stacklevel=2)

    def log(self, step: int, **metrics) -> None:
        clean = {k: _json_value(v) for k, v in metrics.items()}
        bad = [k for k, v in clean.items() if v is None and metrics[k] is not None]
        if bad and not self._warned_nonfinite:
            warnings.warn(f"{self.stage} step {step}: non-finite {bad} written to metrics.jsonl as null "
                          "(further non-finite values are not reported)", RuntimeWarning, stacklevel=2)
            self._warned_nonfinite = True
        self.writer.log(self.stage, step, **clean)
        if self._run is not None:
            self._run.log(metrics, step=step)

    def log_samples(self, step: int, rows: list[dict]) -> None:
        """Sample responses: `log_table` under the key `samples`."""
        self.log_table(step, "samples", rows)

    def log_table(self, step: int, key: str, rows: list[dict]) -> None:
        """A table: a W&B Table `key` (columns = keys in first-seen order, missing cells None) and one JSONL
        record `{"stage": key, "of_stage": <stage>, "step", "rows"}`."""
        columns = list(dict.fromkeys(k for row in rows for k in row))
        self.writer.log(key, step, of_stage=self.stage,
                        rows=[{k: _json_value(v) for k, v in row.items()} for row in rows])
        if self._run is not None:
            table = self._wandb.Table(columns=columns, data=[[row.get(c) for c in columns] for row in rows])
            self._run.log({key: table}, step=step)

    def finish(self, exit_code: int = 0) -> None:
        if self._finished:
            return
        self._finished = True
        try:
            if self._run is not None:
                self._finish_wandb(exit_code)
        finally:
            self.writer.close()

    def _finish_wandb(self, exit_code: int) -> None:
        failed: list[BaseException] = []

        def finish() -> None:
            try:
                self._run.finish(exit_code=exit_code)
            except Exception as e:
                failed.append(e)

        thread = threading.Thread(target=finish, name=f"wandb-finish-{self.stage}", daemon=True)
        thread.start()
        thread.join(self._finish_timeout_s)
        if thread.is_alive():
            problem = f"did not finish within logging.finish_timeout_s ({self._finish_timeout_s:g} s)"
        elif failed:
            problem = f"failed to finish ({type(failed[0]).__name__}: {redact(str(failed[0]))})"
        else:
            return
        warnings.warn(f"{self.stage}: W&B {problem}; going on (metrics.jsonl is complete; an offline or "
                      f"unfinished run uploads with `wandb sync {self.run_dir / 'wandb'}`)", RuntimeWarning,
                      stacklevel=3)

    def __enter__(self) -> RunLogger:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.finish(exit_code=1 if exc_type is not None else 0)
