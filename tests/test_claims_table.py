"""PPO validation's per-claim table on hand-written responses, from a real reward actor (outside Ray) and the
world's checker: the claims a two-stage RM paid for, each with the checker's label and the RM's P(true); for the
checker's own reward, the checker's claims. The table end to end (a PPO run, metrics.jsonl, the offline W&B run)
is in tests/test_ppo_driver.py."""

import json
import shutil

import pytest
import torch

from actors.reward import RewardActor, RewardSpec
from halluray.config import ExperimentConfig, FactCheckerConfig
from halluray.eval.claims_table import claim_rows, rm_claims
from halluray.factuality.checking import build_checker
from halluray.factuality.fact_checkers import load_fact_checker
from halluray.factuality.reward_functions import RewardScheme
from halluray.world.entities import Person, World

FACTS = {"birth_year": "1964", "birth_city": "Perth", "occupation": "chemist", "employer": "Tidewater",
         "hobby": "pottery", "nationality": "Nigerian"}
SCHEME = RewardScheme(malformed=-30.0)
RESPONSES = ["Zapur comes from Perth . Zapur enjoys chess .",  # one true, one false claim
             "Zapur comes from Perth . Zapur enjoys",  # cut off: malformed
             "gibberish here ."]  # no claim at all
RECORDS = [{"topic": "Zapur", "prompt": "Write a biography for Zapur ."}] * len(RESPONSES)


@pytest.fixture
def world_file(tmp_path):
    path = tmp_path / "world.json"
    path.write_text(World(people=(Person("Zapur", FACTS, 24, "val"),), seed=0).to_json())
    return path


def explained(spec: RewardSpec) -> list[dict]:
    """`RewardActor.explain` of RESPONSES, the actor built in this process (threads left as they are); the
    checker is the world's, as a run builds it."""
    actor = RewardActor("reward", 0, 1, threads=torch.get_num_threads())
    actor.init_reward(spec)
    return actor.explain([r["prompt"] for r in RECORDS], RESPONSES, [r["topic"] for r in RECORDS])


def by_response(rows: list[dict]) -> list[list[dict]]:
    return [[row for row in rows if row["response"] == response] for response in RESPONSES]


def test_a_two_stage_rm_shows_each_claim_it_paid_for_with_the_checkers_label(tmp_path, tiny_model_dir, world_file):
    rm = tmp_path / "rm"
    shutil.copytree(tiny_model_dir, rm)
    (rm / "rm.json").write_text(json.dumps({"kind": "two-stage", "true_fact": 2.0, "false_fact": -3.0}))
    spec = RewardSpec("model", str(rm), SCHEME, world_path=str(world_file))
    checker = build_checker(ExperimentConfig(), world_path=world_file)
    both, cut, gibberish = by_response(claim_rows(3, RECORDS, RESPONSES, explained(spec), checker, SCHEME,
                                                  {"Zapur": 1.5}))

    assert [(r["claim"], r["label"]) for r in both] == [("Zapur comes from Perth", "true"),
                                                       ("Zapur enjoys chess", "false")]
    assert all(0.0 <= r["p_true"] <= 1.0 for r in both + cut)
    # The rows are what the RM paid: its reward is the expected reward of exactly these claims.
    assert both[0]["rm_reward"] == pytest.approx(sum(2 * r["p_true"] - 3 * (1 - r["p_true"]) for r in both))
    assert {k: both[0][k] for k in ("step", "gt_reward", "malformed", "checker_true", "checker_false",
                                    "checker_not_checkable", "unfamiliarity", "prompt")} == {
        "step": 3, "gt_reward": 2 - 3, "malformed": False, "checker_true": 1, "checker_false": 1,
        "checker_not_checkable": 0, "unfamiliarity": 1.5, "prompt": "Write a biography for Zapur ."}
    # A malformed response: the penalty on both sides, its claims still listed.
    assert [(r["claim"], r["label"], r["rm_reward"], r["gt_reward"], r["malformed"]) for r in cut] == [
        ("Zapur comes from Perth", "true", -30.0, -30.0, True)]
    # A response the RM reads no claim in still has its row.
    assert [(r["claim"], r["label"], r["p_true"], r["checker_not_checkable"]) for r in gibberish] == [
        (None, None, None, 1)]


def test_the_checkers_reward_shows_the_checkers_claims_without_p_true(world_file):
    spec = RewardSpec("fact_checker", str(world_file), SCHEME)
    checker = build_checker(ExperimentConfig(), world_path=world_file)
    rows = claim_rows(0, RECORDS, RESPONSES, explained(spec), checker, SCHEME, {})
    both, cut, gibberish = by_response(rows)
    assert [(r["claim"], r["label"], r["p_true"]) for r in both] == [("Zapur comes from Perth", "true", None),
                                                                    ("Zapur enjoys chess", "false", None)]
    assert [(r["claim"], r["label"]) for r in gibberish] == [("gibberish here", "not checkable")]
    assert all(r["rm_reward"] == r["gt_reward"] and r["unfamiliarity"] is None for r in rows)
    assert cut[0]["rm_reward"] == -30.0


def test_real_text_claims_are_labelled_by_the_entity_table_checker_alone():
    """The RM's claims of a reply about Peru (a text RM writes sentences), each read alone by the entity-table
    checker as a run builds it: the label a user sees beside each P(true)."""
    checker = load_fact_checker(FactCheckerConfig(kind="entity_table", options={"path": "builtin:countries"}))
    claims = [("Its capital is Lima.", 0.9), ("The capital of Peru is Quito.", 0.8), ("Peru has a rich history.", 0.5)]
    assert rm_claims(checker, "Peru", claims) == [("Its capital is Lima.", "true", 0.9),
                                                  ("The capital of Peru is Quito.", "false", 0.8),
                                                  ("Peru has a rich history.", "not checkable", 0.5)]
