"""The PPO driver: orchestrates the actor groups. No model code here; the math is in halluray/ppo.

One iteration: prompts -> rollout workers generate -> policy (old log-probs), reference, critic and
reward score in parallel -> KL-shaped rewards and GAE -> PPO epochs on policy and critic in parallel
-> weight sync to the rollout workers.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from pathlib import Path

import ray
import torch

from actors.base import EngineSpec
from actors.critic import CriticActor
from actors.group import ActorGroup
from actors.policy import PolicyActor
from actors.reference import ReferenceActor
from actors.reward import RewardActor, RewardSpec
from actors.rollout import RolloutActor
from halluray.config import ExperimentConfig
from halluray.data import prompts_for
from halluray.data.stream import PromptStream
from halluray.errors import InputError
from halluray.eval.factuality import factuality_metrics
from halluray.factuality.rewards import RewardScheme
from halluray.io import atomic_dir, atomic_write_text
from halluray.logging import RunLogger, progress
from halluray.models.generation import SamplingParams, merge_rollouts
from halluray.ppo import (AdaptiveKLController, FixedKLController, RunningMeanStd, clip_rewards,
                          explained_variance, normalize_rewards)
from halluray.ppo.experience import make_experience
from halluray.stages.common import base_model_dir, world_dir
from halluray.world import FactChecker, World

POLICY_KEYS = ("input_ids", "attention_mask", "action_mask", "old_logprobs", "advantages")
CRITIC_KEYS = ("input_ids", "attention_mask", "action_mask", "returns")


def init_ray(cfg: ExperimentConfig) -> None:
    """Join the cluster named by RAY_ADDRESS (e.g. inside `ray job submit`), or start a local one."""
    if ray.is_initialized():
        return
    env = {"DS_ACCELERATOR": os.environ.get("DS_ACCELERATOR", "cpu" if not torch.cuda.is_available() else "cuda"),
           "OMP_NUM_THREADS": str(cfg.actors.threads_per_actor), "TOKENIZERS_PARALLELISM": "false",
           "WANDB_MODE": os.environ.get("WANDB_MODE", "")}
    if os.environ.get("RAY_ADDRESS"):
        ray.init(log_to_driver=False)  # a submitted job keeps its own runtime env; actors set their threads
    else:
        roles = [cfg.actors.policy, cfg.actors.critic, cfg.actors.reference, cfg.actors.reward, cfg.actors.rollout]
        needed = sum(r.num_actors * r.num_cpus for r in roles)
        # Logical CPUs: actors mostly wait on each other, so more actors than cores is fine (1 thread each).
        ray.init(num_cpus=max(int(needed + 0.999), os.cpu_count() or 1), include_dashboard=False,
                 log_to_driver=False, runtime_env={"env_vars": env})


class PPODriver:
    def __init__(self, cfg: ExperimentConfig, policy_init: str | None = None):
        self.cfg, ppo, a = cfg, cfg.ppo, cfg.actors
        self.init_path = policy_init or ppo.init_model or _default_init(cfg)
        self.lora = cfg.lora if cfg.lora.enabled else None
        group = dict(threads=a.threads_per_actor, strategy=a.placement_strategy, call_timeout_s=a.call_timeout_s,
                     collective_timeout_s=a.collective_timeout_s)
        updates = ppo.steps * ppo.ppo_epochs * (ppo.batch_size // ppo.minibatch_size)
        self.policy = ActorGroup(PolicyActor, "policy", a.policy, **group)
        self.critic = ActorGroup(CriticActor, "critic", a.critic, **group)
        # With LoRA the policy with its adapter disabled is the reference: no second copy of the weights.
        self.reference = None if self.lora else ActorGroup(ReferenceActor, "reference", a.reference, **group)
        self.reward = ActorGroup(RewardActor, "reward", a.reward, **group)
        self.rollout = ActorGroup(RolloutActor, "rollout", a.rollout, **group)
        for role, res in (("policy", a.policy), ("critic", a.critic)):
            if ppo.minibatch_size % (res.num_actors * cfg.deepspeed.gradient_accumulation_steps):
                raise InputError(f"ppo.minibatch_size ({ppo.minibatch_size}) must split evenly over the "
                                 f"{res.num_actors} {role} actors x deepspeed.gradient_accumulation_steps")
        micro = lambda res: ppo.minibatch_size // res.num_actors // cfg.deepspeed.gradient_accumulation_steps  # noqa: E731
        spec = dict(model_path=self.init_path, ds=cfg.deepspeed, total_steps=updates,
                    trust_remote_code=cfg.model.trust_remote_code, seed=cfg.seed)
        waits = [*init_training_group_async(self.policy, EngineSpec(**spec, optim=ppo.policy_optimizer,
                                                                      micro_batch_size=micro(a.policy), lora=self.lora)),
                 *init_training_group_async(self.critic, EngineSpec(**spec, optim=ppo.critic_optimizer,
                                                                      micro_batch_size=micro(a.critic)))]
        self.rollout.gather(self.rollout.call("init_model", self.init_path, self.lora, cfg.model.trust_remote_code))
        if self.reference:
            self.reference.gather(self.reference.call("init_model", self.init_path, cfg.model.trust_remote_code))
        self.reward.run("init_reward", _reward_spec(cfg))
        for g, refs in waits:
            g.gather(refs)
        if a.weight_sync == "broadcast":
            self._init_broadcast()
        self.kl_ctl = (AdaptiveKLController(ppo.kl_coef, ppo.kl_target, ppo.kl_horizon) if ppo.adaptive_kl
                       else FixedKLController(ppo.kl_coef))
        self.reward_rms = RunningMeanStd()
        self.sampling = SamplingParams(ppo.temperature, ppo.top_p, ppo.max_new_tokens, tuple(ppo.stop))
        self.prompts = PromptStream(list(prompts_for(cfg, "ppo")), cfg.seed)
        self.step_done = 0
        self.sync_weights()  # rollout workers start from exactly the policy's weights

    # -- one PPO iteration ---------------------------------------------------------------------------

    def step(self) -> dict:
        cfg, ppo = self.cfg, self.cfg.ppo
        step, times = self.step_done + 1, {}
        records = self.prompts.next_batch(ppo.batch_size)
        with _timed(times, "generate"):
            rollout = merge_rollouts(self.rollout.run_sharded(
                "generate", [r["prompt"] for r in records], self.sampling, cfg.seed * 100_003 + step))
        with _timed(times, "score"):
            seq = {"input_ids": rollout["input_ids"], "attention_mask": rollout["attention_mask"]}
            texts = {"prompts": rollout["prompts"], "responses": rollout["responses"],
                     "topics": [r["topic"] for r in records]}
            pending = [(self.policy, self.policy.call_sharded("logprobs", seq)),
                       self._reference_logprobs(seq),
                       (self.critic, self.critic.call_sharded("values", seq)),
                       (self.reward, self.reward.call_sharded("score_batch", texts))]
            old_logprobs, ref_logprobs, values, scores = [_cat(g.gather(refs)) for g, refs in pending]
        raw_scores = scores.clone()
        if ppo.reward_clip:
            scores = clip_rewards(scores, ppo.reward_clip)
        if ppo.normalize_rewards:
            self.reward_rms.update(scores)
            scores = normalize_rewards(scores, self.reward_rms)
        exp, exp_stats = make_experience(
            rollout["input_ids"], rollout["attention_mask"], rollout["action_mask"], old_logprobs, ref_logprobs,
            values, scores, kl_coef=self.kl_ctl.value, kl_estimator=ppo.kl_estimator, gamma=ppo.gamma,
            lam=ppo.lam, whiten=ppo.whiten_advantages)
        with _timed(times, "train"):
            # Each rank runs all epochs over its shard (local minibatches of minibatch_size / ranks);
            # policy and critic train at the same time.
            seed = cfg.seed * 100_003 + step
            order = torch.randperm(len(exp), generator=torch.Generator().manual_seed(seed))
            exp = exp.index_select(order)  # shards are random subsets, not prompt-order blocks
            policy_batch = {k: getattr(exp, k) for k in POLICY_KEYS}
            critic_batch = {**{k: getattr(exp, k) for k in CRITIC_KEYS}, "old_values": exp.values}
            p = self.policy.call_sharded("ppo_train", policy_batch, ppo.minibatch_size // len(self.policy),
                                         ppo.ppo_epochs, seed, ppo.cliprange, ppo.entropy_coef)
            c = self.critic.call_sharded("value_train", critic_batch, ppo.minibatch_size // len(self.critic),
                                         ppo.ppo_epochs, seed, ppo.cliprange_value)
            policy_stats = [s for rank in self.policy.gather(p) for s in rank]
            critic_stats = [s for rank in self.critic.gather(c) for s in rank]
        with _timed(times, "sync"):
            self.sync_weights()
        self.kl_ctl.update(exp_stats["kl"], ppo.batch_size)
        self.step_done = step
        response_tokens = rollout["action_mask"].sum().item()
        return {
            "reward_mean": raw_scores.mean().item(), "reward_std": raw_scores.std().item(), **exp_stats,
            "kl_coef": self.kl_ctl.value, **_mean_stats(policy_stats, "policy/"), **_mean_stats(critic_stats, "critic/"),
            "explained_variance": explained_variance(exp.values, exp.returns, exp.action_mask),
            "response_length": response_tokens / len(records),
            **{f"time/{k}": v for k, v in times.items()},
            "tokens_per_s": response_tokens / max(1e-9, sum(times.values())),
            "_samples": [{"prompt": p, "response": r, "reward": s}
                         for p, r, s in zip(texts["prompts"][:4], texts["responses"][:4], raw_scores.tolist()[:4])],
        }

    def _reference_logprobs(self, seq: dict):
        if self.reference is None:
            return self.policy, self.policy.call_sharded("reference_logprobs", seq)
        return self.reference, self.reference.call_sharded("logprobs", seq)

    # -- weights, evaluation, checkpoints ------------------------------------------------------------

    def _init_broadcast(self) -> None:
        addr, port = self.policy.rendezvous()
        world = 1 + len(self.rollout)
        refs = self.policy.call("init_sync_group", addr, port, 0, world)
        refs_r = [a.init_sync_group.remote(addr, port, i + 1, world) for i, a in enumerate(self.rollout.actors)]
        self.policy.gather(refs)
        self.rollout.gather(refs_r)

    def sync_weights(self) -> None:
        adapters_only = self.lora is not None
        if self.cfg.actors.weight_sync == "broadcast":
            sent = self.policy.call("broadcast_weights", adapters_only)
            self.rollout.run("receive_weights", adapters_only)
            self.policy.gather(sent)
        else:
            refs = self.policy.call("state_dict_for_sync", adapters_only)
            self.rollout.run("load_weights", refs[0])
            self.policy.gather(refs)

    def generate(self, prompts: list[str], temperature: float, seed: int) -> list[str]:
        params = SamplingParams(temperature, 1.0, self.cfg.ppo.max_new_tokens, tuple(self.cfg.ppo.stop))
        return merge_rollouts(self.rollout.run_sharded("generate", prompts, params, seed))["responses"]

    def evaluate(self, records: list[dict], checker) -> dict:
        e = self.cfg.eval
        prompts = [r["prompt"] for r in records for _ in range(e.samples_per_prompt)]
        topics = [r["topic"] for r in records for _ in range(e.samples_per_prompt)]
        responses = self.generate(prompts, e.temperature, seed=self.cfg.seed + 7)
        return factuality_metrics(checker, topics, responses, _scheme(self.cfg))

    def save(self, checkpoint_dir: Path) -> Path:
        """policy/ and critic/ engine checkpoints plus the driver's state; complete once driver.pt exists."""
        path = checkpoint_dir / f"step_{self.step_done:06d}"
        path.mkdir(parents=True, exist_ok=True)
        self.policy.gather(self.policy.call("save_checkpoint", str(path / "policy")) +
                           self.critic.call("save_checkpoint", str(path / "critic")))
        state = {"step": self.step_done, "kl_ctl": self.kl_ctl.state_dict(), "reward_rms": self.reward_rms.state_dict(),
                 "prompts": self.prompts.state_dict(), "torch_rng": torch.get_rng_state()}
        with atomic_dir(path / "driver") as tmp:
            torch.save(state, tmp / "driver.pt")
        return path

    def load(self, path: Path) -> None:
        self.policy.gather(self.policy.call("load_checkpoint", str(path / "policy")) +
                           self.critic.call("load_checkpoint", str(path / "critic")))
        state = torch.load(path / "driver" / "driver.pt", weights_only=False)
        self.step_done = state["step"]
        self.kl_ctl.load_state_dict(state["kl_ctl"])
        self.reward_rms.load_state_dict(state["reward_rms"])
        self.prompts.load_state_dict(state["prompts"])
        torch.set_rng_state(state["torch_rng"])
        self.sync_weights()

    def export(self, path: Path) -> None:
        self.policy.run("export_hf", str(path))

    def shutdown(self) -> None:
        for g in (self.policy, self.critic, self.reference, self.reward, self.rollout):
            if g is not None:
                g.shutdown()


def init_training_group_async(group: ActorGroup, spec: EngineSpec) -> list:
    """Start a group's engine build without waiting, so several roles build at once."""
    addr, port = group.rendezvous()
    return [(group, group.call("init_engine", addr, port, spec))]


def latest_checkpoint(checkpoint_dir: Path) -> Path | None:
    complete = sorted(p for p in checkpoint_dir.glob("step_*") if (p / "driver" / "driver.pt").is_file())
    return complete[-1] if complete else None


def run_ppo(cfg: ExperimentConfig, resume: bool = False, policy_init: str | None = None, out_name: str = "ppo") -> dict:
    """`halluray ppo`: the loop. Checkpoints go to run_dir/<out_name>/checkpoints, the final policy to .../model."""
    out = cfg.run_dir / out_name
    ckpt_dir = out / "checkpoints"
    start = latest_checkpoint(ckpt_dir) if resume else None
    if resume and start is None:
        raise InputError(f"--resume: no complete checkpoint under {ckpt_dir}")
    atomic_write_text(out / "config.yaml", cfg.to_yaml())  # this PPO run's resolved config
    init_ray(cfg)
    driver = PPODriver(cfg, policy_init)
    checker = FactChecker(World.load(world_dir(cfg) / "world.json")) if cfg.data.dataset == "world" else None
    eval_records = list(prompts_for(cfg, "eval")) if checker else []
    logger = RunLogger(cfg.run_dir, cfg, out_name)
    try:
        if start is not None:
            driver.load(start)
            print(f"ppo: resumed from {start} (step {driver.step_done})")
        elif checker:
            logger.log(0, **{f"eval/{k}": v for k, v in driver.evaluate(eval_records, checker).items()})
        ppo = cfg.ppo
        for step in progress(range(driver.step_done + 1, ppo.steps + 1), desc=out_name, initial=driver.step_done,
                             total=ppo.steps):
            metrics = driver.step()
            samples = metrics.pop("_samples")
            if ppo.log_samples_every and step % ppo.log_samples_every == 0:
                logger.log_samples(step, samples)
            if checker and ppo.eval_every and step % ppo.eval_every == 0 and step < ppo.steps:
                metrics.update({f"eval/{k}": v for k, v in driver.evaluate(eval_records, checker).items()})
            if ppo.save_every and step % ppo.save_every == 0:
                driver.save(ckpt_dir)
            logger.log(step, **metrics)
        final = {f"eval/{k}": v for k, v in driver.evaluate(eval_records, checker).items()} if checker else {}
        logger.log(ppo.steps, **final)
        driver.save(ckpt_dir)
        driver.export(out / "model")
        return final
    finally:
        logger.finish()
        driver.shutdown()


def _default_init(cfg: ExperimentConfig) -> str:
    from halluray.stages.sft import sft_dir

    sft = sft_dir(cfg, "standard", "long_form") / "model"
    return str(sft if sft.is_dir() else base_model_dir(cfg))


def _scheme(cfg: ExperimentConfig) -> RewardScheme:
    r = cfg.ppo.reward
    return RewardScheme(true_fact=r.true_fact, false_fact=r.false_fact, correct=r.correct, incorrect=r.incorrect,
                        abstain=r.abstain)


def _reward_spec(cfg: ExperimentConfig) -> RewardSpec:
    r = cfg.ppo.reward
    target = r.target or (str(world_dir(cfg) / "world.json") if r.kind in ("fact_checker", "qa_checker") else None)
    if target is None:
        raise InputError(f"ppo.reward.target must be set for reward kind '{r.kind}'")
    return RewardSpec(r.kind, target, _scheme(cfg), cfg.model.trust_remote_code)


@contextmanager
def _timed(times: dict, phase: str):
    t0 = time.perf_counter()
    yield
    times[phase] = time.perf_counter() - t0


def _cat(parts: list) -> torch.Tensor:
    return torch.cat([p if torch.is_tensor(p) else torch.tensor(p) for p in parts])


def _mean_stats(stats: list[dict], prefix: str) -> dict:
    """Mean over ranks and minibatches of each statistic the actors returned."""
    return {prefix + k: sum(s[k] for s in stats) / len(stats) for k in sorted(stats[0])}
