"""Actor groups that ended cleanly are parked and handed to the next group of the same role in this process
(actors/warm_pool.py), released of their models; other groups get fresh actors; parked groups give way to a
group that needs their CPUs."""

from __future__ import annotations

import pytest

from halluray.config import build_config
from halluray.models.generation import SamplingParams

ray = pytest.importorskip("ray")

from actors.group import ActorFailure, ActorGroup  # noqa: E402
from actors.roles import Role  # noqa: E402
from actors.warm_pool import WARM_POOL  # noqa: E402

pytestmark = pytest.mark.ray
PARAMS = SamplingParams(temperature=1.0, top_p=1.0, max_new_tokens=6, stop=())
PROMPTS = ["Tell me a bio of Zapur .", "Tell me a bio of Mirel ."]


def _ids(group: ActorGroup) -> list[str]:
    return [a._actor_id.hex() for a in group.actors]


def _rollout_group(overrides: list[str] = ()) -> ActorGroup:
    return ActorGroup.from_config(Role.ROLLOUT, build_config({}, ["actors.rollout.num_actors=2", *overrides]))


@pytest.fixture
def empty_pool(ray_cluster):
    WARM_POOL.make_room([ray_cluster.cluster_resources()])  # kills every parked group
    yield
    WARM_POOL.make_room([ray_cluster.cluster_resources()])  # kills every parked group


def test_the_next_group_of_the_same_role_gets_the_released_actors_and_samples_the_same(empty_pool, tiny_model_dir):
    first = _rollout_group()
    try:
        first.run("init_model", str(tiny_model_dir))
        before = first.run_sharded("generate", PROMPTS, PARAMS, 7)
    finally:
        first.shutdown()
    assert len(WARM_POOL) == 1

    second = _rollout_group()
    try:
        assert _ids(second) == _ids(first) and len(WARM_POOL) == 0
        with pytest.raises(ActorFailure, match=r"rollout rank [01] is not initialised \(restarted, or released\)"):
            second.run_sharded("generate", PROMPTS, PARAMS, 7)  # release dropped the model
        second.run("init_model", str(tiny_model_dir))
        after = second.run_sharded("generate", PROMPTS, PARAMS, 7)
    finally:
        second.shutdown(graceful=False)
    for a, b in zip(before, after):
        assert a["input_ids"].tolist() == b["input_ids"].tolist()


def test_other_ranks_or_reuse_turned_off_get_fresh_actors(empty_pool):
    parked = _rollout_group()
    parked.shutdown()
    one_rank = ActorGroup.from_config(Role.ROLLOUT, build_config({}, ["actors.rollout.num_actors=1"]))
    not_reused = _rollout_group(["actors.reuse_actors=false"])
    try:
        assert not set(_ids(one_rank)) & set(_ids(parked)) and not set(_ids(not_reused)) & set(_ids(parked))
    finally:
        not_reused.shutdown()
        one_rank.shutdown()
    assert len(WARM_POOL) == 2  # the first group and the one-rank group; the group with reuse off was killed


def test_a_group_that_lost_an_actor_is_killed_not_parked(empty_pool):
    group = _rollout_group()
    ray.kill(group.actors[1], no_restart=False)  # Ray restarts it (max_restarts): one restart used up
    group.wait_alive()
    group.shutdown()
    assert len(WARM_POOL) == 0


def test_parked_groups_give_way_to_a_group_that_needs_their_cpus(empty_pool):
    cpus = int(ray.cluster_resources()["CPU"])
    parked = _rollout_group([f"actors.rollout.num_cpus={cpus // 2}"])
    parked.shutdown()
    big = ActorGroup.from_config(Role.REFERENCE, build_config({}, [f"actors.reference.num_cpus={cpus}",
                                                                   "actors.call_timeout_s=60"]))
    try:
        assert len(WARM_POOL) == 0
        with pytest.raises(ray.exceptions.RayActorError):
            ray.get(parked.actors[0].address.remote(), timeout=30)
    finally:
        big.shutdown(graceful=False)
