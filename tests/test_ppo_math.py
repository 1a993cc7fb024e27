"""halluray.ppo against numbers worked out by hand on tiny tensors.

Every padded position holds garbage (large numbers, NaN) so that a test fails if padding
leaks into a result.
"""

import math

import numpy as np
import pytest
import torch

from halluray.ppo import (
    AdaptiveKLController,
    Experience,
    FixedKLController,
    RunningMeanStd,
    clip_rewards,
    entropy_from_logits,
    explained_variance,
    gae,
    grpo,
    kl_k1,
    kl_k3,
    kl_penalty,
    masked_mean,
    masked_var,
    masked_whiten,
    minibatches,
    normalize_rewards,
    per_prompt_groups,
    policy_loss,
    reinforce_pp,
    rloo,
    score_on_last_token,
    shape_scores,
    value_loss,
    whiten_advantages,
)

NAN = float("nan")


def close(actual, expected):
    actual = torch.as_tensor(actual)
    torch.testing.assert_close(actual, torch.tensor(expected, dtype=actual.dtype))


# ---------------------------------------------------------------- masked statistics

def test_masked_mean_ignores_padding_even_nan():
    x = torch.tensor([[1.0, 2.0, NAN], [3.0, 100.0, 7.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    close(masked_mean(x, mask), 2.0)              # (1 + 2 + 3) / 3
    close(masked_mean(x, mask, dim=1), [1.5, 3.0])  # (1 + 2) / 2, 3 / 1
    # An all-padding row gives 0, not NaN.
    close(masked_mean(x, torch.tensor([[1, 0, 0], [0, 0, 0]]), dim=1), [1.0, 0.0])


def test_masked_var():
    x = torch.tensor([[1.0, 2.0, 3.0, 99.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    # mean 2; squared deviations 1 + 0 + 1 = 2
    close(masked_var(x, mask), 1.0)                      # 2 / (3 - 1)
    close(masked_var(x, mask, unbiased=False), 2.0 / 3)  # 2 / 3
    with pytest.raises(ValueError):
        masked_var(x, torch.tensor([[1, 0, 0, 0]]))  # one entry has no unbiased variance


def test_masked_whiten_over_masked_entries_only():
    x = torch.tensor([[1.0, 2.0, 3.0, 50.0], [5.0, -40.0, NAN, 8.0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]], dtype=torch.bool)
    # Masked entries 1, 2, 3, 5: mean 11/4 = 2.75; deviations -1.75, -0.75, 0.25, 2.25;
    # squares 3.0625 + 0.5625 + 0.0625 + 5.0625 = 8.75; unbiased var 8.75/3; std 1.7078251
    out = masked_whiten(x, mask)
    close(out[0, 0], -1.0246951)  # -1.75 / 1.7078251
    close(masked_mean(out, mask), 0.0)
    close(masked_var(out, mask), 1.0)
    # Padding is returned untouched.
    assert out[0, 3] == 50.0 and out[1, 1] == -40.0 and out[1, 3] == 8.0 and out[1, 2].isnan()

    kept = masked_whiten(x, mask, shift_mean=False)
    close(kept[1, 0], 4.0674651)  # 2.25 / 1.7078251 + 2.75
    close(masked_mean(kept, mask), 2.75)


# ---------------------------------------------------------------- GAE

def test_gae_three_token_episode_by_hand():
    rewards = torch.tensor([[0.0, 0.0, 1.0, 9.0]])
    values = torch.tensor([[0.5, 0.6, 0.7, 9.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    advantages, returns = gae(rewards, values, mask, gamma=1.0, lam=0.95)
    # t=2 (last token, nothing to bootstrap): delta = 1 + 0 - 0.7 = 0.3;             A = 0.3
    # t=1: delta = 0 + 0.7 - 0.6 = 0.1;  A = 0.1 + 0.95 * 0.3   = 0.385
    # t=0: delta = 0 + 0.6 - 0.5 = 0.1;  A = 0.1 + 0.95 * 0.385 = 0.46575
    # returns = A + V = 0.96575, 0.985, 1.0; the padded position gets 0.
    close(advantages, [[0.46575, 0.385, 0.3, 0.0]])
    close(returns, [[0.96575, 0.985, 1.0, 0.0]])


def test_gae_padding_and_prompt_do_not_change_results():
    # Row 0: the hand-computed episode above, padded with garbage.
    # Row 1: one prompt position (mask 0) before a 2-token response, then padding.
    rewards = torch.tensor([[0.0, 0.0, 1.0, NAN, 7.0], [5.0, 1.0, 2.0, -3.0, NAN]])
    values = torch.tensor([[0.5, 0.6, 0.7, 8.0, NAN], [4.0, 0.3, 0.9, 6.0, 6.0]])
    mask = torch.tensor([[1, 1, 1, 0, 0], [0, 1, 1, 0, 0]])
    advantages, returns = gae(rewards, values, mask, gamma=0.5, lam=1.0)
    # With lam = 1 the return is the discounted Monte-Carlo return, whatever the values:
    # row 0: R2 = 1, R1 = 0 + 0.5 * 1 = 0.5, R0 = 0 + 0.5 * 0.5 = 0.25
    # row 1: R2 = 2, R1 = 1 + 0.5 * 2 = 2
    close(returns, [[0.25, 0.5, 1.0, 0.0, 0.0], [0.0, 2.0, 2.0, 0.0, 0.0]])
    # A = R - V: 0.25 - 0.5, 0.5 - 0.6, 1 - 0.7; 2 - 0.3, 2 - 0.9
    close(advantages, [[-0.25, -0.1, 0.3, 0.0, 0.0], [0.0, 1.7, 1.1, 0.0, 0.0]])

    # The same rows without any padding give the same numbers.
    unpadded_adv, _ = gae(rewards[:1, :3], values[:1, :3], torch.ones(1, 3), gamma=0.5, lam=1.0)
    close(unpadded_adv, advantages[:1, :3].tolist())


def test_whiten_advantages_zeroes_padding():
    advantages = torch.tensor([[1.0, 3.0, 0.0]])
    mask = torch.tensor([[1, 1, 0]])
    # mean 2, unbiased var ((-1)^2 + 1^2) / 1 = 2, std sqrt(2)
    close(whiten_advantages(advantages, mask), [[-1 / math.sqrt(2), 1 / math.sqrt(2), 0.0]])


# ---------------------------------------------------------------- critic-free estimators
#
# One hand-made batch for all of them: 2 prompts x 2 responses (rows 0-1 answer prompt 0, rows 2-3 prompt 1),
# gamma 1. `PENALTY` is the KL part of each token's reward (-kl_coef * KL); NaN marks padding, which must not
# leak. Row 2 has one prompt position (mask 0) before its response; row 3 a one-token response.
SCORES = torch.tensor([1.0, 3.0, 2.0, 2.0])
PENALTY = torch.tensor([[-0.1, -0.2, -0.3], [-0.1, 0.0, NAN], [NAN, -0.2, -0.1], [-0.4, NAN, NAN]])
GROUP_MASK = torch.tensor([[1, 1, 1], [1, 1, 0], [0, 1, 1], [1, 0, 0]])


def _kl_returns(last_token_scores):
    """Returns-to-go (gamma 1) of PENALTY with each row's score added on its last response token, by hand:
    row 0 [-0.1, -0.2, -0.3 + s0], row 1 [-0.1, 0 + s1], row 2 [-, -0.2, -0.1 + s2], row 3 [-0.4 + s3]."""
    s0, s1, s2, s3 = last_token_scores
    return [[-0.6 + s0, -0.5 + s0, -0.3 + s0], [-0.1 + s1, s1, 0.0], [0.0, -0.3 + s2, -0.1 + s2], [-0.4 + s3, 0, 0]]


def test_grpo_normalises_each_prompts_scores_by_its_group():
    advantages, returns = grpo(SCORES, PENALTY, GROUP_MASK, group_size=2)
    # group 0: mean 2, unbiased std sqrt(2) -> -1/sqrt(2), +1/sqrt(2); group 1: equal scores -> 0 (std 0 + eps)
    h = 1 / math.sqrt(2)
    close(advantages, _kl_returns([-h, h, 0.0, 0.0]))
    close(returns, advantages.tolist())


def test_dr_grpo_only_subtracts_the_group_mean():
    advantages, _ = grpo(SCORES, PENALTY, GROUP_MASK, group_size=2, scale_by_std=False)
    close(advantages, _kl_returns([-1.0, 1.0, 0.0, 0.0]))  # group 0: 1 - 2, 3 - 2


def test_rloo_subtracts_the_mean_of_the_other_responses():
    advantages, _ = rloo(SCORES, PENALTY, GROUP_MASK, group_size=2)
    close(advantages, _kl_returns([1 - 3.0, 3 - 1.0, 0.0, 0.0]))


def test_reinforce_pp_whitens_the_returns_over_the_batch():
    advantages, returns = reinforce_pp(SCORES, PENALTY, GROUP_MASK)
    # The raw scores: returns 0.4 0.5 0.7 | 2.9 3.0 | 1.7 1.9 | 1.6 (8 tokens, sum 12.7, mean 1.5875);
    # squared deviations sum to 7.20875, unbiased variance 7.20875 / 7.
    close(returns, _kl_returns([1.0, 3.0, 2.0, 2.0]))
    std = math.sqrt(7.20875 / 7)
    close(advantages, [[(0.4 - 1.5875) / std, (0.5 - 1.5875) / std, (0.7 - 1.5875) / std],
                       [(2.9 - 1.5875) / std, (3.0 - 1.5875) / std, 0.0],
                       [0.0, (1.7 - 1.5875) / std, (1.9 - 1.5875) / std],
                       [(1.6 - 1.5875) / std, 0.0, 0.0]])


def test_group_estimators_refuse_a_batch_that_is_not_whole_groups():
    with pytest.raises(ValueError, match="groups of 3"):
        grpo(SCORES, PENALTY, GROUP_MASK, group_size=3)
    with pytest.raises(ValueError, match="groups of 1"):
        rloo(SCORES, PENALTY, GROUP_MASK, group_size=1)


def test_per_prompt_groups_repeat_each_prompt_in_a_row():
    assert per_prompt_groups(["a", "b"], 3) == ["a", "a", "a", "b", "b", "b"]
    assert per_prompt_groups(["a", "b"], 1) == ["a", "b"]


# ---------------------------------------------------------------- KL

def test_kl_estimators():
    logp = torch.tensor([-1.0, -2.0])
    ref_logp = torch.tensor([-1.5, -1.0])
    close(kl_k1(logp, ref_logp), [0.5, -1.0])  # -1 - (-1.5), -2 - (-1)
    # log r = ref - logp = -0.5, 1:  exp(-0.5) + 0.5 - 1 = 0.1065307;  e - 1 - 1 = 0.7182818
    close(kl_k3(logp, ref_logp), [0.1065307, 0.7182818])


@pytest.mark.parametrize("estimator", ["k1", "k3"])
def test_kl_penalty_with_the_score_on_the_last_response_token(estimator):
    scores = torch.tensor([2.0, -1.0])
    logp = torch.tensor([[-1.0, -2.0, -3.0], [-1.0, -1.0, 0.0]])
    ref_logp = torch.tensor([[-1.5, -1.0, -3.0], [-2.0, -1.0, 5.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    penalty, kl = kl_penalty(logp, ref_logp, mask, kl_coef=0.1, estimator=estimator)
    rewards = score_on_last_token(penalty, scores, mask)
    if estimator == "k1":
        # kl row 0: 0.5, -1, 0;  row 1: 1, 0, (pad -> 0)
        close(kl, [[0.5, -1.0, 0.0], [1.0, 0.0, 0.0]])
        # -0.1 * kl, + score on the last response token (index 2 in row 0, index 1 in row 1)
        close(rewards, [[-0.05, 0.1, 0.0 + 2.0], [-0.1, 0.0 - 1.0, 0.0]])
    else:
        # log r row 0: -0.5, 1, 0 -> 0.1065307, 0.7182818, 0;  row 1: -1, 0 -> e^-1 + 1 - 1 = 0.3678794, 0
        close(kl, [[0.1065307, 0.7182818, 0.0], [0.3678794, 0.0, 0.0]])
        close(rewards, [[-0.01065307, -0.07182818, 2.0], [-0.03678794, -1.0, 0.0]])


def test_kl_penalty_rejects_unknown_estimator_and_empty_rows():
    t = torch.zeros(1, 2)
    with pytest.raises(ValueError):
        kl_penalty(t, t, torch.ones(1, 2), 0.1, estimator="k2")
    with pytest.raises(ValueError):
        kl_penalty(t, t, torch.zeros(1, 2), 0.1)


def test_adaptive_kl_controller_one_update():
    ctl = AdaptiveKLController(init_kl_coef=0.2, target=6.0, horizon=10000)
    ctl.update(current_kl=9.0, n_steps=256)
    # error = clip(9/6 - 1 = 0.5, -0.2, 0.2) = 0.2; mult = 1 + 0.2 * 256 / 10000 = 1.00512
    assert ctl.value == pytest.approx(0.2 * 1.00512)  # 0.201024
    ctl.update(current_kl=5.7, n_steps=1000)
    # error = 5.7/6 - 1 = -0.05 (unclipped); mult = 1 - 0.05 * 1000 / 10000 = 0.995
    assert ctl.value == pytest.approx(0.201024 * 0.995)  # 0.20001888
    ctl.update(current_kl=torch.tensor(0.0), n_steps=500)
    # error = clip(-1, -0.2, 0.2) = -0.2; mult = 1 - 0.2 * 500 / 10000 = 0.99
    assert ctl.value == pytest.approx(0.20001888 * 0.99)


def test_kl_controllers_state_dict_round_trip():
    fixed = FixedKLController(0.5)
    fixed.update(100.0, 1000)
    assert fixed.value == 0.5

    ctl = AdaptiveKLController(0.2, target=6.0, horizon=10000)
    ctl.update(9.0, 256)
    resumed = AdaptiveKLController(1.0, target=1.0, horizon=1.0)
    resumed.load_state_dict(ctl.state_dict())
    assert resumed.state_dict() == ctl.state_dict()
    ctl.update(4.0, 64)
    resumed.update(4.0, 64)
    assert resumed.value == ctl.value != 0.2

    fixed_resumed = FixedKLController(0.0)
    fixed_resumed.load_state_dict(fixed.state_dict())
    assert fixed_resumed.value == 0.5


# ---------------------------------------------------------------- losses

def test_policy_loss_clipping_by_hand():
    # old_logp = 0, so ratio = exp(logp). Row 1, column 2 is padding with a huge ratio.
    ratios = torch.tensor([[1.5, 0.5, 1.0], [1.05, 0.7, 1.0]])
    logp = torch.log(ratios)
    logp[1, 2] = 5.0
    logp.requires_grad_(True)
    old_logp = torch.zeros(2, 3)
    advantages = torch.tensor([[1.0, 1.0, 0.0], [-1.0, -1.0, 100.0]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 0]])
    loss, stats = policy_loss(logp, old_logp, advantages, mask, cliprange=0.2)
    # ratio 1.5,  A=+1: pg1 = -1.5,  pg2 = -1.2 -> max -1.2  (clipped)
    # ratio 0.5,  A=+1: pg1 = -0.5,  pg2 = -0.8 -> max -0.5  (not clipped: pessimistic side)
    # ratio 1.05, A=-1: pg1 =  1.05, pg2 =  1.05 -> max 1.05 (inside the range)
    # ratio 0.7,  A=-1: pg1 =  0.7,  pg2 =  0.8 -> max 0.8   (clipped)
    # loss = (-1.2 - 0.5 + 1.05 + 0.8) / 4 = 0.15 / 4 = 0.0375; clipfrac = 2 / 4
    close(loss.detach(), 0.0375)
    assert stats["clipfrac"] == pytest.approx(0.5)
    # approx_kl = mean(0.5 * (log r)^2): log r = 0.4054651, -0.6931472, 0.0487902, -0.3566749
    # -> 0.0822010 + 0.2402265 + 0.0011902 + 0.0636085 = 0.3872262; / 4 = 0.0968066
    assert stats["approx_kl"] == pytest.approx(0.0968066, rel=1e-5)

    loss.backward()
    # Clipped tokens get no gradient; others d(-A r)/d logp / 4 = -A r / 4:
    # -1 * 0.5 / 4 = -0.125;  +1 * 1.05 / 4 = 0.2625;  padding 0.
    close(logp.grad, [[0.0, -0.125, 0.0], [0.2625, 0.0, 0.0]])


def test_value_loss_clipping_by_hand():
    old_values = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    values = torch.tensor([[0.5, 0.1, 9.0], [-0.5, 0.5, 0.0]])
    returns = torch.tensor([[1.0, 1.0, -9.0], [-1.0, 0.3, 0.0]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 0]])
    loss, stats = value_loss(values, old_values, returns, mask, cliprange_value=0.2)
    # v=0.5,  R=1:   (0.5-1)^2 = 0.25,  clipped 0.2:  (0.2-1)^2 = 0.64  -> 0.64 (clipped)
    # v=0.1,  R=1:   (0.1-1)^2 = 0.81,  clipped 0.1:  same          -> 0.81
    # v=-0.5, R=-1:  (-0.5+1)^2 = 0.25, clipped -0.2: (0.8)^2 = 0.64 -> 0.64 (clipped)
    # v=0.5,  R=0.3: (0.2)^2 = 0.04,    clipped 0.2:  (0.1)^2 = 0.01 -> 0.04
    # loss = 0.5 * (0.64 + 0.81 + 0.64 + 0.04) / 4 = 0.5 * 0.5325 = 0.26625; vf_clipfrac = 2/4
    close(loss, 0.26625)
    assert stats["vf_clipfrac"] == pytest.approx(0.5)


def test_entropy_from_logits():
    logits = torch.log(torch.tensor([
        [[0.25, 0.25, 0.25, 0.25], [0.5, 0.25, 0.125, 0.125], [1.0, 1e-9, 1e-9, 1e-9]],
    ]))
    logits[0, 2] = torch.tensor([0.0, float("-inf"), 3.0, -2.0])  # padding, -inf included
    mask = torch.tensor([[1, 1, 0]])
    # uniform over 4: ln 4 = 2 ln 2;  (1/2, 1/4, 1/8, 1/8): 0.5 ln2 + 0.25 ln4 + 2 * 0.125 ln8 = 1.75 ln2
    # mean = (2 + 1.75) / 2 * ln 2 = 1.875 * 0.6931472 = 1.2996510
    close(entropy_from_logits(logits, mask), 1.2996510)
    # A -inf logit (probability 0) contributes 0 rather than NaN.
    close(entropy_from_logits(logits, torch.tensor([[0, 0, 1]])).isfinite(), True)


def test_explained_variance():
    values = torch.tensor([[1.0, 2.0, 3.0, 50.0]])
    returns = torch.tensor([[1.0, 2.0, 4.0, -50.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    # Var(R) of 1, 2, 4: mean 7/3, squared deviations 16/9 + 1/9 + 25/9 = 42/9, / 3 = 14/9
    # Var(R - V) of 0, 0, 1: mean 1/3, 1/9 + 1/9 + 4/9 = 6/9, / 3 = 2/9
    # EV = 1 - (2/9) / (14/9) = 6/7
    assert explained_variance(values, returns, mask) == pytest.approx(6 / 7)
    assert math.isnan(explained_variance(values, torch.ones(1, 4), mask))


# ---------------------------------------------------------------- reward shaping

def test_clip_rewards():
    close(clip_rewards(torch.tensor([-5.0, 0.5, 7.0]), 3.0), [-3.0, 0.5, 3.0])


def test_running_mean_std_by_hand_and_normalize():
    rms = RunningMeanStd()
    rms.update(torch.tensor([1.0, 2.0, 3.0]))
    rms.update(torch.tensor([5.0]))
    # 1, 2, 3, 5: mean 2.75; squared deviations sum 8.75; population var 8.75 / 4 = 2.1875
    assert (rms.mean, rms.var, rms.count) == (pytest.approx(2.75), pytest.approx(2.1875), 4)
    # (5 - 2.75) / sqrt(2.1875) = 2.25 / 1.4790199 = 1.5212777;  (1 - 2.75) / 1.4790199 = -1.1832160
    close(normalize_rewards(torch.tensor([5.0, 1.0]), rms), [1.5212777, -1.1832160])


def test_running_mean_std_matches_numpy_over_concatenated_batches():
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, size=n) for n in (7, 1, 30, 4)]
    rms = RunningMeanStd()
    rms.update(torch.tensor([]))  # an empty batch changes nothing
    for b in batches:
        rms.update(torch.from_numpy(b))
    everything = np.concatenate(batches)
    assert rms.count == 42
    assert rms.mean == pytest.approx(everything.mean(), rel=1e-12)
    assert rms.var == pytest.approx(everything.var(), rel=1e-12)

    resumed = RunningMeanStd()
    resumed.load_state_dict(rms.state_dict())
    extra = torch.tensor([10.0, -4.0])
    rms.update(extra)
    resumed.update(extra)
    assert resumed.state_dict() == rms.state_dict()
    assert resumed.mean == pytest.approx(np.concatenate([everything, [10.0, -4.0]]).mean(), rel=1e-12)


# ---------------------------------------------------------------- batches

def make_experience(batch: int, seq: int, actions: int, offset: float = 0.0) -> Experience:
    def ramp(cols, dtype=torch.float32):
        return (torch.arange(batch * cols, dtype=torch.float32).reshape(batch, cols) + offset).to(dtype)
    return Experience(
        input_ids=ramp(seq, torch.long), attention_mask=torch.ones(batch, seq, dtype=torch.long),
        action_mask=torch.ones(batch, actions, dtype=torch.bool), old_logprobs=ramp(actions),
        ref_logprobs=ramp(actions) + 0.5, values=ramp(actions) * 2, rewards=ramp(actions) - 1,
        advantages=ramp(actions) * 3, returns=ramp(actions) * 4,
    )


def test_minibatches_cover_every_index_once_and_are_seeded():
    chunks = minibatches(10, 4, torch.Generator().manual_seed(0))
    assert [len(c) for c in chunks] == [4, 4, 2]  # the last chunk is the remainder
    assert torch.cat(chunks).sort().values.tolist() == list(range(10))
    assert all(c.dtype == torch.long for c in chunks)

    again = minibatches(10, 4, torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(chunks, again))
    other = minibatches(10, 4, torch.Generator().manual_seed(1))
    assert not torch.equal(torch.cat(chunks), torch.cat(other))
    assert torch.cat(chunks).tolist() != list(range(10))  # actually shuffled

    with pytest.raises(ValueError):
        minibatches(10, 0, torch.Generator())


def test_experience_len_and_index_select():
    exp = make_experience(batch=3, seq=4, actions=2)
    assert len(exp) == 3
    picked = exp.index_select(torch.tensor([2, 0]))
    assert len(picked) == 2
    assert picked.input_ids.tolist() == [[8, 9, 10, 11], [0, 1, 2, 3]]
    assert picked.returns.tolist() == [[16.0, 20.0], [0.0, 4.0]]  # rows 2 and 0 of 4 * [[0,1],[2,3],[4,5]]
    with pytest.raises(ValueError):
        Experience(**{**vars(exp), "values": torch.zeros(2, 2)})


def test_shaped_scores_are_clipped_and_normalised_then_join_the_kl_penalty():
    logp = torch.zeros(2, 2)
    ref = torch.tensor([[-1.0, 0.0], [0.0, -2.0]])  # k1 = logp - ref = [[1, 0], [0, 2]]
    mask = torch.ones(2, 2)
    running = RunningMeanStd()
    scores = shape_scores(torch.tensor([3.0, -3.0]), clip=2.0, running=running)
    penalty, kl = kl_penalty(logp, ref, mask, kl_coef=0.5)
    # clipped to [2, -2]; running mean 0, std 2 -> normalised [1, -1]; on the last token, beside -0.5 * KL
    close(scores, [1.0, -1.0])
    close(kl, [[1.0, 0.0], [0.0, 2.0]])
    close(score_on_last_token(penalty, scores, mask), [[-0.5, 1.0], [0.0, -1.0 - 1.0]])
    assert (running.mean, running.var, running.count) == (0.0, 4.0, 2)
    # Without clip or normalisation the raw score is kept.
    close(shape_scores(torch.tensor([3.0, -3.0])), [3.0, -3.0])
