"""The PPO driver: one PPO iteration over the actor groups. No model code and no math here (that is in
halluray/ppo; `halluray/ppo/reference_loop.py` is the same iteration in one process, phase for phase), and
no run management (the `ppo` stage owns the loop, evaluation and the run directory).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path

import torch

from actors.base import EngineSpec
from actors.group import ActorGroup
from actors.reward import RewardSpec
from actors.roles import Role
from halluray.config import ExperimentConfig
from halluray.data.stream import PromptStream
from halluray.io import atomic_dir
from halluray.models.generation import SamplingParams, merge_rollouts
from halluray.ppo import AdaptiveKLController, FixedKLController, RunningMeanStd
from halluray.ppo.experience import make_experience
from halluray.ppo.metrics import iteration_metrics, sample_rows

POLICY_KEYS = ("input_ids", "attention_mask", "action_mask", "old_logprobs", "advantages")
CRITIC_KEYS = ("input_ids", "attention_mask", "action_mask", "returns")


class PPODriver:
    def __init__(self, cfg: ExperimentConfig, policy_init: str, reward: RewardSpec, prompts: list[dict]):
        self.cfg, ppo, a = cfg, cfg.ppo, cfg.actors
        self.lora = cfg.lora if cfg.lora.enabled else None
        self.policy = ActorGroup.from_config(Role.POLICY, cfg, batch_size=ppo.minibatch_size,
                                             batch_key="ppo.minibatch_size")
        self.critic = ActorGroup.from_config(Role.CRITIC, cfg, batch_size=ppo.minibatch_size,
                                             batch_key="ppo.minibatch_size")
        # With LoRA the policy with its adapter disabled is the reference: no second copy of the weights.
        self.reference = None if self.lora else ActorGroup.from_config(Role.REFERENCE, cfg)
        self.reward = ActorGroup.from_config(Role.REWARD, cfg)
        self.rollout = ActorGroup.from_config(Role.ROLLOUT, cfg)
        updates = ppo.steps * ppo.ppo_epochs * (ppo.batch_size // ppo.minibatch_size)
        spec = dict(model_path=policy_init, ds=cfg.deepspeed, total_steps=updates,
                    trust_remote_code=cfg.model.trust_remote_code, seed=cfg.seed)
        building = [(self.policy, self.policy.init_engines(EngineSpec(
                        **spec, optim=ppo.policy_optimizer, lora=self.lora,
                        micro_batch_size=self.policy.micro_batch_size(ppo.minibatch_size)))),
                    (self.critic, self.critic.init_engines(EngineSpec(
                        **spec, optim=ppo.critic_optimizer,
                        micro_batch_size=self.critic.micro_batch_size(ppo.minibatch_size))))]
        self.rollout.run("init_model", policy_init, self.lora, cfg.model.trust_remote_code)
        if self.reference:
            self.reference.run("init_model", policy_init, cfg.model.trust_remote_code)
        self.reward.run("init_reward", reward)
        for group, refs in building:
            group.gather(refs)
        if a.weight_sync == "broadcast":
            self._init_broadcast()
        self.kl_ctl = (AdaptiveKLController(ppo.kl_coef, ppo.kl_target, ppo.kl_horizon) if ppo.adaptive_kl
                       else FixedKLController(ppo.kl_coef))
        self.reward_rms = RunningMeanStd() if ppo.normalize_rewards else None
        self.sampling = SamplingParams(ppo.temperature, ppo.top_p, ppo.max_new_tokens, tuple(ppo.stop))
        self.prompts = PromptStream(prompts, cfg.seed)
        self.step_done = 0
        self.policy_stats: list[dict] = []
        """The last step's statistics, one dict per rank and minibatch update (what `ppo_train` returns)."""
        self.critic_stats: list[dict] = []
        """The same for the critic (what `value_train` returns)."""
        self.sync_weights()  # rollout workers start from exactly the policy's weights

    def step(self) -> tuple[dict, list[dict]]:
        """One PPO iteration; returns its metrics and a few (prompt, response, reward) samples."""
        ppo, step, times = self.cfg.ppo, self.step_done + 1, {}
        seed = self.cfg.seed * 100_003 + step
        records = self.prompts.next_batch(ppo.batch_size)
        # 1. rollout: the rollout workers sample responses to this batch's prompts
        with _timed(times, "generate"):
            rollout = merge_rollouts(self.rollout.run_sharded("generate", [r["prompt"] for r in records],
                                                              self.sampling, seed))
        # 2. score: old log-probs, reference log-probs, values and rewards, all roles at once
        with _timed(times, "score"):
            seq = {"input_ids": rollout["input_ids"], "attention_mask": rollout["attention_mask"]}
            texts = {"prompts": rollout["prompts"], "responses": rollout["responses"],
                     "topics": [r["topic"] for r in records]}
            reference = (self.reference, "logprobs") if self.reference else (self.policy, "reference_logprobs")
            pending = [(self.policy, self.policy.call_sharded("logprobs", seq)),
                       (reference[0], reference[0].call_sharded(reference[1], seq)),
                       (self.critic, self.critic.call_sharded("values", seq)),
                       (self.reward, self.reward.call_sharded("score_batch", texts))]
            old_logprobs, ref_logprobs, values, scores = [_cat(g.gather(refs)) for g, refs in pending]
        # 3. experience: shaped rewards (clip, normalise, KL), GAE advantages and returns
        exp, exp_stats = make_experience(
            rollout["input_ids"], rollout["attention_mask"], rollout["action_mask"], old_logprobs, ref_logprobs,
            values, scores, kl_coef=self.kl_ctl.value, kl_estimator=ppo.kl_estimator, gamma=ppo.gamma,
            lam=ppo.lam, whiten=ppo.whiten_advantages, reward_clip=ppo.reward_clip, reward_running=self.reward_rms)
        # 4. train: every rank runs all PPO epochs on a random shard; policy and critic at the same time
        with _timed(times, "train"):
            exp = exp.index_select(torch.randperm(len(exp), generator=torch.Generator().manual_seed(seed)))
            policy_batch = {k: getattr(exp, k) for k in POLICY_KEYS}
            critic_batch = {**{k: getattr(exp, k) for k in CRITIC_KEYS}, "old_values": exp.values}
            p = self.policy.call_sharded("ppo_train", policy_batch, self.policy.per_rank(ppo.minibatch_size),
                                         ppo.ppo_epochs, seed, ppo.cliprange, ppo.entropy_coef)
            c = self.critic.call_sharded("value_train", critic_batch, self.critic.per_rank(ppo.minibatch_size),
                                         ppo.ppo_epochs, seed, ppo.cliprange_value)
            self.policy_stats = [s for rank in self.policy.gather(p) for s in rank]
            self.critic_stats = [s for rank in self.critic.gather(c) for s in rank]
        # 5. sync: the rollout workers get the updated policy weights
        with _timed(times, "sync"):
            self.sync_weights()
        self.kl_ctl.update(exp_stats["kl"], ppo.batch_size)
        self.step_done = step
        metrics = iteration_metrics(scores, exp, exp_stats, self.kl_ctl.value, self.policy_stats, self.critic_stats,
                                    len(records), times)
        return metrics, sample_rows(texts["prompts"], texts["responses"], scores)

    # -- weights and checkpoints ---------------------------------------------------------------------

    def _init_broadcast(self) -> None:
        addr, port = self.policy.rendezvous()
        world = 1 + len(self.rollout)
        sender = self.policy.call("init_sync_group", addr, port, 0, world)
        receivers = [a.init_sync_group.remote(addr, port, i + 1, world) for i, a in enumerate(self.rollout.actors)]
        self.policy.gather(sender)
        self.rollout.gather(receivers)

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

    def generate(self, prompts: list[str], params: SamplingParams, seed: int) -> list[str]:
        return merge_rollouts(self.rollout.run_sharded("generate", prompts, params, seed))["responses"]

    def save(self, checkpoint_dir: Path) -> Path:
        """policy/ and critic/ engine checkpoints plus the driver's state; complete once driver.pt exists."""
        path = checkpoint_dir / f"step_{self.step_done:06d}"
        path.mkdir(parents=True, exist_ok=True)
        self._both("save_checkpoint", path)
        state = {"step": self.step_done, "kl_ctl": self.kl_ctl.state_dict(),
                 "reward_rms": self.reward_rms.state_dict() if self.reward_rms else None,
                 "prompts": self.prompts.state_dict(), "torch_rng": torch.get_rng_state()}
        with atomic_dir(path / "driver") as tmp:
            torch.save(state, tmp / "driver.pt")
        return path

    def load(self, path: Path) -> None:
        self._both("load_checkpoint", path)
        state = torch.load(path / "driver" / "driver.pt", weights_only=False)
        self.step_done = state["step"]
        self.kl_ctl.load_state_dict(state["kl_ctl"])
        if self.reward_rms:
            self.reward_rms.load_state_dict(state["reward_rms"])
        self.prompts.load_state_dict(state["prompts"])
        torch.set_rng_state(state["torch_rng"])
        self.sync_weights()

    def _both(self, method: str, path: Path) -> None:
        """The same checkpoint call on policy and critic at once, each awaited through its own group."""
        pending = [(g, g.call(method, str(path / g.role))) for g in (self.policy, self.critic)]
        for group, refs in pending:
            group.gather(refs)

    def export(self, path: Path) -> None:
        self.policy.run("export_hf", str(path))

    def shutdown(self) -> None:
        for group in (self.policy, self.critic, self.reference, self.reward, self.rollout):
            if group is not None:
                group.shutdown()


@contextmanager
def _timed(times: dict, phase: str):
    t0 = time.perf_counter()
    yield
    times[phase] = time.perf_counter() - t0


def _cat(parts: list) -> torch.Tensor:
    return torch.cat([p if torch.is_tensor(p) else torch.tensor(p) for p in parts])
