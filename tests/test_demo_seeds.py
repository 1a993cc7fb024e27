"""`halluray demo --seeds`: the per-seed run directories, and the summary a user reads over them."""

import json

import pytest

from halluray.campaigns import demo_seeds
from halluray.campaigns.shared.seeds import seed_config
from halluray.cli import parse_seeds
from halluray.config import ConfigError, build_config
from halluray.io import write_jsonl
from halluray.layout import RunLayout


def _responses(per_person: dict[str, tuple[int, int]]) -> list[dict]:
    return [{"topic": t, "n_true": nt, "n_false": nf, "reward": 2.0 * nt - 3.0 * nf}
            for t, (nt, nf) in per_person.items()]


def _fake_seed_run(cfg, seed: int, standard_false: int) -> None:
    """What one seed's demo leaves behind that the summary reads: eval/<method>.jsonl and results.json."""
    layout = RunLayout(seed_config(cfg, seed))
    people = ("Ana", "Bo")
    per_method = {"sft": dict.fromkeys(people, (2, 2)), "rl_standard_rm": dict.fromkeys(people, (2, standard_false)),
                  "rl_conservative_rm": dict.fromkeys(people, (2, 0))}
    layout.eval_dir.mkdir(parents=True)
    for method, counts in per_method.items():
        write_jsonl(layout.eval_dir / f"{method}.jsonl", _responses(counts))
    methods = tuple(per_method)
    layout.results.write_text(json.dumps({
        "rm_overestimation_by_unfamiliarity": {"standard": [0.5, 3.0, 9.0], "conservative": [-1.0, -0.5, 1.0]},
        "no_fact_rate": dict.fromkeys(methods, 0.25),
        "fraction_true_per_response": {m: t / (t + f) for m, c in per_method.items() for t, f in [c["Ana"]]},
        "true_facts_by_unfamiliarity": dict.fromkeys(methods, [2.0, 2.0, 2.0]),
        # seed 1's conservative policy writes a malformed bio for a tenth of its unfamiliar third
        "malformed_rate_by_unfamiliarity": {m: [0.0, None, 0.1 if seed == 1 else 0.0] for m in methods},
        # greedy (the authors' decoding) garbles less: 3% on seed 1's familiar third
        "greedy": {"malformed_rate_by_unfamiliarity": {m: [0.03 if seed == 1 else 0.0, None, 0.0] for m in methods}}}))


def test_seed_runs_get_their_own_directory_and_seed(tmp_path):
    cfg = build_config({}, [f"run.output_dir={tmp_path}", "run.name=demo-seeds"])
    one = seed_config(cfg, 7)
    assert one.seed == 7 and RunLayout(one).run_dir == tmp_path / "demo-seeds" / "seed-7"


def test_summary_gives_each_seed_the_mean_an_interval_and_which_orderings_hold(tmp_path, capsys):
    cfg = build_config({}, [f"run.output_dir={tmp_path}", "run.name=demo-seeds"])
    _fake_seed_run(cfg, 0, standard_false=1)  # fraction true: sft 0.5, standard 2/3, conservative 1.0
    _fake_seed_run(cfg, 1, standard_false=2)  # standard 0.5 = sft: the reward ordering fails on this seed
    summary = demo_seeds.summarize(cfg, [0, 1])
    per = summary["per_seed"]
    assert per["0"]["fraction_true_facts/rl_standard_rm"] == pytest.approx(2 / 3)
    assert per["1"]["gap/fraction_true_conservative_minus_standard"] == pytest.approx(0.5)
    assert per["0"]["reward_per_response/rl_conservative_rm"] == 4.0 and per["0"]["reward_per_response/sft"] == -2.0
    assert summary["mean"]["gap/fraction_true_conservative_minus_standard"] == pytest.approx((1 / 3 + 1 / 2) / 2)
    lo, hi = summary["interval_95"]["gap/fraction_true_conservative_minus_standard"]
    assert 1 / 3 - 1e-9 <= lo <= hi <= 0.5 + 1e-9  # every resample pools the two seeds' people
    assert per["0"]["fraction_true_per_response/rl_standard_rm"] == pytest.approx(2 / 3)
    assert per["1"]["malformed_rate_worst_tercile/rl_conservative_rm"] == 0.1  # an empty tercile is skipped
    assert per["1"]["malformed_rate_worst_tercile_greedy/rl_conservative_rm"] == 0.03
    # Every ordering holds on both seeds but the malformed rate, over 5% on seed 1's unfamiliar third.
    assert list(summary["checks"].values()) == [True, True, True, True, False, True]
    out = tmp_path / "demo-seeds"
    assert json.loads((out / "summary.json").read_text())["seeds"] == [0, 1]
    assert "FAILS: RL+conservative malformed rate <= 5%" in (out / "summary.md").read_text()
    assert (out / "seeds.png").stat().st_size > 1000
    assert "| seed 0 | seed 1 | mean | 95% interval |" in capsys.readouterr().out


@pytest.mark.parametrize("text, message", [("0,x", "comma-separated integers"), ("1,1", "repeated")])
def test_bad_seed_lists_name_the_problem(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_seeds(text)
