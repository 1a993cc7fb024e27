"""Metrics: an append-only JSONL file per run (always) and progress bars for long work."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tqdm.auto import tqdm


class MetricsWriter:
    """Appends one JSON object per line, flushed at once, so a crash loses at most the current line."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a")

    def log(self, stage: str, step: int | None = None, **metrics) -> None:
        record = {"stage": stage, "time": round(time.time(), 3), **({"step": step} if step is not None else {}), **metrics}
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "MetricsWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress(iterable=None, total: int | None = None, desc: str = "", **kw):
    return tqdm(iterable, total=total, desc=desc, dynamic_ncols=True, mininterval=1.0, **kw)
