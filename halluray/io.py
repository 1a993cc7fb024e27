"""Atomic writes: readers never see a half-written file or directory (write to a temp, then rename)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path


def atomic_write_text(path: str | Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def write_jsonl(path: str | Path, records) -> None:
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in records))


def read_jsonl(path: str | Path) -> list[dict]:
    """Every record of a JSON-lines file. A last line without its newline that does not parse is a record torn
    by a crash mid-write (an append-only log such as metrics.jsonl): it is skipped with a warning, and the
    log's writer drops it when it next opens the file. A bad line anywhere else raises."""
    text = Path(path).read_text()
    lines = text.splitlines()
    torn = lines.pop() if lines and not text.endswith("\n") else None
    records = [json.loads(line) for line in lines if line.strip()]
    if torn is not None and torn.strip():
        try:
            records.append(json.loads(torn))
        except json.JSONDecodeError:
            warnings.warn(f"{path}: skipped a torn last line ({len(torn)} characters, no newline): a write cut "
                          "off by a crash", RuntimeWarning, stacklevel=2)
    return records


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temp directory beside `path`; on success it replaces `path`, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
