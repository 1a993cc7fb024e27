"""Checkpoints on disk (halluray/checkpoints.py): complete by construction, checked part by part on resume,
damaged steps skipped, leftovers cleaned, only the newest kept, and nothing but data ever unpickled."""

from __future__ import annotations

import os
import pickle

import pytest
import torch

from halluray import checkpoints


def _save(ckpt_dir, step: int) -> None:
    tmp = checkpoints.temp_dir(ckpt_dir, step)
    (tmp / "policy").mkdir(parents=True)
    (tmp / "policy" / "weights.bin").write_bytes(b"w" * (100 + step))
    torch.save({"step": step, "torch_rng": torch.get_rng_state()}, tmp / checkpoints.DRIVER_STATE)
    checkpoints.commit(tmp, checkpoints.step_dir(ckpt_dir, step))


def test_the_newest_complete_step_is_resumed_and_a_damaged_one_is_skipped(tmp_path):
    for step in (2, 4, 6):
        _save(tmp_path, step)
    assert checkpoints.latest(tmp_path) == tmp_path / "step_000006"
    (tmp_path / "step_000006" / "policy" / "weights.bin").write_bytes(b"cut")  # a part lost its tail
    with pytest.warns(RuntimeWarning, match="step_000006 is damaged .*policy/weights.bin"):
        assert checkpoints.latest(tmp_path) == tmp_path / "step_000004"
    os.remove(tmp_path / "step_000004" / checkpoints.MANIFEST)
    with pytest.warns(RuntimeWarning):
        assert checkpoints.latest(tmp_path) == tmp_path / "step_000002"


def test_an_interrupted_save_is_never_read_and_is_cleaned_up(tmp_path):
    _save(tmp_path, 2)
    half = checkpoints.temp_dir(tmp_path, 4)
    (half / "policy").mkdir(parents=True)
    (half / "policy" / "weights.bin").write_bytes(b"partial")
    assert checkpoints.latest(tmp_path) == tmp_path / "step_000002"
    checkpoints.clean_leftovers(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_000002"]


def test_keep_last_deletes_the_oldest_steps_only(tmp_path):
    for step in (2, 4, 6, 8):
        _save(tmp_path, step)
    checkpoints.keep_last(tmp_path, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_000006", "step_000008"]
    checkpoints.keep_last(tmp_path, 0)  # 0 keeps every step
    assert len(list(tmp_path.iterdir())) == 2


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_a_malicious_driver_state_is_refused_not_executed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _save(tmp_path, 2)
    _save(tmp_path, 4)
    with open(tmp_path / "step_000004" / checkpoints.DRIVER_STATE, "wb") as f:
        pickle.dump({"step": 4, "payload": _Exploit()}, f)
    checkpoints.write_manifest(tmp_path / "step_000004")  # sizes match: only the content is hostile
    with pytest.raises(pickle.UnpicklingError):
        checkpoints.load_driver_state(tmp_path / "step_000004")
    with pytest.warns(RuntimeWarning, match="driver.pt does not load"):
        assert checkpoints.latest(tmp_path) == tmp_path / "step_000002"
    assert not (tmp_path / "pwned").exists()
