"""PPO checkpoints on disk: a step is written into a temp directory and renamed once, so a directory named
`step_NNNNNN` is complete by construction; resuming checks every part against the step's manifest and falls
back to the previous step when one is damaged; leftovers of an interrupted save or deletion are removed.

    checkpoints/step_000004/  manifest.json  driver.pt  policy/...  critic/...
    checkpoints/.step_000006.tmp/   (a save in progress, or one that was interrupted: never read)
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

import torch

MANIFEST = "manifest.json"
DRIVER_STATE = "driver.pt"


def step_dir(checkpoint_dir: Path, step: int) -> Path:
    return checkpoint_dir / f"step_{step:06d}"


def temp_dir(checkpoint_dir: Path, step: int) -> Path:
    return checkpoint_dir / f".step_{step:06d}.tmp"


def write_manifest(tmp: Path) -> None:
    """Every file of the step with its size: what `is_complete` checks before a resume trusts it."""
    files = {str(p.relative_to(tmp)): p.stat().st_size for p in sorted(tmp.rglob("*"))
             if p.is_file() and p.name != MANIFEST}
    (tmp / MANIFEST).write_text(json.dumps(files, indent=1))


def commit(tmp: Path, final: Path) -> None:
    """The one rename that makes a step complete."""
    write_manifest(tmp)
    os.replace(tmp, final)


def problem(path: Path) -> str | None:
    """Why the step at `path` cannot be resumed from, or None when every part is there and loads."""
    try:
        files = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError):
        return "no readable manifest"
    for name, size in files.items():
        part = path / name
        if not part.is_file() or part.stat().st_size != size:
            return f"{name} is missing or has the wrong size"
    try:
        load_driver_state(path)
    except Exception as e:
        return f"{DRIVER_STATE} does not load ({e.__class__.__name__})"
    return None


def load_driver_state(path: Path) -> dict:
    """The driver's own state: plain numbers and tensors, so nothing but data is unpickled."""
    return torch.load(path / DRIVER_STATE, weights_only=True)


def latest(checkpoint_dir: Path) -> Path | None:
    """The newest step that passes `problem`; damaged newer steps are reported and skipped."""
    for path in sorted(checkpoint_dir.glob("step_*"), reverse=True):
        why = problem(path)
        if why is None:
            return path
        warnings.warn(f"checkpoint {path} is damaged ({why}); falling back to an earlier step", RuntimeWarning,
                      stacklevel=2)
    return None


def clean_leftovers(checkpoint_dir: Path) -> None:
    """Temp directories of saves or deletions that a crash interrupted."""
    for path in checkpoint_dir.glob(".step_*"):
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
