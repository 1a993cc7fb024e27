"""Pure pieces of the factuality pipeline, against hand-computed values."""

import pytest
import torch

from halluray.data.sft import sft_tensors
from halluray.eval.buckets import bin_of, means_by_bin, quantile_edges
from halluray.factuality.relabel import relabel
from halluray.factuality.rewards import RewardScheme, long_form_reward, short_answer_reward
from halluray.models.heads import FactVerifier, verifier_tensors
from halluray.rewards.data import label_responses, scalar_examples, verifier_examples
from halluray.world.checker import CheckResult, FactChecker
from halluray.world.entities import Person, World

FACTS = {"birth_year": "1964", "birth_city": "Perth", "occupation": "chemist", "employer": "Tidewater",
         "hobby": "pottery", "nationality": "Nigerian"}


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


def test_paper_rewards():
    result = CheckResult()
    scheme = RewardScheme()
    assert long_form_reward(result, scheme) == 0
    from halluray.world.checker import AtomicFact
    result.facts = [AtomicFact("a", "X", "hobby", "chess", "true")] * 3 + [AtomicFact("b", "X", "hobby", "golf", "false")]
    assert long_form_reward(result, scheme) == 3 * 2 - 3  # +2 per true, -3 per false
    assert [short_answer_reward(x, scheme) for x in ("correct", "incorrect", "abstain")] == [2, -3, 0]


def test_sft_tensors_put_the_loss_on_target_and_end_token(world):
    from halluray.models.tokenizer import train_word_tokenizer
    from halluray.world.build import vocabulary_texts

    tok = train_word_tokenizer(list(vocabulary_texts(world)))
    t = sft_tensors(tok, ["Write a biography for X .", "I do not know ."], ["I do not know .", "."])
    # Row 0: 6 prompt tokens + 5 target tokens + EOS = 12; loss predicts tokens 6..11 -> mask positions 5..10.
    assert t["attention_mask"][0].sum() == 12
    assert t["loss_mask"][0].tolist() == [0] * 5 + [1] * 6
    # Row 1: 5 prompt tokens + "." + EOS = 7, predicting tokens 5..6 -> positions 4..5, then right padding.
    assert t["loss_mask"][1].tolist() == [0] * 4 + [1] * 2 + [0] * 5
    assert t["input_ids"][0, 11] == tok.eos_token_id


def test_quantile_bins_and_means():
    scores = [0, 1, 2, 3, 4, 5]
    edges = quantile_edges(scores, 3)
    assert edges == [2, 4]
    assert [bin_of(s, edges) for s in scores] == [0, 0, 1, 1, 2, 2]
    assert means_by_bin([1, 3, 5, 7, 9, 11], scores, edges) == [2, 6, 10]
    assert means_by_bin([1.0], [0], edges) == [1.0, None, None]


def test_label_responses_and_rm_examples():
    world = World(people=(Person("Zapur", FACTS, 24, "rm"),), seed=0)
    recs = label_responses(FactChecker(world), [{"topic": "Zapur", "prompt": "Write a biography for Zapur ."}],
                           ["Zapur comes from Perth . Zapur enjoys chess ."], RewardScheme())
    assert recs[0]["reward"] == 2 - 3
    assert verifier_examples(recs) == [(("Zapur comes from Perth .", "Perth"), 1.0), (("Zapur enjoys chess .", "chess"), 0.0)]
    assert scalar_examples(recs) == [("Write a biography for Zapur . Zapur comes from Perth . Zapur enjoys chess .", -1.0)]


def test_verifier_reads_the_value_span(world, tiny_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    t = verifier_tensors(tok, [("Zapur comes from Perth .", "Perth"), ("In 1964 , Zapur was born .", "1964")])
    assert t["value_mask"][0].tolist()[:5] == [0, 0, 0, 1, 0]
    assert t["value_mask"][1].tolist()[:6] == [0, 1, 0, 0, 0, 0]
    verifier = FactVerifier.from_pretrained(tiny_model_dir)
    logits = verifier(**t)
    # Initial head: logit = log P(value) + 1.5, so it equals the LM's own log-probability of the value.
    from halluray.models.forward import token_logprobs
    with torch.no_grad():
        lp = token_logprobs(verifier.lm, t["input_ids"], t["attention_mask"])
    assert logits[0].item() == pytest.approx(lp[0, 2].item() + 1.5, abs=1e-5)
    assert logits[1].item() == pytest.approx(lp[1, 0].item() + 1.5, abs=1e-5)
    with pytest.raises(ValueError, match="does not occur"):
        verifier_tensors(tok, [("Zapur comes from Perth .", "Oslo")])


def test_two_stage_reward_is_the_expected_reward_of_verified_facts(tmp_path, tiny_model_dir):
    import json
    import shutil

    from halluray.rewards.models import TwoStageRewardModel, load_reward_model

    rm_path = tmp_path / "rm"
    shutil.copytree(tiny_model_dir, rm_path)
    (rm_path / "rm.json").write_text(json.dumps({"kind": "two-stage", "true_fact": 2.0, "false_fact": -3.0}))
    rm = load_reward_model(rm_path)
    assert isinstance(rm, TwoStageRewardModel)
    response = "Zapur comes from Perth . Zapur enjoys chess . Zapur comes from Perth . gibberish here ."
    p = rm.p_true([("Zapur comes from Perth", "Perth"), ("Zapur enjoys chess", "chess")])
    expected = sum(pi * 2 + (1 - pi) * -3 for pi in p)  # the repeated fact counts once, gibberish 0
    assert rm(["q"], [response], ["Zapur"])[0] == pytest.approx(expected)
    assert rm(["q"], ["I do not know ."], ["Zapur"]) == [0.0]
    # Facts stated with another name are read as claims about the topic.
    renamed = response.replace("Zapur", "Bralo")
    assert rm(["q"], [renamed], ["Zapur"])[0] == pytest.approx(expected)
