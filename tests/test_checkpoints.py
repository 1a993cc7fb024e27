"""Checkpoints on disk (halluray/checkpoints.py): complete by construction, checked part by part on resume,
damaged steps skipped, leftovers cleaned, only the newest kept, and nothing but data ever unpickled."""

from __future__ import annotations

import os
import pickle

import pytest
import torch

from halluray import checkpoints
from tests.ppo_runs import reseal


def _save(ckpt_dir, step: int) -> None:
    """A step as the driver commits it: two policy ranks' reports (a shard and an RNG file each) and driver.pt."""
    tmp = checkpoints.temp_dir(ckpt_dir, step)
    (tmp / "policy").mkdir(parents=True)
    reports = []
    for rank in (0, 1):
        files = [tmp / "policy" / f"shard_rank{rank}.bin", tmp / "policy" / f"rng_rank{rank}.pt"]
        files[0].write_bytes(bytes(range(256)) * (rank + step))
        torch.save({"torch": torch.get_rng_state()}, files[1])
        reports.append(checkpoints.report(tmp / "policy", files))
    torch.save({"step": step, "torch_rng": torch.get_rng_state()}, tmp / checkpoints.DRIVER_STATE)
    checkpoints.commit(tmp, checkpoints.step_dir(ckpt_dir, step), {"policy": reports})


def test_the_newest_complete_step_is_resumed_and_a_damaged_one_is_skipped(tmp_path):
    for step in (2, 4, 6):
        _save(tmp_path, step)
    assert checkpoints.latest(tmp_path) == tmp_path / "step_000006"
    (tmp_path / "step_000006" / "policy" / "shard_rank0.bin").write_bytes(b"cut")  # a part lost its tail
    with pytest.warns(RuntimeWarning, match="step_000006 is damaged .*policy/shard_rank0.bin"):
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
    reseal(tmp_path / "step_000004")  # sizes and checksums match: only the content is hostile
    with pytest.raises(pickle.UnpicklingError):
        checkpoints.load_driver_state(tmp_path / "step_000004")
    with pytest.warns(RuntimeWarning, match="driver.pt does not load"):
        assert checkpoints.latest(tmp_path) == tmp_path / "step_000002"
    assert not (tmp_path / "pwned").exists()


def test_a_deleted_rank_shard_or_flipped_bytes_of_the_same_size_fall_back_to_the_previous_step(tmp_path):
    for step in (2, 4, 6):
        _save(tmp_path, step)
    os.remove(tmp_path / "step_000006" / "policy" / "shard_rank1.bin")  # rank 1's shard is gone
    shard = tmp_path / "step_000004" / "policy" / "shard_rank0.bin"
    data = bytearray(shard.read_bytes())
    data[100] ^= 0xFF  # one flipped byte, same size
    shard.write_bytes(bytes(data))
    with pytest.warns(RuntimeWarning) as warned:
        assert checkpoints.latest(tmp_path) == tmp_path / "step_000002"
    assert [str(w.message) for w in warned] == [
        f"checkpoint {tmp_path / 'step_000006'} is damaged (policy/shard_rank1.bin is missing or has the wrong "
        f"size); falling back to an earlier step",
        f"checkpoint {tmp_path / 'step_000004'} is damaged (policy/shard_rank0.bin does not match its checksum); "
        f"falling back to an earlier step"]


def test_a_step_that_a_rank_wrote_nothing_for_is_damaged(tmp_path):
    _save(tmp_path, 2)
    tmp = checkpoints.temp_dir(tmp_path, 4)
    (tmp / "policy").mkdir(parents=True)
    torch.save({"step": 4}, tmp / checkpoints.DRIVER_STATE)
    checkpoints.commit(tmp, checkpoints.step_dir(tmp_path, 4), {"policy": [{}, {}]})
    assert checkpoints.problem(tmp_path / "step_000004") == "policy ranks [0, 1] reported nothing"
    (tmp_path / "step_000004" / checkpoints.MANIFEST).write_text('{"driver.pt": 1000}')  # sizes only, no ranks
    assert checkpoints.problem(tmp_path / "step_000004") == ("its manifest has no rank reports or checksums (written "
                                                             "by an older halluray)")
    with pytest.warns(RuntimeWarning):
        assert checkpoints.latest(tmp_path) == tmp_path / "step_000002"


def test_every_part_and_directory_is_on_disk_before_the_step_is_renamed_into_place(tmp_path, monkeypatch):
    synced, real_replace = [], os.replace
    monkeypatch.setattr(checkpoints, "fsync", lambda path: synced.append(path))
    monkeypatch.setattr(checkpoints.os, "replace", lambda a, b: (synced.append("rename"), real_replace(a, b)))
    _save(tmp_path, 2)
    tmp, final = checkpoints.temp_dir(tmp_path, 2), tmp_path / "step_000002"
    before = synced[:synced.index("rename")]
    expected = {tmp, tmp / "policy", tmp / checkpoints.MANIFEST, tmp / checkpoints.DRIVER_STATE,
                *(tmp / "policy" / f"{kind}_rank{r}.{ext}" for r in (0, 1) for kind, ext in (("shard", "bin"),
                                                                                            ("rng", "pt")))}
    assert expected <= set(before)
    assert before[-1] == tmp  # the directory itself last, after everything in it
    assert synced[synced.index("rename") + 1:] == [tmp_path]  # and its parent after the rename
    assert checkpoints.problem(final) is None


def test_a_step_that_does_not_load_is_marked_bad_kept_and_never_resumed_again(tmp_path):
    for step in (2, 4):
        _save(tmp_path, step)
    bad = checkpoints.mark_bad(tmp_path / "step_000004")
    assert bad == tmp_path / ".step_000004.bad"
    assert checkpoints.latest(tmp_path) == tmp_path / "step_000002"
    checkpoints.clean_leftovers(tmp_path)
    assert bad.is_dir()  # kept for inspection
    _save(tmp_path, 4)  # the same step saved again later, and bad again
    assert checkpoints.mark_bad(tmp_path / "step_000004") == bad


def test_a_pickled_payload_in_an_engine_part_is_named_not_unpickled(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    engine = tmp_path / "policy" / "engine"
    engine.mkdir(parents=True)
    torch.save({"module": {"w": torch.ones(2)}}, engine / "mp_rank_00_model_states.pt")
    assert checkpoints.unsafe_globals(tmp_path / "policy") == []
    torch.save({"module": {"w": torch.ones(2)}, "x": _Exploit()}, engine / "mp_rank_00_model_states.pt")
    assert checkpoints.unsafe_globals(tmp_path / "policy") == [(engine / "mp_rank_00_model_states.pt", "posix.system")]
    assert not (tmp_path / "pwned").exists()
