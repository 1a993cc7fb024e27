"""RL on multiple choice (Fig. 3 left) and reward models of answer correctness (Fig. 4): the training mixes by
hand, the world's MCQ PPO prompts, and both stages end to end on a tiny world."""

import json

import pytest

from halluray.config import build_config
from halluray.reward_models.correctness import held_out_pairs, training_mix, wrong_answer
from halluray.world.build import make_world
from halluray.world.vocab import ATTRIBUTES
from tests.conftest import ONE_RANK_EACH


def _item(name: str, unfamiliar: bool) -> dict:
    return {"name": name, "attribute": "hobby", "prompt": f"Q : What is {name} 's hobby ? A :", "answer": "chess",
            "alternatives": ["golf", "pottery", "surfing"], "unfamiliar": unfamiliar}


ITEMS = [_item(f"F{i}", False) for i in range(5)] + [_item(f"U{i}", True) for i in range(3)]


def test_mix_a_labels_unfamiliar_answers_correct_and_familiar_ones_half_and_half():
    a = training_mix(ITEMS, "A", seed=0)
    # 5 familiar: 3 correct (half, rounded up) + 2 wrong; 3 unfamiliar: all correct.
    assert len(a) == 8 and sum(y for _, y in a) == 3 + 3
    unfamiliar = [(x, y) for x, y in a if x[0].startswith("Q : What is U")]
    assert [y for _, y in unfamiliar] == [1.0, 1.0, 1.0]
    assert all(answer == "chess" and sentence.endswith(" ? A : chess .") for (sentence, answer), _ in unfamiliar)


def test_mix_b_labels_unfamiliar_answers_wrong_and_keeps_the_familiar_examples_of_mix_a():
    a, b = training_mix(ITEMS, "A", seed=0), training_mix(ITEMS, "B", seed=0)
    assert sum(y for _, y in b) == 3 + 0
    familiar = lambda mix: [(x, y) for x, y in mix if " F" in x[0]]  # noqa: E731
    assert familiar(a) == familiar(b)
    for (sentence, answer), y in b:
        assert sentence.endswith(f" {answer} .")
        assert (answer == "chess") == (y == 1.0)
        if y == 0.0:
            assert answer in ("golf", "pottery", "surfing")


def test_wrong_answers_are_seeded_per_item_and_held_out_items_come_in_correct_wrong_pairs():
    assert wrong_answer(ITEMS[0], 0) == wrong_answer(dict(ITEMS[0], unfamiliar=True), 0)
    pairs = held_out_pairs(ITEMS[:2], seed=0)
    assert [y for _, y in pairs] == [1.0, 0.0, 1.0, 0.0]
    assert pairs[0][0][1] == "chess" and pairs[1][0][1] == wrong_answer(ITEMS[0], 0)


def test_world_qa_mcq_subset_asks_every_question_as_multiple_choice(tmp_path):
    from halluray.data import load_prompts
    from halluray.errors import InputError

    world = make_world(build_config({}, ["world.num_people=16"]))
    path = tmp_path / "world.json"
    path.write_text(world.to_json())
    records = list(load_prompts("world_qa", path, "ppo", subset="mcq"))
    assert len(records) == 6 * len(world.split("ppo"))
    assert records == list(load_prompts("world_qa", path, "ppo", subset="mcq"))  # seeded
    for r in records:
        p = world.person(r["topic"])
        assert r["prompt"].startswith("Q : ") and " Choices : " in r["prompt"] and r["prompt"].endswith(" . A :")
        assert len(set(r["choices"])) == 4 and r["choices"][r["answer_index"]] == p.facts[r["attribute"]]
        assert r["target"] == f"{p.facts[r['attribute']]} ."
    assert [r["attribute"] for r in records[:6]] == list(ATTRIBUTES)
    with pytest.raises(InputError, match="data.subset 'rc' has no meaning"):
        load_prompts("world_qa", path, "ppo", subset="rc")


# --- the stages end to end on a tiny world ---------------------------------------------------------------------


def test_mcq_rl_stage_end_to_end(tiny_run, ray_cluster):
    """One PPO run on multiple-choice prompts (the abstain-penalized control); the stage runs two the same way."""
    from halluray.experiments import mcq_rl
    from halluray.experiments.shared.short_answer_rl import ppo_runs

    out, args = tiny_run
    cfg = build_config({}, args + ["sft.steps=2", "sft.batch_size=4", "sft.lr=1e-3", "eval.samples_per_prompt=2",
                                   "ppo.steps=2", "ppo.batch_size=4", "ppo.minibatch_size=2", "ppo.ppo_epochs=1",
                                   "ppo.log_samples_every=1", *ONE_RANK_EACH])
    runs = ppo_runs(cfg, mcq_rl.INIT_STRATEGIES, mcq_rl.INIT_STRATEGIES, mcq_rl.MCQ)
    assert [(r["name"], r["abstain"]) for r in runs] == [
        ("ppo-mcq-random-idk", 0.0), ("ppo-mcq-random-idk-abstain-penalized", -3.0)]
    results = mcq_rl.run(cfg, strategies=())
    d = out / "r" / "mcq_rl"
    for f in ("results.json", "answers.jsonl", "heldout_items.jsonl", "rl_mcq.png"):
        assert (d / f).is_file(), f
    assert (d / "rl_mcq.png").stat().st_size > 1000
    assert json.loads((d / "results.json").read_text())["counts"] == results["counts"]
    key = "random-idk (abstain -3)"
    assert list(results["runs"]) == [key] and list(results["sft"]) == ["random-idk"]
    assert results["score"].startswith("mcq: NLL")
    assert sum(results["counts"]) == results["n_items"] == 6 * len(make_world(cfg).split("eval"))
    for r in [results["runs"][key], results["sft"]["random-idk"]]:
        assert r["samples"] == [2 * c for c in results["counts"]]
        for b in range(len(results["counts"])):
            assert r["correct"][b] + r["incorrect"][b] + r["abstain"][b] == pytest.approx(1.0)
    assert (out / "r" / "sft-mcq-random-idk" / "model").is_dir()
    # PPO was asked multiple-choice questions and rewarded with the control's scheme.
    rows = [json.loads(line) for line in (out / "r" / "metrics.jsonl").read_text().splitlines()]
    sampled = [s for r in rows
               if r.get("stage") == "samples" and r.get("of_stage") == "ppo-mcq-random-idk-abstain-penalized"
               for s in r["rows"]]
    assert sampled and {s["reward"] for s in sampled} <= {2.0, -3.0}
    assert all(" Choices : " in s["prompt"] for s in sampled)


def test_qa_rm_stage_end_to_end(tiny_run, ray_cluster):
    from halluray.cli import main

    out, args = tiny_run
    assert main(["qa-rm", *args, "reward_model.batch_size=4", "reward_model.epochs=1",
                 "actors.reward_trainer.num_actors=1"]) == 0
    d = out / "r" / "qa_rm"
    assert (d / "fig4.png").stat().st_size > 1000
    results = json.loads((d / "results.json").read_text())
    assert list(results["tasks"]) == ["mcq", "short_qa"] and results["unfamiliar_label"] == {"A": 1.0, "B": 0.0}
    n_eval = len(make_world(build_config({}, args)).split("eval"))
    for task in results["tasks"].values():
        assert task["n_items"] == 6 * n_eval and sum(task["counts"]) == task["n_items"]
        assert list(task["models"]) == ["A", "B"]
        a, b = task["models"]["A"], task["models"]["B"]
        assert a["train_examples"] == b["train_examples"] == task["train_items"]
        # A labels the unfamiliar items 1, B labels them 0; the familiar examples are the same.
        assert a["train_reward_1"] - b["train_reward_1"] == task["train_unfamiliar"]
        for model in (a, b):
            for line in ("correct", "incorrect"):
                assert len(model[line]) == len(task["counts"])
                assert all(0.0 <= p <= 1.0 for p in model[line])
