"""SFT targets (paper §4): which examples become abstentions, and where the SFT loss falls."""

import shutil

import pytest
import torch

from halluray.cli import main
from halluray.data.sft import sft_tensors
from halluray.factuality.relabel import item_key, relabel
from halluray.models.build import load_model
from halluray.models.tokenizer import train_word_tokenizer
from halluray.world.build import vocabulary_texts


def _records(n):
    return [{"topic": f"T{i}", "prompt": f"p{i}", "target": f"t{i}"} for i in range(n)]


def test_unfamiliar_idk_relabels_exactly_the_unfamiliar_examples():
    flags = {f"T{i}": i in (1, 4) for i in range(6)}
    out, n = relabel(_records(6), flags, "unfamiliar-idk", "I do not know .", seed=0)
    assert n == 2
    assert [r["target"] for r in out] == ["t0", "I do not know .", "t2", "t3", "I do not know .", "t5"]


def test_random_idk_relabels_the_same_number_at_random():
    flags = {f"T{i}": i < 3 for i in range(20)}
    out, n = relabel(_records(20), flags, "random-idk", "IDK", seed=1)
    assert n == 3 and sum(r["relabeled"] for r in out) == 3
    assert [i for i, r in enumerate(out) if r["relabeled"]] != [0, 1, 2]  # not the unfamiliar ones (seeded)
    assert relabel(_records(20), flags, "random-idk", "IDK", seed=1) == (out, n)


def test_standard_keeps_targets_and_idk_needs_scores():
    out, n = relabel(_records(2), {}, "standard", "IDK", seed=0)
    assert n == 0 and [r["target"] for r in out] == ["t0", "t1"]
    with pytest.raises(ValueError, match="run `halluray unfamiliarity` first"):
        relabel(_records(2), {}, "unfamiliar-idk", "IDK", seed=0)


def test_sft_tensors_put_the_loss_on_target_and_end_token(world):
    tok = train_word_tokenizer(list(vocabulary_texts(world)))
    t = sft_tensors(tok, ["Write a biography for X .", "I do not know ."], ["I do not know .", "."])
    # Row 0: 6 prompt tokens + 5 target tokens + EOS = 12; loss predicts tokens 6..11 -> mask positions 5..10.
    assert t["attention_mask"][0].sum() == 12
    assert t["loss_mask"][0].tolist() == [0] * 5 + [1] * 6
    # Row 1: 5 prompt tokens + "." + EOS = 7, predicting tokens 5..6 -> positions 4..5, then right padding.
    assert t["loss_mask"][1].tolist() == [0] * 4 + [1] * 2 + [0] * 5
    assert t["input_ids"][0, 11] == tok.eos_token_id


def test_a_topic_asked_two_questions_is_relabeled_only_where_it_is_unfamiliar():
    # A fact table may ask a country's capital and a same-named city's country: scores are per question.
    records = [{"topic": "Singapore", "attribute": "capital", "prompt": "p1", "target": "a"},
               {"topic": "Singapore", "attribute": "country", "prompt": "p2", "target": "b"}]
    flags = {item_key("Singapore", "capital"): False, item_key("Singapore", "country"): True}
    out, n = relabel(records, flags, "unfamiliar-idk", "I don't know.", seed=0)
    assert n == 1 and [r["target"] for r in out] == ["a", "I don't know."]


def test_lora_sft_exports_a_plain_model_changed_only_where_the_adapters_sit(tiny_run, ray_cluster, tmp_path):
    root, args = tiny_run
    shutil.copytree(root / "r", tmp_path / "r")  # the session's run stays as other tests expect it
    args = [a for a in args if not a.startswith("run.output_dir=")] + [f"run.output_dir={tmp_path}"]
    assert main(["sft", *args, "sft.lora=true", "lora.target_modules=[c_attn]", "sft.steps=2", "sft.batch_size=4",
                 "sft.lr=1e-2", "sft.warmup_steps=0", "actors.policy.num_actors=1"]) == 0
    exported = tmp_path / "r" / "sft" / "model"
    assert not (exported / "adapter_config.json").exists()  # merged: RL and evaluation load a plain model
    base = load_model(tmp_path / "r" / "base_model")[0].state_dict()
    tuned = load_model(exported)[0].state_dict()
    assert tuned.keys() == base.keys()
    changed = {k for k in base if not torch.equal(base[k], tuned[k])}
    assert changed and all(".c_attn." in k for k in changed), changed
