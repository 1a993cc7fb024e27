"""Rewards and reward models against hand-computed values: the paper's reward functions, RM training data,
the verifier's value span, the two-stage expected reward, and the unfamiliarity buckets they are read by."""

import pytest
import torch
from transformers import AutoTokenizer

from halluray.eval.buckets import bin_of, means_by_bin, quantile_edges
from halluray.factuality.reward_functions import RewardScheme, long_form_reward, short_answer_reward
from halluray.models.forward import token_logprobs
from halluray.models.heads import ClaimBeliefVerifier, FactVerifier, claim_tensors, verifier_tensors
from halluray.reward_models.data import label_responses, scalar_examples, verifier_examples
from halluray.reward_models.models import TwoStageRewardModel, load_reward_model
from halluray.world.checker import AtomicFact, CheckResult, ExactChecker
from halluray.world.entities import Person, World

FACTS = {"birth_year": "1964", "birth_city": "Perth", "occupation": "chemist", "employer": "Tidewater",
         "hobby": "pottery", "nationality": "Nigerian"}


def test_paper_rewards():
    result = CheckResult()
    scheme = RewardScheme()
    assert long_form_reward(result, scheme) == 0
    result.facts = ([AtomicFact("a", "X", "hobby", "chess", "true")] * 3
                    + [AtomicFact("b", "X", "hobby", "golf", "false")])
    assert long_form_reward(result, scheme) == 3 * 2 - 3  # +2 per true, -3 per false
    assert [short_answer_reward(x, scheme) for x in ("correct", "incorrect", "abstain")] == [2, -3, 0]


def test_quantile_bins_and_means():
    scores = [0, 1, 2, 3, 4, 5]
    edges = quantile_edges(scores, 3)
    assert edges == [2, 4]
    assert [bin_of(s, edges) for s in scores] == [0, 0, 1, 1, 2, 2]
    assert means_by_bin([1, 3, 5, 7, 9, 11], scores, edges) == [2, 6, 10]
    assert means_by_bin([1.0], [0], edges) == [1.0, None, None]


def test_label_responses_and_rm_examples():
    world = World(people=(Person("Zapur", FACTS, 24, "rm"),), seed=0)
    recs = label_responses(ExactChecker(world), [{"topic": "Zapur", "prompt": "Write a biography for Zapur ."}],
                           ["Zapur comes from Perth . Zapur enjoys chess ."], RewardScheme())
    assert recs[0]["reward"] == 2 - 3
    assert verifier_examples(recs) == [(("Zapur comes from Perth .", "Perth"), 1.0),
                                       (("Zapur enjoys chess .", "chess"), 0.0)]
    assert scalar_examples(recs) == [
        ("Write a biography for Zapur . Zapur comes from Perth . Zapur enjoys chess .", -1.0)]


def test_verifier_reads_the_value_span(world, tiny_model_dir):
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    t = verifier_tensors(tok, [("Zapur comes from Perth .", "Perth"), ("In 1964 , Zapur was born .", "1964")])
    assert t["value_mask"][0].tolist()[:5] == [0, 0, 0, 1, 0]
    assert t["value_mask"][1].tolist()[:6] == [0, 1, 0, 0, 0, 0]
    verifier = FactVerifier.from_pretrained(tiny_model_dir)
    logits = verifier(**t)
    # Initial head: logit = log P(value) + 1.5, so it equals the LM's own log-probability of the value.
    with torch.no_grad():
        lp = token_logprobs(verifier.lm, t["input_ids"], t["attention_mask"])
    assert logits[0].item() == pytest.approx(lp[0, 2].item() + 1.5, abs=1e-5)
    assert logits[1].item() == pytest.approx(lp[1, 0].item() + 1.5, abs=1e-5)
    with pytest.raises(ValueError, match="does not occur"):
        verifier_tensors(tok, [("Zapur comes from Perth .", "Oslo")])


def test_belief_verifier_scores_how_far_a_claim_falls_below_the_lms_best_guess():
    # Three predicted positions over a 3-token vocabulary; the first predicts a prompt token (not judged).
    probs = torch.tensor([[[0.5, 0.3, 0.2], [0.1, 0.6, 0.3], [0.7, 0.2, 0.1]]])
    logp = probs.log()
    token_logp = torch.tensor([[0.3, 0.6, 0.1]]).log()  # the claim's tokens: the LM's best guess, then a poor one
    mask = torch.tensor([[0.0, 1.0, 1.0]])
    gap_sum, gap_min = ClaimBeliefVerifier.features(logp, token_logp, mask)[0].tolist()
    assert gap_sum == pytest.approx(0.0 + (torch.tensor(0.1).log() - torch.tensor(0.7).log()).item(), abs=1e-6)
    assert gap_min == pytest.approx(gap_sum, abs=1e-6)  # the only gap is the last token's


def test_belief_verifier_reads_the_claim_after_the_prompt_and_keeps_its_lm_frozen(world, tiny_model_dir):
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    prompt, claim = "Write a biography for Zapur .", "Zapur comes from Perth"
    t = claim_tensors(tok, [prompt, prompt], [claim, "Zapur enjoys chess ."], max_length=64)
    n_prompt, n_claim = len(tok(prompt)["input_ids"]), len(tok(" " + claim + " .")["input_ids"])
    assert t["value_mask"][0].tolist() == [0] * n_prompt + [1] * n_claim  # the longer row: no padding
    assert tok.decode(t["input_ids"][0][:n_prompt + n_claim]) == f"{prompt} {claim} ."
    assert t["value_mask"][1].sum().item() == len(tok(" Zapur enjoys chess .")["input_ids"])  # one final period
    # Too long: the prompt loses its start, the claim stays whole.
    short = claim_tensors(tok, [prompt], [claim], max_length=n_claim + 2)
    assert short["input_ids"].shape[1] == n_claim + 2 and short["value_mask"][0].tolist() == [0, 0] + [1] * n_claim
    verifier = ClaimBeliefVerifier.from_pretrained(tiny_model_dir)
    assert not any(p.requires_grad for p in verifier.lm.parameters())
    assert [n for n, p in verifier.named_parameters() if p.requires_grad] == ["head.weight", "head.bias"]
    assert verifier(**t).tolist() == [0.0, 0.0]  # an untrained head: P(true) 0.5


def test_two_stage_reward_is_the_expected_reward_of_verified_facts(tmp_path, tiny_model_dir):
    import json
    import shutil


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
    # Judged as the authors' RM judges: each fact true or false, at P(true) 0.5.
    (rm_path / "rm.json").write_text(json.dumps({"kind": "two-stage", "true_fact": 2.0, "false_fact": -3.0,
                                                 "decision": "threshold"}))
    decided = load_reward_model(rm_path)
    assert decided(["q"], [response], ["Zapur"])[0] == sum(2.0 if pi > 0.5 else -3.0 for pi in p)
    assert [decided.fact_reward(x) for x in (0.5, 0.51)] == [-3.0, 2.0]
