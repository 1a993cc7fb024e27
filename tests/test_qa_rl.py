"""RL on short QA and the MCQ experiment: the QA reward by hand, the world_qa loader, MCQ SFT records, and the
qa-rl / mcq-experiment stages end to end on a tiny world."""

import json

import pytest

from halluray.config import build_config
from halluray.factuality.fact_checkers import WorldFactChecker
from halluray.factuality.reward_functions import QACheckerReward, RewardScheme
from halluray.world.build import make_world
from halluray.world.templates import qa_prompt
from halluray.world.vocab import ATTRIBUTES
from tests.conftest import ONE_RANK_EACH


@pytest.fixture(scope="module")
def small_world(tmp_path_factory):
    world = make_world(build_config({}, ["world.num_people=16"]))
    path = tmp_path_factory.mktemp("w") / "world.json"
    path.write_text(world.to_json())
    return world, path


def _wrong(world, name, attribute):
    from halluray.world.vocab import ATTRIBUTE_VALUES

    return next(v for v in ATTRIBUTE_VALUES[attribute] if v != world.person(name).facts[attribute])


def _records(names):
    return [{"prompt": qa_prompt(n, a), "topic": n, "attribute": a} for n in names for a in ATTRIBUTES]


def test_qa_reward_by_hand(small_world):
    world, path = small_world
    p = world.people[0]
    checker = WorldFactChecker(world)
    reward = QACheckerReward(checker, _records([p.name, "Nobodyhere"]))  # the paper's scheme: +2 / -3 / 0
    prompts = [qa_prompt(p.name, a) for a in ("birth_city", "birth_city", "hobby", "occupation", "employer",
                                              "nationality", "birth_year")]
    responses = [f"{p.facts['birth_city']} .",                  # correct
                 f"{_wrong(world, p.name, 'birth_city')} .",    # incorrect
                 "I do not know .",                            # abstain
                 f"{p.facts['occupation']} . I do not know",   # scored up to its first " ."
                 "",                                           # empty: incorrect
                 "I do not know",                              # abstain cut by max_new_tokens
                 f"{p.facts['birth_year']}"]                   # correct without its full stop
    assert reward(prompts, responses, [p.name] * 7) == [2.0, -3.0, 0.0, 2.0, -3.0, 0.0, 2.0]
    control = QACheckerReward(checker, _records([p.name]), RewardScheme(abstain=-3.0))
    assert control(prompts, responses, [p.name] * 7) == [2.0, -3.0, -3.0, 2.0, -3.0, -3.0, 2.0]
    # Topics are not used: the prompt's record names the person.
    assert reward(prompts[:1], responses[:1], ["someone else"]) == [2.0]
    assert reward([qa_prompt("Nobodyhere", "hobby")], ["chess ."], ["x"]) == [-3.0]
    with pytest.raises(ValueError, match="not one of the run's PPO prompts"):
        reward(["Write a biography for X ."], ["chess ."], ["X"])


def test_reward_actor_builds_the_qa_checker(small_world):
    from actors.reward import RewardActor, RewardSpec

    world, path = small_world
    p = world.people[1]
    actor = RewardActor.__new__(RewardActor)  # the plain class behind the Ray actor: no Ray needed
    actor.init_reward(RewardSpec("qa_checker", str(path), RewardScheme(abstain=-3.0),
                                 records=tuple(_records([p.name]))))
    prompt = qa_prompt(p.name, "hobby")
    assert actor.score([prompt, prompt], [f"{p.facts['hobby']} .", "I do not know ."], [p.name] * 2) == [2.0, -3.0]


def test_reward_spec_defaults_to_the_run_world_and_carries_the_abstain_reward(small_world, tmp_path):
    from halluray.trainers.ppo_run import reward_spec

    world, _ = small_world
    (tmp_path / "demo" / "world").mkdir(parents=True)
    (tmp_path / "demo" / "world" / "world.json").write_text(world.to_json())
    cfg = build_config({}, [f"run.output_dir={tmp_path}", "ppo.reward.kind=qa_checker", "ppo.reward.abstain=-3",
                            "data.dataset=world_qa"])
    spec = reward_spec(cfg)
    assert spec.kind == "qa_checker" and spec.target == str(tmp_path / "demo" / "world" / "world.json")
    assert (spec.scheme.correct, spec.scheme.incorrect, spec.scheme.abstain) == (2.0, -3.0, -3.0)
    # Every PPO prompt's record goes to the reward actors: what each prompt asks.
    assert len(spec.records) == len(world.split("ppo")) * len(ATTRIBUTES)


def test_world_qa_loader_records(small_world, tmp_path):
    from halluray.data import load_prompts, prompts_for
    from halluray.errors import InputError

    world, path = small_world
    (tmp_path / "r" / "world").mkdir(parents=True)
    (tmp_path / "r" / "world" / "world.json").write_text(path.read_text())
    eval_people = world.split("eval")
    records = list(load_prompts("world_qa", tmp_path / "r", "eval"))
    assert len(records) == 6 * len(eval_people)
    first = eval_people[0]
    assert records[:6] == [{"topic": first.name, "prompt": qa_prompt(first.name, a), "target": f"{first.facts[a]} .",
                            "attribute": a, "frequency": first.frequency} for a in ATTRIBUTES]
    assert records[1]["prompt"] == f"Q : What is {first.name} 's hometown ? A :"
    cfg = build_config({}, [f"run.output_dir={tmp_path}", "run.name=r", "data.dataset=world_qa"])
    ppo = list(prompts_for(cfg, "ppo"))
    assert {r["topic"] for r in ppo} == {p.name for p in world.split("ppo")}
    assert len(list(load_prompts("world_qa", path))) == 6 * len(world.people)  # world.json itself, all splits
    with pytest.raises(InputError, match="world.json not found"):
        load_prompts("world_qa", tmp_path / "missing", "eval")
    with pytest.raises(InputError, match="unknown world split"):
        load_prompts("world_qa", path, "train")


def test_mcq_sft_records(tmp_path):
    from halluray.pipeline.sft import sft_records
    from halluray.world.build import write_world

    cfg = build_config({}, [f"run.output_dir={tmp_path}", "world.num_people=16", "sft.task=mcq"])
    world = make_world(cfg)
    write_world(cfg, world, ["x"], cfg.run_dir / "world")
    records = sft_records(cfg, "sft")
    assert len(records) == len(world.split("sft"))
    for r in records:
        p = world.person(r["topic"])
        assert r["prompt"].startswith("Q : ") and " Choices : " in r["prompt"] and r["prompt"].endswith(" . A :")
        assert r["target"] == f"{p.facts[r['attribute']]} ."


def test_mcq_heldout_item_choices_are_seeded_and_hold_the_answer():
    from halluray.world.corpus import mcq_item

    a = mcq_item("Zorbel", "hobby", "chess", 0)
    assert a == mcq_item("Zorbel", "hobby", "chess", 0)
    assert len(set(a["choices"])) == 4 and a["choices"][a["answer_index"]] == "chess"


# --- the stages end to end on a tiny world ---------------------------------------------------------------------


def test_qa_rl_stage_end_to_end(tiny_run, ray_cluster):
    """One PPO run (the abstain-penalized control, ~35 s); the full stage runs four the same way."""
    from halluray.config import build_config as build
    from halluray.experiments import qa_rl
    from halluray.experiments.shared import short_answer_rl
    from halluray.factuality.relabel import STRATEGIES

    out, args = tiny_run
    cfg = build({}, args + ["sft.steps=2", "sft.batch_size=4", "sft.lr=1e-3", "eval.samples_per_prompt=2",
                            "ppo.steps=2", "ppo.batch_size=4", "ppo.minibatch_size=2", "ppo.ppo_epochs=1",
                            "ppo.log_samples_every=1", *ONE_RANK_EACH])
    runs = short_answer_rl.ppo_runs(cfg, STRATEGIES, short_answer_rl.CONTROL_STRATEGIES, qa_rl.SHORT_QA)
    assert [(r["name"], r["abstain"]) for r in runs] == [
        ("ppo-qa-standard", 0.0), ("ppo-qa-unfamiliar-idk", 0.0), ("ppo-qa-random-idk", 0.0),
        ("ppo-qa-unfamiliar-idk-abstain-penalized", -3.0)]
    results = qa_rl.run(cfg, strategies=(), control=("unfamiliar-idk",))
    d = out / "r" / "qa_rl"
    for f in ("results.json", "answers.jsonl", "heldout_items.jsonl", "rl_short_qa.png"):
        assert (d / f).is_file(), f
    assert (d / "rl_short_qa.png").stat().st_size > 1000
    assert json.loads((d / "results.json").read_text())["counts"] == results["counts"]
    key = "unfamiliar-idk (abstain -3)"
    assert list(results["runs"]) == [key] and list(results["sft"]) == ["unfamiliar-idk"]
    assert results["runs"][key]["abstain_reward"] == -3.0 and results["runs"][key]["init"] == "unfamiliar-idk"
    assert sum(results["counts"]) == results["n_items"] == 6 * len(make_world(cfg).split("eval"))
    for r in [results["runs"][key], results["sft"]["unfamiliar-idk"]]:
        assert r["samples"] == [2 * c for c in results["counts"]]
        for b in range(len(results["counts"])):
            assert r["correct"][b] + r["incorrect"][b] + r["abstain"][b] == pytest.approx(1.0)
    assert (out / "r" / "ppo-qa-unfamiliar-idk-abstain-penalized" / "model" / "model.safetensors").is_file()
    assert (out / "r" / "sft-short_qa-unfamiliar-idk" / "model").is_dir()
    assert results["sft"]["unfamiliar-idk"]["reused"] is False
    assert "reward_first" in results["runs"][key]
    # PPO's rewards came from the QA checker with the control's scheme: every sampled reward is +2 or -3.
    rows = [json.loads(line) for line in (out / "r" / "metrics.jsonl").read_text().splitlines()]
    name = "ppo-qa-unfamiliar-idk-abstain-penalized"
    assert len([r for r in rows if r.get("stage") == name and "reward_mean" in r]) == 2
    sampled = [s for r in rows if r.get("stage") == "samples" and r.get("of_stage") == name for s in r["rows"]]
    assert sampled and {s["reward"] for s in sampled} <= {2.0, -3.0}
    assert all(s["prompt"].startswith("Q : ") and s["prompt"].endswith(" A :") for s in sampled)


def test_mcq_experiment_stage_end_to_end(tiny_run, ray_cluster):
    from halluray.cli import main

    out, args = tiny_run
    assert main(["mcq-experiment", *args, "sft.steps=2", "sft.batch_size=4", "sft.lr=1e-3",
                 "eval.samples_per_prompt=2"]) == 0
    d = out / "r" / "mcq_experiment"
    for f in ("results.json", "answers.jsonl", "heldout_items.jsonl", "mcq_sft.png"):
        assert (d / f).is_file(), f
    results = json.loads((d / "results.json").read_text())
    assert results["n_items"] % 6 == 0 and sum(results["counts"]) == results["n_items"]
    assert results["unfamiliar-idk"]["relabeled"] == results["random-idk"]["relabeled"]
    assert results["standard"]["relabeled"] == 0
    for strategy in ("standard", "unfamiliar-idk", "random-idk"):
        r = results[strategy]
        assert r["sampled"]["samples"] == [2 * c for c in results["counts"]]
        for b, n in enumerate(results["counts"]):
            assert n > 0
            assert sum(r["sampled"][x][b] for x in ("correct", "incorrect", "abstain")) == pytest.approx(1.0)
            assert sum(r["probability"][x][b] for x in ("correct", "incorrect", "abstain")) == pytest.approx(1.0)
        assert (out / "r" / f"sft-mcq-{strategy}" / "model" / "model.safetensors").is_file()
