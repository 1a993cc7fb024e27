"""PPO checkpoints on disk: a step is written into a temp directory and renamed once, so a directory named
`step_NNNNNN` is complete by construction. Every training rank reports the files it wrote (size and sha256,
each fsynced); the step's manifest is built from those reports, so every rank's files are required parts, and
files and directories are fsynced before the rename (the parent after it). Resuming checks every part's size and
checksum against the manifest and falls back to the previous step when one is damaged; a step whose parts still
fail to load on the actors is marked bad (`.step_NNNNNN.bad`, kept for inspection) and the previous step is
tried. Engine parts are unpickled weights-only, allowing only `ENGINE_GLOBALS`. Leftovers of an interrupted
save or deletion are removed.

    checkpoints/step_000004/  manifest.json  driver.pt  policy/...  critic/...
    checkpoints/.step_000006.tmp/   (a save in progress, or one that was interrupted: never read)
    checkpoints/.step_000008.bad/   (a step that did not load, or a damaged one saved again: never read again)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from pathlib import Path

import torch

MANIFEST = "manifest.json"
DRIVER_STATE = "driver.pt"
CHUNK = 2**22
ENGINE_GLOBALS = frozenset({
    "deepspeed.runtime.fp16.loss_scaler.LossScaler",
    "deepspeed.runtime.zero.config.ZeroStageEnum",
    "deepspeed.utils.tensor_fragment.fragment_address",
})
"""What DeepSpeed's engine parts may unpickle beyond tensors and plain containers: the globals that
`torch.serialization.get_unsafe_globals_in_checkpoint` finds in real checkpoints (ZeRO-0, 2 and 3, fp32 and bf16;
DeepSpeed 0.19); model states need none."""


def step_dir(checkpoint_dir: Path, step: int) -> Path:
    return checkpoint_dir / f"step_{step:06d}"


def temp_dir(checkpoint_dir: Path, step: int) -> Path:
    return checkpoint_dir / f".step_{step:06d}.tmp"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fsync(path: Path) -> None:
    """Flush a file's or a directory's contents (a directory: its entries) to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def report(root: Path, files: list[Path]) -> dict[str, dict]:
    """What a rank wrote under `root`: each file fsynced, by its path relative to `root`, with size and sha256."""
    out = {}
    for path in sorted(set(files)):
        fsync(path)
        out[str(path.relative_to(root))] = {"size": path.stat().st_size, "sha256": sha256(path)}
    return out


def write_manifest(tmp: Path, reports: dict[str, list[dict]]) -> None:
    """The step's parts: every rank's report (`reports[role][rank]`, paths relative to `tmp/role`) and the
    driver's own state; `problem` checks each part and that every rank reported."""
    files = {f"{role}/{name}": part for role, ranks in reports.items() for rank in ranks
             for name, part in rank.items()}
    files.update(report(tmp, [tmp / DRIVER_STATE]))
    manifest = {"ranks": {role: len(ranks) for role, ranks in reports.items()},
                "reported": {role: [i for i, rank in enumerate(ranks) if rank] for role, ranks in reports.items()},
                "files": files}
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))


def commit(tmp: Path, final: Path, reports: dict[str, list[dict]]) -> None:
    """The one rename that makes a step complete, once the manifest is written and everything is on disk."""
    write_manifest(tmp, reports)
    for path in sorted(tmp.rglob("*"), reverse=True):  # files, then the directories holding them
        fsync(path)
    fsync(tmp)
    os.replace(tmp, final)
    fsync(final.parent)


def problem(path: Path, checksums: bool = True) -> str | None:
    """Why the step at `path` cannot be resumed from, or None when every rank reported and every part is there
    with its size and checksum, and the driver's state loads. `checksums=False` checks sizes only: for a step
    whose ranks hashed it as they wrote it, where reading it all again (tens of GB at 7B) proves little."""
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError):
        return "no readable manifest"
    try:
        files, ranks, reported = manifest["files"], manifest["ranks"], manifest["reported"]
    except (KeyError, TypeError):
        return "its manifest has no rank reports or checksums (written by an older halluray)"
    for role, n in ranks.items():
        if reported.get(role) != list(range(n)):
            return f"{role} ranks {sorted(set(range(n)) - set(reported.get(role, [])))} reported nothing"
    for name, part in files.items():
        file = path / name
        if not file.is_file() or file.stat().st_size != part["size"]:
            return f"{name} is missing or has the wrong size"
        if checksums and sha256(file) != part["sha256"]:
            return f"{name} does not match its checksum"
    try:
        load_driver_state(path)
    except Exception as e:
        return f"{DRIVER_STATE} does not load ({e.__class__.__name__})"
    return None


def unsafe_globals(root: Path) -> list[tuple[Path, str]]:
    """Each `.pt` file under `root` with a global its pickle names that `ENGINE_GLOBALS` does not allow (reads
    only the pickles, not the tensors)."""
    return [(f, name) for f in sorted(root.rglob("*.pt"))
            for name in torch.serialization.get_unsafe_globals_in_checkpoint(f) if name not in ENGINE_GLOBALS]


def mark_bad(path: Path) -> Path:
    """Rename a step that did not load to `.step_NNNNNN.bad`, so `latest` never returns it again."""
    bad = path.with_name(f".{path.name}.bad")
    shutil.rmtree(bad, ignore_errors=True)  # a step saved again after an earlier one of its number went bad
    os.replace(path, bad)
    fsync(path.parent)
    return bad


def load_driver_state(path: Path) -> dict:
    """The driver's own state: plain numbers and tensors, so nothing but data is unpickled."""
    return torch.load(path / DRIVER_STATE, weights_only=True)


def latest(checkpoint_dir: Path, checksums: bool = True) -> Path | None:
    """The newest step that passes `problem`; damaged newer steps are reported and skipped."""
    for path in sorted(checkpoint_dir.glob("step_*"), reverse=True):
        why = problem(path, checksums)
        if why is None:
            return path
        warnings.warn(f"checkpoint {path} is damaged ({why}); falling back to an earlier step", RuntimeWarning,
                      stacklevel=2)
    return None


def clean_leftovers(checkpoint_dir: Path) -> None:
    """Temp directories of saves or deletions that a crash interrupted (bad steps are kept)."""
    for path in checkpoint_dir.glob(".step_*"):
        if path.name.endswith(".bad"):
            continue
        shutil.rmtree(path, ignore_errors=True)


def keep_last(checkpoint_dir: Path, n: int) -> None:
    """Delete all but the newest `n` steps (0 keeps every step). A step is renamed away first, so a
    half-deleted directory never looks like a step."""
    if n <= 0:
        return
    for path in sorted(checkpoint_dir.glob("step_*"))[:-n]:
        doomed = path.with_name(f".{path.name}.deleting")
        os.replace(path, doomed)
        shutil.rmtree(doomed, ignore_errors=True)
