"""Segment credit for malformed responses (`ppo.reward.malformed_credit: segment`): which prefix is credited,
where its tokens end, and the advantages it gives, against numbers worked out by hand."""

import math

import pytest
import torch

from halluray.config import ConfigError, build_config
from halluray.factuality.base import ends_a_sentence, well_formed_prefix
from halluray.factuality.reward_functions import prefix_scores
from halluray.models.tokenizer import train_word_tokenizer
from halluray.ppo import grpo, rloo
from halluray.ppo.experience import Estimator, make_experience
from halluray.ppo.segments import PrefixCredit, prefix_credit, prefix_token_count
from halluray.world.build import vocabulary_texts
from halluray.world.checker import well_formed
from tests.test_ppo_math import GROUP_MASK, NAN, PENALTY, SCORES, _kl_returns, close

# ---------------------------------------------------------------- the prefix

BIO = "Duzais was born in 1972 . Duzais is employed by Pinecrest ."


def test_a_bio_that_goes_wrong_keeps_the_sentences_before_its_first_bad_one():
    assert well_formed_prefix(well_formed, "Duzais", BIO) is None  # well formed: credited as a whole
    assert well_formed_prefix(well_formed, "Duzais", BIO + " as a geologist by profession . 1973 .") == BIO
    # The bad sentence decides, not the last one: the good sentence after it is not credited either.
    assert well_formed_prefix(well_formed, "Duzais", "Duzais was born in 1972 . mentioned in the report . "
                              "Duzais is employed by Pinecrest .") == "Duzais was born in 1972 ."
    assert well_formed_prefix(well_formed, "Baipal", "born in 1979 . Baipal 's hometown is Lyon .") == ""
    assert well_formed_prefix(well_formed, "Duzais", BIO + " Duz") == BIO  # cut off at the token limit


def test_without_a_grammar_the_prefix_ends_at_the_last_finished_sentence():
    assert well_formed_prefix(ends_a_sentence, "x", "It rains. It is cold! Then it") == "It rains. It is cold!"
    assert well_formed_prefix(ends_a_sentence, "x", "Half a sent") == ""


def test_only_malformed_responses_with_a_prefix_are_scored_and_only_their_prefixes():
    asked = []

    def score(prompts, responses, topics):
        asked.extend(responses)
        return [10.0 * len(r.split(" . ")) for r in responses]

    responses = [BIO, BIO + " as a geologist .", "born in 1979 ."]
    assert prefix_scores(score, well_formed, ["p"] * 3, responses, ["Duzais"] * 3) == [None, (BIO, 20.0), None]
    assert asked == [BIO]


# ---------------------------------------------------------------- its tokens

def test_the_prefix_ends_on_the_token_that_finishes_its_last_sentence(world):
    tokenizer = train_word_tokenizer(list(vocabulary_texts(world)))
    name = world.people[0].name
    prefix = f"{name} attended the meeting ."
    ids = tokenizer(f"{prefix} mentioned in the report .")["input_ids"]
    n = prefix_token_count(tokenizer, ids, prefix)
    assert tokenizer.decode(ids[:n]).split() == prefix.split()
    assert n == len(tokenizer(prefix)["input_ids"])
    # In a left-padded rollout row (prompt 2 tokens, one pad): per-token index of that token = first + n - 1.
    pad = tokenizer.pad_token_id
    input_ids = torch.tensor([[pad, 5, 6] + ids, [5, 5, 6] + ids])
    action_mask = torch.tensor([[0, 0] + [1] * len(ids), [0, 0] + [1] * len(ids)])
    credit = prefix_credit(tokenizer, input_ids, action_mask, [(prefix, 4.0), None])
    assert credit.ends.tolist() == [2 + n - 1, -1] and credit.scores[0].item() == 4.0
    with pytest.raises(ValueError, match="not spelt"):
        prefix_token_count(tokenizer, ids, "Somebody else .")


# ---------------------------------------------------------------- the advantages

# Row 0 of SCORES (score 1, its group's other score 3) is malformed with a prefix of one token scored 4; row 2
# (score 2, group [2, 2], first response token at index 1) with a prefix of one token scored 5.
CREDIT = PrefixCredit(torch.tensor([0, -1, 1, -1]), torch.tensor([4.0, NAN, 5.0, NAN]))


def test_rloo_credits_the_prefix_with_its_own_score_against_the_same_baseline():
    advantages, returns = rloo(SCORES, PENALTY, GROUP_MASK, group_size=2, credit=CREDIT)
    plain = _kl_returns([1 - 3.0, 3 - 1.0, 0.0, 0.0])
    # Row 0: the prefix token 4 - 3 = +1 instead of -2, the rest unchanged; row 1's baseline is row 0's whole
    # score (1), not its prefix's. Row 2: its prefix token 5 - 2 = +3 instead of 0.
    plain[0][0] = -0.6 + 1.0
    plain[2][1] = -0.3 + 3.0
    close(advantages, plain)
    close(returns, advantages.tolist())


def test_grpo_scales_the_prefix_credit_by_the_groups_std():
    credit = PrefixCredit(torch.tensor([0, -1, -1, -1]), torch.tensor([4.0, NAN, NAN, NAN]))
    advantages, _ = grpo(SCORES, PENALTY, GROUP_MASK, group_size=2, credit=credit)
    h = 1 / math.sqrt(2)
    expected = _kl_returns([-h, h, 0.0, 0.0])
    expected[0][0] = -0.6 + (4 - 2) / math.sqrt(2)  # (prefix - group mean) / group std
    close(advantages, expected)


def test_prefix_scores_are_clipped_as_the_scores_are():
    mask = GROUP_MASK
    experience, stats = make_experience(
        torch.zeros(4, 4, dtype=torch.long), torch.ones(4, 4), mask, torch.zeros(4, 3), torch.zeros(4, 3), None,
        torch.tensor([-15.0, 3.0, 2.0, 2.0]), kl_coef=0.0, kl_estimator="k1",
        estimator=Estimator("rloo", group_size=2), reward_clip=4.0, credit=CREDIT)
    # Scores clipped to [-4, 4]: row 0 -4 against 3 -> -7; its prefix (4) 4 - 3 = +1 on its first token.
    assert experience.advantages[0].tolist() == pytest.approx([1.0, -7.0, -7.0])
    assert experience.advantages[1].tolist() == pytest.approx([7.0, 7.0, 0.0])
    # The stored rewards: the prefix end carries 4 - (-4), the last token -4.
    assert experience.rewards[0].tolist() == pytest.approx([8.0, 0.0, -4.0])
    assert stats["prefix_credited"] == 0.5


def test_segment_credit_needs_the_malformed_penalty():
    with pytest.raises(ConfigError, match="malformed_credit 'segment'"):
        build_config({}, ["ppo.reward.malformed_credit=segment"])
    cfg = build_config({}, ["ppo.reward.malformed_credit=segment", "ppo.reward.malformed_penalty=-15"])
    assert cfg.ppo.reward.malformed_credit == "segment"
