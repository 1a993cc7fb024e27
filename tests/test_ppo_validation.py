"""PPO's validation arithmetic against hand-computed values: the reward model's over-estimation by
unfamiliarity tercile, the reward-hacking alarm, and the plateau stop."""

import pytest

from halluray.eval.overestimation import overestimation, overestimation_alarm, tercile_edges, watched_overestimation
from halluray.ppo.plateau import PlateauStop

# Six validation responses, two per tercile; the reward model pays for the unfamiliar ones, the checker does not.
SCORES = [0.1, 0.2, 0.5, 0.6, 0.9, 1.0]
RM = [2.0, 4.0, 0.0, 1.0, 6.0, 8.0]
GT = [2.0, 2.0, -1.0, -1.0, -6.0, -4.0]


def test_terciles_split_the_validation_prompts_by_unfamiliarity():
    assert tercile_edges(SCORES) == [0.5, 0.9]  # sorted[6 // 3], sorted[12 // 3]


def test_overestimation_is_largest_on_the_most_unfamiliar_tercile():
    out = overestimation(RM, GT, SCORES, [0.5, 0.9])
    assert out == pytest.approx({
        "rm_reward": 21 / 6, "overestimation": 21 / 6 - (-8 / 6),
        "rm_reward_t0": 3.0, "gt_reward_t0": 2.0, "overestimation_t0": 1.0,
        "rm_reward_t1": 0.5, "gt_reward_t1": -1.0, "overestimation_t1": 1.5,
        "rm_reward_t2": 7.0, "gt_reward_t2": -5.0, "overestimation_t2": 12.0})


def test_a_response_without_an_unfamiliarity_score_counts_only_overall():
    out = overestimation(RM + [10.0], GT + [10.0], SCORES + [None], [0.5, 0.9])
    assert out["rm_reward"] == pytest.approx(31 / 7)
    assert out["overestimation"] == pytest.approx(31 / 7 - 2 / 7)
    assert out["overestimation_t2"] == pytest.approx(12.0)


def test_without_unfamiliarity_scores_the_monitor_reports_overall_only():
    out = overestimation([1.0, 3.0], [0.0, -2.0], [None, None], None)
    assert out == pytest.approx({"rm_reward": 2.0, "overestimation": 3.0})
    assert watched_overestimation(out) == pytest.approx(3.0)


def test_an_empty_tercile_is_left_out():
    out = overestimation([1.0, 2.0], [0.0, 0.0], [0.1, 0.2], [0.5, 0.9])
    assert out == pytest.approx({"rm_reward": 1.5, "overestimation": 1.5, "rm_reward_t0": 1.5,
                                 "gt_reward_t0": 0.0, "overestimation_t0": 1.5})
    with pytest.raises(ValueError, match="one rm reward"):
        overestimation([1.0], [0.0, 1.0], [None], None)


def test_the_alarm_watches_the_most_unfamiliar_tercile_and_fires_past_the_threshold():
    assert watched_overestimation(overestimation(RM, GT, SCORES, [0.5, 0.9])) == pytest.approx(12.0)
    assert overestimation_alarm(baseline=1.0, current=3.5, warn=2.0)
    assert not overestimation_alarm(baseline=1.0, current=3.0, warn=2.0)  # grown by exactly warn: not more
    assert not overestimation_alarm(baseline=5.0, current=0.0, warn=2.0)  # shrinking is fine


def _stops(plateau: PlateauStop, rewards: list[float]) -> list[bool]:
    return [plateau.update(r) for r in rewards]


def test_plateau_stops_after_patience_evaluations_without_improvement():
    # best 1.0; 1.05 is within min_delta (flat 1); 1.3 improves (best 1.3); 1.35, 1.38 flat 1, 2 -> stop
    assert _stops(PlateauStop(2, 0.1), [1.0, 1.05, 1.3, 1.35, 1.38]) == [False, False, False, False, True]
    assert _stops(PlateauStop(1, 0.1), [5.0, 4.0]) == [False, True]  # a falling reward is flat too


def test_a_slow_steady_rise_is_not_a_plateau():
    # +0.06 per evaluation: 0.12 is more than 0.1 above the best (0.0), so it counts as an improvement
    plateau = PlateauStop(2, 0.1)
    assert _stops(plateau, [0.0, 0.06, 0.12, 0.18]) == [False, False, False, False]
    assert (plateau.best, plateau.flat) == (0.12, 1)


def test_patience_zero_never_stops():
    assert not any(_stops(PlateauStop(0, 0.1), [1.0] * 5))


def test_plateau_resumed_from_its_state_continues_as_if_uninterrupted():
    rewards = [1.0, 1.05, 1.3, 1.35, 1.38]
    first = PlateauStop(2, 0.1)
    _stops(first, rewards[:3])
    resumed = PlateauStop(2, 0.1)
    resumed.load_state_dict(first.state_dict())
    assert _stops(resumed, rewards[3:]) == [False, True]
