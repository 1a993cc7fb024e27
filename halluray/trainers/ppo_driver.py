"""The PPO driver: one PPO iteration over the actor groups. No model code and no math here (that is in
halluray/ppo; `halluray/ppo/reference_loop.py` is the same iteration in one process, phase for phase), and
no run management (the `ppo` stage owns the loop, evaluation, the run directory and restarts of the
training roles). A stateless worker (rollout, reward, reference) that dies is restarted by Ray, re-initialised
and re-synced here, and the interrupted phase is done again.

`actors.rollout_mode` picks who generates: the rollout group after each sync (`separate`), the rollout group
one batch ahead while policy and critic train (`one-step-off`), or the policy ranks themselves (`colocated`).
`ppo.advantage_estimator` picks how advantages are estimated: GAE needs the critic group; the critic-free
estimators (GRPO, RLOO, REINFORCE++) place none, and every critic phase is skipped.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import ray
import torch

from actors.base import EngineSpec
from actors.group import ActorGroup
from actors.reward import RewardSpec
from actors.roles import Role
from actors.weight_sync import WeightSync
from halluray import checkpoints
from halluray.config import ExperimentConfig
from halluray.data.stream import PromptStream
from halluray.errors import ActorFailure
from halluray.models.build import load_tokenizer
from halluray.models.generation import SamplingParams, merge_rollouts
from halluray.ppo import AdaptiveKLController, FixedKLController, RunningMeanStd
from halluray.ppo.batches import per_prompt_groups
from halluray.ppo.experience import Estimator, make_experience
from halluray.ppo.metrics import iteration_metrics, sample_rows
from halluray.ppo.segments import prefix_credit

POLICY_KEYS = ("input_ids", "attention_mask", "action_mask", "old_logprobs", "advantages")
CRITIC_KEYS = ("input_ids", "attention_mask", "action_mask", "returns")
T = TypeVar("T")


@dataclass
class PendingRollout:
    """One-step-off mode: the next step's batch, being generated while this step trains."""
    step: int
    records: list[dict]
    refs: list | None
    """The generating calls; None before they start, and again once a worker died (generated again)."""
    version: int
    """Policy updates in the weights the workers generate with."""
    stream_state: dict
    """The prompt stream before these records were drawn: what a checkpoint saves, so a resume draws them again."""


class PPODriver:
    def __init__(self, cfg: ExperimentConfig, policy_init: str, reward: RewardSpec, prompts: list[dict]):
        self.policy = self.critic = self.reference = self.reward = self.rollout = None
        try:
            self._start(cfg, policy_init, reward, prompts)
        except BaseException:
            self.shutdown(graceful=False)  # the groups already placed must not outlive a failed start
            raise

    def _start(self, cfg: ExperimentConfig, policy_init: str, reward: RewardSpec, prompts: list[dict]) -> None:
        self.cfg, ppo, a = cfg, cfg.ppo, cfg.actors
        self.lora = cfg.lora if cfg.lora.enabled else None
        self.policy_init, self.reward_spec = policy_init, reward
        self.policy = ActorGroup.from_config(Role.POLICY, cfg, batch_size=ppo.minibatch_size,
                                             batch_key="ppo.minibatch_size")
        self.critic = None if ppo.critic_free else ActorGroup.from_config(
            Role.CRITIC, cfg, batch_size=ppo.minibatch_size, batch_key="ppo.minibatch_size")
        # With LoRA the policy with its adapter disabled is the reference: no second copy of the weights.
        self.reference = None if self.lora else ActorGroup.from_config(Role.REFERENCE, cfg)
        self.reward = ActorGroup.from_config(Role.REWARD, cfg)
        self.mode = a.rollout_mode
        self.rollout = None if self.mode == "colocated" else ActorGroup.from_config(Role.ROLLOUT, cfg)
        self.generator = self.rollout or self.policy  # who samples responses
        spec = dict(model_path=policy_init, ds=cfg.deepspeed, total_steps=ppo.updates,
                    trust_remote_code=cfg.model.trust_remote_code, seed=cfg.seed)
        building = [(self.policy, self.policy.init_engines(EngineSpec(
                        **spec, optim=ppo.policy_optimizer, lora=self.lora,
                        micro_batch_size=self.policy.micro_batch_size(ppo.minibatch_size))))]
        if self.critic:  # ppo.lora_critic: adapters on a frozen backbone, so it costs what the policy costs
            building.append((self.critic, self.critic.init_engines(EngineSpec(
                **spec, optim=ppo.critic_optimizer, lora=self.lora if cfg.ppo.lora_critic else None,
                micro_batch_size=self.critic.micro_batch_size(ppo.minibatch_size)))))
        for group in (self.rollout, self.reference, self.reward):
            if group:
                self._init_stateless(group)
        for group, refs in building:
            group.gather(refs)
        self.weight_sync = (WeightSync(self.policy, self.rollout, a.weight_sync, adapters_only=self.lora is not None)
                            if self.rollout else None)
        if self.weight_sync:
            self.weight_sync.connect()
        self.kl_ctl = (AdaptiveKLController(ppo.kl_coef, ppo.kl_target, ppo.kl_horizon) if ppo.adaptive_kl
                       else FixedKLController(ppo.kl_coef))
        self.reward_rms = RunningMeanStd() if ppo.normalize_rewards else None
        self.estimator = Estimator.from_config(ppo)
        # Segment credit maps each credited prefix onto the policy's tokens.
        self.tokenizer = (load_tokenizer(policy_init, cfg.model.trust_remote_code)
                          if ppo.reward.malformed_credit == "segment" else None)
        self.sampling = SamplingParams(ppo.temperature, ppo.top_p, ppo.max_new_tokens, tuple(ppo.stop))
        self.prompts = PromptStream(prompts, cfg.seed)
        self.step_done = 0
        self.rollout_version = 0  # policy updates in the weights the generator holds
        self.pending: PendingRollout | None = None
        # The last step's update statistics, one dict per rank and minibatch (what ppo_train/value_train return).
        self.policy_stats: list[dict] = []
        self.critic_stats: list[dict] = []
        self.sync_weights()  # rollout workers start from exactly the policy's weights

    def step(self) -> tuple[dict, list[dict]]:
        """One PPO iteration; returns its metrics and a few (prompt, response, reward) samples."""
        ppo, step, times = self.cfg.ppo, self.step_done + 1, {}
        seed = self._seed(step)
        # 1. rollout: responses to this batch's prompts (one-step-off: waits for those started last step)
        if self.pending is None:  # not started during the previous step: drawn now, generated below
            self.pending = self._draw(step)
        with _timed(times, "generate"):
            records, rollout, version = self._recovering(self._rollout)
        if self.mode == "one-step-off" and step < ppo.steps:
            self.pending = self._draw(step + 1)
            self._launch(self.pending)  # generated while this batch is scored and trained on
        # 2. score: old log-probs, reference log-probs, values (GAE only) and rewards, all roles at once
        with _timed(times, "score"):
            seq = {"input_ids": rollout["input_ids"], "attention_mask": rollout["attention_mask"]}
            texts = {"prompts": rollout["prompts"], "responses": rollout["responses"],
                     "topics": [r["topic"] for r in records]}
            old_logprobs, ref_logprobs, values, scores, credited = self._recovering(lambda: self._score(seq, texts))
            credit = (prefix_credit(self.tokenizer, rollout["input_ids"], rollout["action_mask"], credited)
                      if credited is not None else None)
        # 3. experience: shaped scores (clip, normalise), the KL penalty, the estimator's advantages and returns
        exp, exp_stats = make_experience(
            rollout["input_ids"], rollout["attention_mask"], rollout["action_mask"], old_logprobs, ref_logprobs,
            values, scores, kl_coef=self.kl_ctl.value, kl_estimator=ppo.kl_estimator, estimator=self.estimator,
            reward_clip=ppo.reward_clip, reward_running=self.reward_rms, credit=credit)
        # 4. train: every rank runs all PPO epochs on a random shard; policy and critic (if any) at the same time
        with _timed(times, "train"):
            exp = exp.index_select(torch.randperm(len(exp), generator=torch.Generator().manual_seed(seed)))
            policy_batch = {k: getattr(exp, k) for k in POLICY_KEYS}
            p = self.policy.call_sharded("ppo_train", policy_batch, self.policy.per_rank(ppo.minibatch_size),
                                         ppo.ppo_epochs, seed, ppo.cliprange, ppo.entropy_coef)
            if self.critic:
                critic_batch = {**{k: getattr(exp, k) for k in CRITIC_KEYS}, "old_values": exp.values}
                c = self.critic.call_sharded("value_train", critic_batch, self.critic.per_rank(ppo.minibatch_size),
                                             ppo.ppo_epochs, seed, ppo.cliprange_value)
            self.policy_stats = [s for rank in self.policy.gather(p) for s in rank]
            self.critic_stats = [s for rank in self.critic.gather(c) for s in rank] if self.critic else []
        # 5. sync: the rollout workers get the updated policy weights (one-step-off: after the next batch)
        self.step_done = step
        with _timed(times, "sync"):
            self._recovering(self.sync_weights)
        self.kl_ctl.update(exp_stats["kl"], ppo.responses_per_step)
        metrics = iteration_metrics(scores, exp, exp_stats, self.kl_ctl.value, self.policy_stats, self.critic_stats,
                                    len(records), times, policy_lag=step - 1 - version)
        return metrics, sample_rows(texts["prompts"], texts["responses"], scores)

    def _seed(self, step: int) -> int:
        return self.cfg.seed * 100_003 + step

    def _draw(self, step: int) -> PendingRollout:
        """`step`'s prompt records, drawn from the stream (whose state before them a checkpoint keeps), each
        `ppo.samples_per_prompt` times in a row."""
        ppo, stream_state = self.cfg.ppo, self.prompts.state_dict()
        records = per_prompt_groups(self.prompts.next_batch(ppo.batch_size), ppo.samples_per_prompt)
        return PendingRollout(step, records, None, self.rollout_version, stream_state)

    def _launch(self, batch: PendingRollout) -> None:
        """Start generating `batch` with the weights the generator holds now."""
        batch.version = self.rollout_version
        batch.refs = self.generator.call_sharded("generate", [r["prompt"] for r in batch.records], self.sampling,
                                                 self._seed(batch.step))

    def _rollout(self) -> tuple[list[dict], dict, int]:
        """The pending batch's records, their rollout and the policy version that generated it: collected
        when it was started during the previous step (one-step-off), else generated now."""
        batch = self.pending
        if batch.refs is None:
            self._launch(batch)
        rollout = merge_rollouts(self.generator.gather(batch.refs))
        self.pending = None
        return batch.records, rollout, batch.version

    def sync_weights(self) -> None:
        """The generator gets the policy's current weights (nothing to send when the policy generates)."""
        if self.weight_sync:
            self.weight_sync()
        self.rollout_version = self.step_done

    def _score(self, seq: dict, texts: dict) -> list:
        """Old log-probs, reference log-probs, values (None without a critic), scores, and with segment credit
        each response's (well-formed prefix, its score) or None (else None), the reward role's prefixes asked
        for while the other roles still compute."""
        reference = (self.reference, "logprobs") if self.reference else (self.policy, "reference_logprobs")
        pending = [(self.policy, self.policy.call_sharded("logprobs", seq)),
                   (reference[0], reference[0].call_sharded(reference[1], seq)),
                   (self.critic, self.critic.call_sharded("values", seq) if self.critic else None),
                   (self.reward, self.reward.call_sharded("score_batch", texts))]
        prefixes = self.reward.call_sharded("prefix_scores_batch", texts) if self.tokenizer else None
        tensors = [_cat(g.gather(refs)) if g else None for g, refs in pending]
        return [*tensors, [x for part in self.reward.gather(prefixes) for x in part] if prefixes else None]

    # -- stateless workers: initialise, and recover after Ray restarted one ---------------------------

    def _init_stateless(self, group: ActorGroup) -> None:
        trust = self.cfg.model.trust_remote_code
        if group is self.rollout:
            group.run("init_model", self.policy_init, self.lora, trust)
        elif group is self.reference:
            group.run("init_model", self.policy_init, trust)
        else:
            group.run("init_reward", self.reward_spec)

    def _recovering(self, phase: Callable[[], T]) -> T:
        """Run `phase`; if a stateless worker died, wait for its restart, re-initialise (and for rollout
        workers re-sync) that group, and run the phase again, up to `actors.max_restarts` times."""
        groups = {g.role: g for g in (self.rollout, self.reference, self.reward) if g}
        for attempt in range(self.cfg.actors.max_restarts + 1):
            try:
                return phase()
            except ActorFailure as e:
                restarted = e.died or e.cause == "WorkerRestarted"
                # a lost node took more than one worker: the run restarts every group where the cluster has room
                if not (restarted and e.role in groups) or e.node_id or attempt == self.cfg.actors.max_restarts:
                    raise
                print(f"ppo: {e}; re-initialising the {e.role} workers and redoing the phase "
                      f"({attempt + 1} of {self.cfg.actors.max_restarts})", file=sys.stderr, flush=True)
                group = groups[e.role]
                group.wait_alive()
                self._init_stateless(group)
                if group is self.rollout:
                    if self.pending is not None:
                        self.pending.refs = None  # lost with the worker: generated again when needed
                    self.weight_sync.connect()  # the restarted worker was not in the old sync group
                    self.sync_weights()
        raise AssertionError("unreachable")

    # -- generation and scoring outside an iteration (validation) -------------------------------------

    def generate(self, prompts: list[str], params: SamplingParams, seed: int) -> list[str]:
        return merge_rollouts(self.generator.run_sharded("generate", prompts, params, seed))["responses"]

    def score(self, prompts: list[str], responses: list[str], topics: list[str]) -> list[float]:
        """The PPO reward (the reward actors: a learned RM, a callable or the checker) of responses outside an
        iteration, such as the stage's validation responses."""
        texts = {"prompts": prompts, "responses": responses, "topics": topics}
        return self._recovering(lambda: _cat(self.reward.run_sharded("score_batch", texts))).tolist()

    def explain(self, prompts: list[str], responses: list[str], topics: list[str]) -> list[dict]:
        """Each response's PPO reward and the claims a two-stage RM read in it with their P(true)
        (`RewardActor.explain`), for the validation's per-claim table."""
        texts = {"prompts": prompts, "responses": responses, "topics": topics}
        return self._recovering(lambda: [e for part in self.reward.run_sharded("explain_batch", texts) for e in part])

    # -- weights and checkpoints ---------------------------------------------------------------------

    def save(self, checkpoint_dir: Path, stage_state: dict | None = None) -> Path:
        """policy/ and critic/ (if placed) engine checkpoints and the driver's state, written into a temp directory and
        renamed once (halluray/checkpoints.py), with a manifest built from what every rank reports. A complete step
        is never written again (a damaged one is). `stage_state` (plain numbers) is the caller's own state at this
        step, kept with the driver's so both resume together."""
        final = checkpoints.step_dir(checkpoint_dir, self.step_done)
        if final.is_dir():
            if checkpoints.problem(final) is None:
                return final
            checkpoints.mark_bad(final)  # a damaged step that a resume skipped: set aside and written again
        tmp = checkpoints.temp_dir(checkpoint_dir, self.step_done)
        tmp.mkdir(parents=True, exist_ok=True)
        reports = self._both("save_checkpoint", tmp)  # each rank's files, sizes and checksums: the manifest
        state = {"step": self.step_done, "kl_ctl": self.kl_ctl.state_dict(),
                 "reward_rms": self.reward_rms.state_dict() if self.reward_rms else None,
                 "prompts": self.pending.stream_state if self.pending else self.prompts.state_dict(),
                 "torch_rng": torch.get_rng_state(),
                 "stage": stage_state or {}}
        torch.save(state, tmp / checkpoints.DRIVER_STATE)
        checkpoints.commit(tmp, final, reports)
        return final

    def load(self, path: Path) -> dict:
        """Restore the step saved at `path`; returns the `stage_state` saved with it ({} if none)."""
        self._both("load_checkpoint", path)
        state = checkpoints.load_driver_state(path)
        self.step_done = state["step"]
        self.kl_ctl.load_state_dict(state["kl_ctl"])
        if self.reward_rms:
            self.reward_rms.load_state_dict(state["reward_rms"])
        self.prompts.load_state_dict(state["prompts"])
        self.pending = None  # a one-step-off batch in flight is drawn again from the restored stream
        torch.set_rng_state(state["torch_rng"])
        self.sync_weights()
        return state.get("stage", {})  # checkpoints written before stage state existed have none

    def _both(self, method: str, path: Path) -> dict[str, list]:
        """The same checkpoint call on policy and critic (if placed) at once, each awaited through its own group;
        each group's results by role, in rank order."""
        pending = [(g, g.call(method, str(path / g.role))) for g in (self.policy, self.critic) if g]
        # every rank ends (or fails) before a failure is raised: a step set aside after a failed load is never
        # renamed under a rank still reading it
        everything = [ref for _, refs in pending for ref in refs]
        ray.wait(everything, num_returns=len(everything), timeout=self.cfg.actors.call_timeout_s)
        return {group.role: group.gather(refs) for group, refs in pending}

    def export(self, path: Path) -> None:
        self.policy.run("export_hf", str(path))

    @property
    def groups(self) -> list[ActorGroup]:
        """The actor groups placed so far (no critic with a critic-free estimator, no reference with LoRA, no
        rollout group when colocated)."""
        return [g for g in (self.policy, self.critic, self.reference, self.reward, self.rollout) if g is not None]

    def shutdown(self, graceful: bool = True) -> None:
        for group in self.groups:
            group.shutdown(graceful=graceful)


@contextmanager
def _timed(times: dict, phase: str):
    t0 = time.perf_counter()
    yield
    times[phase] = time.perf_counter() - t0


def _cat(parts: list) -> torch.Tensor:
    return torch.cat([p if torch.is_tensor(p) else torch.tensor(p) for p in parts])
