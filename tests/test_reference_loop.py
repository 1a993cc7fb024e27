"""One distributed PPO step (PPODriver: Ray actors, DeepSpeed ZeRO-2, 1 rank per role) and one step of the
single-process reference loop (halluray/ppo/reference_loop.py), from the same model and the same prompts,
give the same rollout, the same metrics and the same loss on every minibatch update."""

from __future__ import annotations

from functools import partial

import pytest
import torch

from halluray.config import build_config
from halluray.data import prompts_for
from halluray.data.stream import PromptStream
from halluray.factuality.fact_checkers import WorldFactChecker
from halluray.factuality.reward_functions import FactCheckerReward, RewardScheme, prefix_scores
from halluray.layout import RunLayout
from halluray.models.build import load_model
from halluray.models.heads import ValueHeadModel
from halluray.pipeline import world as world_stage
from halluray.ppo.reference_loop import ReferencePPO
from halluray.world.entities import World
from tests.conftest import TINY

ray = pytest.importorskip("ray")

from halluray.trainers.ppo_driver import PPODriver  # noqa: E402
from halluray.trainers.ppo_run import policy_init, reward_spec  # noqa: E402

pytestmark = pytest.mark.ray

# A base model trained long enough (3 s) to state facts, so that this batch's rewards vary (+2 per true fact, -3
# per false one; -6 is clipped by ppo.reward_clip).
TRAINED = ["model.pretrain.steps=400", "model.pretrain.lr=1e-2"]
ONE_EACH = [f"actors.{role}.num_actors=1" for role in ("policy", "critic", "reference", "reward", "rollout")]
SMALL_PPO = [
    "ppo.steps=2", "ppo.batch_size=4", "ppo.minibatch_size=2", "ppo.ppo_epochs=2", "ppo.max_new_tokens=16",
    "ppo.cliprange=0.2", "ppo.kl_coef=0.05", "ppo.entropy_coef=0.01", "ppo.reward_clip=4",
    # Learning rates large enough that every update visibly moves the next minibatch's losses, changing from
    # update to update (a warmup, then a cosine over the 8 updates of ppo.steps=2); clipping below the gradients'
    # norms; two gradient-accumulation micro-batches per minibatch.
    "ppo.policy_optimizer.lr=3e-3", "ppo.policy_optimizer.warmup_steps=2", "ppo.policy_optimizer.weight_decay=0.01",
    "ppo.critic_optimizer.lr=3e-3", "ppo.critic_optimizer.head_lr=1e-2",
    "deepspeed.zero_stage=2", "deepspeed.gradient_accumulation_steps=2", "deepspeed.gradient_clipping=0.5",
    "deepspeed.precision=fp32",
]
TOLERANCE = dict(rel=1e-4, abs=1e-6, nan_ok=True)
NOISY = {"vf_clipfrac": 0.1}
"""Statistics that float rounding alone can move by a token, and how far: `value_loss` counts a token as clipped
when the clipped squared error exceeds the unclipped one, and for an unclipped token the two differ only by the
rounding of old + (new - old). One token of a 12-token micro-batch, averaged over 2 micro-batches, is 0.04."""


def _numbers(metrics: dict) -> dict:
    """Everything but wall-clock measurements."""
    return {k: v for k, v in metrics.items() if not (k.startswith("time/") or k == "tokens_per_s")}


@pytest.fixture
def one_thread():
    """One torch thread here, as in every actor (threads_per_actor=1), so reductions run in the same order."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


ESTIMATORS = {
    "gae": [],
    # Critic-free: the same 4 responses per step, as 2 prompts x 2 samples.
    "grpo": ["ppo.advantage_estimator=grpo", "ppo.batch_size=2", "ppo.samples_per_prompt=2"],
    "reinforce_pp": ["ppo.advantage_estimator=reinforce_pp", "ppo.batch_size=2", "ppo.samples_per_prompt=2"],
    # RLOO with segment credit (8 responses, 32 tokens): the tiny model's bios go wrong part-way, and their
    # well-formed prefixes are credited on their own.
    "rloo_segment_credit": ["ppo.advantage_estimator=rloo", "ppo.batch_size=2", "ppo.samples_per_prompt=4",
                            "ppo.reward.malformed_penalty=-15", "ppo.reward.malformed_credit=segment",
                            "ppo.max_new_tokens=32"],
}


@pytest.mark.parametrize("estimator", list(ESTIMATORS))
def test_one_driver_step_and_one_reference_step_give_the_same_losses(ray_cluster, tmp_path, one_thread, estimator):
    run = [f"run.output_dir={tmp_path}", "run.name=tiny", "logging.wandb_mode=disabled"]
    cfg = build_config({}, TINY + TRAINED + ONE_EACH + SMALL_PPO + ESTIMATORS[estimator] + run)
    world_stage.run(cfg)
    path, prompts = policy_init(cfg), list(prompts_for(cfg, "ppo"))

    # The distributed step; the driver keeps the per-minibatch statistics its actors returned.
    driver = PPODriver(cfg, path, reward_spec(cfg, prompts), prompts)
    try:
        placed = {g.role for g in driver.groups}
        metrics, samples = driver.step()
        caught = {"policy/": driver.policy_stats, "critic/": driver.critic_stats}
    finally:
        driver.shutdown()
    assert ("critic" in placed) == (estimator == "gae"), "a critic-free estimator places no critic group"

    # The reference step from the same initial models (the critic's new value head drawn as the critic rank
    # draws it: torch.manual_seed(cfg.seed), then build) and the same prompt batch.
    policy, tokenizer = load_model(path)
    torch.manual_seed(cfg.seed)
    critic = None if cfg.ppo.critic_free else ValueHeadModel.from_pretrained(path)
    reference, _ = load_model(path)
    checker = WorldFactChecker(World.load(RunLayout(cfg).world_json))
    reward_fn = FactCheckerReward(checker, RewardScheme.from_config(cfg.ppo.reward))
    loop = ReferencePPO(cfg, policy=policy, reference=reference, critic=critic, tokenizer=tokenizer,
                        reward_fn=reward_fn, prefix_fn=partial(prefix_scores, reward_fn, checker.well_formed))
    records = PromptStream(prompts, cfg.seed).next_batch(cfg.ppo.batch_size)
    ref_metrics, ref_samples = loop.step(records)

    assert ref_samples == samples, "the two rollouts differ: nothing after them can match"
    if cfg.ppo.reward.malformed_credit == "segment":
        # Every one of these 8 is malformed (-15): the advantages are those of the credited prefixes alone.
        assert metrics["prefix_credited"] > 0, "no response had a well-formed prefix to credit"
    else:
        assert metrics["reward_std"] > 0, "a batch with one reward for all would not test the rewards' order"
    # 2 epochs x 2 minibatches: four updates, on a warmup-cosine LR (clipped where the norm exceeds 0.5).
    n_updates = cfg.ppo.ppo_epochs * cfg.ppo.responses_per_step // cfg.ppo.minibatch_size
    roles = (("policy/", loop.policy_stats),) + ((("critic/", loop.critic_stats),) if critic is not None else ())
    if critic is None:
        assert caught["critic/"] == [] and not any(k.startswith("critic/") for k in metrics)
        # Two responses to the same prompt are two different samples (the groups compare something).
        assert samples[0]["prompt"] == samples[1]["prompt"] and samples[0]["response"] != samples[1]["response"]
    for role, ours in roles:
        theirs = caught[role]
        assert len(theirs) == len(ours) == n_updates
        assert len({s["lr"] for s in theirs}) > 1 and all(s["grad_norm"] > 0 for s in theirs)
        for update, (a, b) in enumerate(zip(ours, theirs)):
            assert a.keys() == b.keys()
            exact = {k: v for k, v in a.items() if k not in NOISY}
            assert exact == pytest.approx({k: b[k] for k in exact}, **TOLERANCE), f"{role} update {update}"
            for k in NOISY.keys() & a.keys():
                assert a[k] == pytest.approx(b[k], abs=NOISY[k]), f"{role} update {update}: {k}"
    exact = {k: v for k, v in _numbers(ref_metrics).items() if k.split("/")[-1] not in NOISY}
    assert exact == pytest.approx({k: metrics[k] for k in exact}, **TOLERANCE)
    assert set(ref_metrics) == set(metrics)
