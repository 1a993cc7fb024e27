"""One process per PPO directory: a lock held for the run's lifetime, and the inputs it started from.

The lock is `flock` on `<dir>/lock`, which holds `<pid>@<host>` of its holder. flock belongs to the open file,
so two opens in one process conflict too, the kernel drops it when the process dies (even by SIGKILL: no stale
lock to clean up), and Linux's NFS client turns it into an NFS lock, seen by every node of the cluster.
The file itself is never deleted (a waiter could lock a file already unlinked).

The fingerprints (`<dir>/inputs.json`) are the data and init-model files of the run as it started; a resume
compares them (`changed_inputs`). Each file is its size and a sha256: of the whole file up to
`FULL_HASH_BYTES`, and of its first and last `ENDS_BYTES` above that (7B weights would take a minute to hash
on every resume). Modification times are not used: copying a run and its model to another node or disk
changes them without changing a byte, and a retrained model of the same size differs in its first bytes.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import socket
from collections.abc import Iterator, Mapping
from pathlib import Path

from halluray.errors import InputError
from halluray.io import atomic_write_json

LOCK = "lock"
INPUTS = "inputs.json"
FULL_HASH_BYTES = 64 * 2**20
ENDS_BYTES = 2**20


@contextlib.contextmanager
def hold(directory: str | Path) -> Iterator[None]:
    """Hold `directory`'s lock within the block (creating the directory); InputError naming the holder's pid
    when another process holds it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 256).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        pid, _, host = holder.partition("@")
        raise InputError(f"{directory} is in use by another halluray process (pid {pid}"
                         f"{f' on {host}' if host else ''}); wait for it to end, or stop it first") from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}@{socket.gethostname()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def _file_fingerprint(path: Path) -> dict:
    size = path.stat().st_size
    digest = hashlib.sha256()
    with path.open("rb") as f:
        if size <= FULL_HASH_BYTES:
            for chunk in iter(lambda: f.read(2**20), b""):
                digest.update(chunk)
            return {"size": size, "sha256": digest.hexdigest()}
        digest.update(f.read(ENDS_BYTES))
        f.seek(size - ENDS_BYTES)
        digest.update(f.read(ENDS_BYTES))
    return {"size": size, "sha256_ends": digest.hexdigest()}


def fingerprints(path: Path) -> dict[str, dict]:
    """Each file of `path` (a file, or a directory's files below it) by its path relative to `path`."""
    if path.is_file():
        return {path.name: _file_fingerprint(path)}
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else []
    return {str(p.relative_to(path)): _file_fingerprint(p) for p in files}


def record_inputs(directory: Path, inputs: Mapping[str, Path]) -> None:
    """Write the fingerprints of `inputs` (label -> file or directory) into `directory`."""
    atomic_write_json(directory / INPUTS, {label: {"path": str(p), "is_file": Path(p).is_file(),
                                                   "files": fingerprints(Path(p))} for label, p in inputs.items()})


def changed_inputs(directory: Path, inputs: Mapping[str, Path]) -> list[str]:
    """What differs between `inputs` now and as recorded when the run started, one phrase per file (a file
    added, gone, or with other contents); nothing for a run that recorded none (started before this check)."""
    saved_file = directory / INPUTS
    if not saved_file.is_file():
        return []
    saved = json.loads(saved_file.read_text())
    changes = []
    for label, path in inputs.items():
        if label not in saved:
            continue
        before, now = saved[label]["files"], fingerprints(Path(path))
        for name in sorted(before.keys() | now.keys()):
            where = Path(path) if saved[label].get("is_file") else Path(path) / name
            if name not in now:
                changes.append(f"{label} file {where} is gone")
            elif name not in before:
                changes.append(f"{label} file {where} is new")
            elif before[name] != now[name]:
                changes.append(f"{label} file {where} changed")
    return changes
