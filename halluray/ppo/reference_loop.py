"""The PPO iteration in one process, with plain torch: read this first.

`PPODriver.step` (halluray/trainers/ppo_driver.py) runs the same iteration on Ray actor groups under DeepSpeed,
phase for phase and with the same phase names:

    1. rollout     sample samples_per_prompt responses per prompt      (driver: the rollout workers)
    2. score       old log-probs, reference log-probs, values, rewards (policy, reference, critic, reward roles)
    3. experience  shaped rewards, the estimator's advantages, returns (the driver itself, same function)
    4. train       ppo_epochs over shuffled minibatches                (policy and critic ranks, `ppo_train` /
                                                                        `value_train` in actors/)
    5. sync        nothing to do: the generating model is the trained model (driver: weights to the rollout
                   workers)

With one policy rank and one critic rank (fp32, ZeRO stage 0 or 2) the two give the same per-minibatch losses
from the same state: the same sampling seed, the same permutation and minibatch order, the same AdamW
hyper-parameters, warmup-cosine schedule, gradient accumulation and gradient-norm clipping
(tests/test_reference_loop.py checks it under ZeRO-2; a ZeRO-0 engine reports its grad_norm as 0). With R ranks
the driver averages R local-minibatch gradients, each a masked mean over its own tokens; here a minibatch is
one masked mean, so the updates differ slightly.

Models come built (the caller loads them; halluray.ppo never imports transformers, Ray or DeepSpeed): `policy` a
causal LM, `reference` a frozen copy of the initial policy, `critic` a `ValueHeadModel`-like module returning
per-token values (batch, T), `tokenizer` the policy's, `reward_fn(prompts, responses, topics)` one float per
response, `prefix_fn(prompts, responses, topics)` the prefixes' scores for segment credit
(`ppo.reward.malformed_credit: segment`; the driver's reward role computes the same). With a critic-free
`ppo.advantage_estimator` (GRPO, RLOO, REINFORCE++) `critic` is None and every critic part is skipped, as the
driver places no critic group. `ReferencePPO.step(records)` runs one iteration on a batch of prompt records
({"prompt", "topic"}), as `PPODriver.step` does on the batch its prompt stream draws.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from halluray.config import ExperimentConfig
from halluray.models.forward import logits_of, token_logprobs, token_logprobs_from_logits
from halluray.models.generation import SamplingParams, generate_rollout
from halluray.models.optim import adamw_warmup_cosine
from halluray.ppo.batches import Experience, minibatches, per_prompt_groups
from halluray.ppo.experience import Estimator, make_experience
from halluray.ppo.kl import AdaptiveKLController, FixedKLController
from halluray.ppo.losses import entropy_from_logits, policy_loss, value_loss
from halluray.ppo.metrics import iteration_metrics, sample_rows
from halluray.ppo.segments import prefix_credit
from halluray.ppo.shaping import RunningMeanStd

RewardFn = Callable[[list[str], list[str], list[str]], list[float]]
PrefixFn = Callable[[list[str], list[str], list[str]], list[tuple[str, float] | None]]
"""(prompts, responses, topics) -> each malformed response's well-formed prefix and its score, None where the
response is credited as a whole (what `halluray.factuality.reward_functions.prefix_scores` gives)."""


class ReferencePPO:
    """What `PPODriver` holds (models, optimizers, KL controller, reward statistics), in one process."""

    def __init__(self, cfg: ExperimentConfig, *, policy: torch.nn.Module, reference: torch.nn.Module,
                 critic: torch.nn.Module | None, tokenizer, reward_fn: RewardFn, prefix_fn: PrefixFn | None = None):
        ppo = cfg.ppo
        self.cfg, self.ppo = cfg, ppo
        self.policy, self.critic, self.tokenizer, self.reward_fn = policy, critic, tokenizer, reward_fn
        self.prefix_fn = prefix_fn if ppo.reward.malformed_credit == "segment" else None
        if ppo.reward.malformed_credit == "segment" and prefix_fn is None:
            raise ValueError("ppo.reward.malformed_credit 'segment' needs a prefix_fn that scores the prefixes")
        self.reference = reference.eval().requires_grad_(False)
        self.device = next(policy.parameters()).device
        if (critic is None) != ppo.critic_free:
            raise ValueError(f"advantage_estimator {ppo.advantage_estimator} needs "
                             f"{'no critic' if ppo.critic_free else 'a critic'}")
        # One optimizer step per minibatch: the schedule's length is the driver's (`ppo.updates`).
        self.policy_optimizer, self.policy_scheduler = adamw_warmup_cosine(policy, ppo.policy_optimizer, ppo.updates)
        if critic is not None:
            self.critic_optimizer, self.critic_scheduler = adamw_warmup_cosine(critic, ppo.critic_optimizer,
                                                                               ppo.updates)
        self.max_grad_norm = cfg.deepspeed.gradient_clipping  # DeepSpeed's `gradient_clipping`; 0 = none
        self.accumulation = cfg.deepspeed.gradient_accumulation_steps
        self.kl_ctl = (AdaptiveKLController(ppo.kl_coef, ppo.kl_target, ppo.kl_horizon) if ppo.adaptive_kl
                       else FixedKLController(ppo.kl_coef))
        self.reward_rms = RunningMeanStd() if ppo.normalize_rewards else None
        self.estimator = Estimator.from_config(ppo)
        self.sampling = SamplingParams(ppo.temperature, ppo.top_p, ppo.max_new_tokens, tuple(ppo.stop))
        self.step_done = 0
        self.policy_stats: list[dict] = []
        """The last step's statistics, one dict per policy minibatch update (what `ppo_train` returns)."""
        self.critic_stats: list[dict] = []
        """The same for the critic (what `value_train` returns); empty without one."""

    def step(self, records: list[dict]) -> tuple[dict, list[dict]]:
        """One PPO iteration on `records`; returns its metrics and a few (prompt, response, reward) samples."""
        ppo, step, times = self.ppo, self.step_done + 1, {}
        seed = self.cfg.seed * 100_003 + step
        # 1. rollout: the policy samples samples_per_prompt responses per prompt (the rollout workers' seed)
        t0 = time.perf_counter()
        records = per_prompt_groups(records, ppo.samples_per_prompt)
        rollout = generate_rollout(self.policy, self.tokenizer, [r["prompt"] for r in records], self.sampling, seed)
        input_ids, attention_mask, action_mask = (rollout[k].to(self.device) for k in
                                                  ("input_ids", "attention_mask", "action_mask"))
        times["generate"] = time.perf_counter() - t0

        # 2. score: old log-probs (policy), reference log-probs, values (critic, GAE only) and rewards
        t0 = time.perf_counter()
        self.policy.eval()
        with torch.no_grad():
            old_logprobs = token_logprobs(self.policy, input_ids, attention_mask)
            ref_logprobs = token_logprobs(self.reference, input_ids, attention_mask)
            values = None
            if self.critic is not None:
                self.critic.eval()
                values = self.critic(input_ids, attention_mask)[:, :-1].float()  # V(state before each next token)
        topics = [r["topic"] for r in records]
        scores = torch.tensor([float(s) for s in self.reward_fn(rollout["prompts"], rollout["responses"], topics)],
                              device=self.device)
        credit = None
        if self.prefix_fn is not None:  # segment credit: each malformed response's well-formed prefix scored
            credit = prefix_credit(self.tokenizer, rollout["input_ids"], rollout["action_mask"],
                                   self.prefix_fn(rollout["prompts"], rollout["responses"], topics))
        times["score"] = time.perf_counter() - t0

        # 3. experience: shaped scores (clip, normalise), the KL penalty, the estimator's advantages and returns
        exp, exp_stats = make_experience(
            input_ids, attention_mask, action_mask, old_logprobs, ref_logprobs, values, scores,
            kl_coef=self.kl_ctl.value, kl_estimator=ppo.kl_estimator, estimator=self.estimator,
            reward_clip=ppo.reward_clip, reward_running=self.reward_rms, credit=credit)

        # 4. train: shuffle, then ppo_epochs over minibatches, one policy (and critic) update per minibatch
        t0 = time.perf_counter()
        exp = exp.index_select(torch.randperm(len(exp), generator=torch.Generator().manual_seed(seed)))
        # Policy and critic ranks each draw their minibatch order from a generator seeded so (actors/base.py
        # `_train_epochs`): with one rank each, both draw this order.
        order = torch.Generator().manual_seed(seed)
        self.policy_stats, self.critic_stats = [], []
        for _epoch in range(ppo.ppo_epochs):
            for idx in minibatches(len(exp), ppo.minibatch_size, order):
                minibatch = exp.index_select(idx)
                self.policy_stats.append(self.policy_update(minibatch))
                if self.critic is not None:
                    self.critic_stats.append(self.critic_update(minibatch))
        times["train"] = time.perf_counter() - t0

        # 5. sync: nothing to do, the policy that generates is the policy that was trained
        times["sync"] = 0.0
        self.kl_ctl.update(exp_stats["kl"], ppo.responses_per_step)
        self.step_done = step
        metrics = iteration_metrics(scores, exp, exp_stats, self.kl_ctl.value, self.policy_stats, self.critic_stats,
                                    len(records), times)
        return metrics, sample_rows(rollout["prompts"], rollout["responses"], scores)

    # -- 4. train: one optimizer step per minibatch (actors/policy.py `ppo_step`, actors/critic.py `value_step`)

    def policy_update(self, minibatch: Experience) -> dict:
        """Clipped surrogate (minus the entropy bonus) on one minibatch; one AdamW step."""
        ppo = self.ppo

        def loss_fn(mb: Experience) -> tuple[torch.Tensor, dict]:
            logits = logits_of(self.policy, mb.input_ids, mb.attention_mask)
            logprobs = token_logprobs_from_logits(logits, mb.input_ids)
            pg_loss, stats = policy_loss(logprobs, mb.old_logprobs, mb.advantages, mb.action_mask, ppo.cliprange)
            # Entropy is only differentiated when it is part of the loss; otherwise it is a logged metric.
            with torch.set_grad_enabled(ppo.entropy_coef > 0):
                entropy = entropy_from_logits(logits[:, :-1], mb.action_mask)
            loss = pg_loss - ppo.entropy_coef * entropy if ppo.entropy_coef > 0 else pg_loss
            return loss, {**stats, "entropy": entropy.item(), "policy_loss": pg_loss.item()}

        return self._optimizer_step(self.policy, self.policy_optimizer, self.policy_scheduler, minibatch, loss_fn)

    def critic_update(self, minibatch: Experience) -> dict:
        """Clipped value loss against the GAE returns on one minibatch; one AdamW step."""
        def loss_fn(mb: Experience) -> tuple[torch.Tensor, dict]:
            new_values = self.critic(mb.input_ids, mb.attention_mask)[:, :-1].float()
            return value_loss(new_values, mb.values, mb.returns, mb.action_mask, self.ppo.cliprange_value)

        return self._optimizer_step(self.critic, self.critic_optimizer, self.critic_scheduler, minibatch, loss_fn)

    def _optimizer_step(self, model, optimizer, scheduler, minibatch: Experience, loss_fn) -> dict:
        """What a DeepSpeed engine does with one minibatch (actors/base.py `_train`): gradient accumulation over
        equal micro-batches (each loss divided by their number), gradient-norm clipping, AdamW, LR schedule."""
        model.train()
        n, size = self.accumulation, len(minibatch)
        stats: dict[str, float] = {}
        for chunk in range(n):
            micro = minibatch.index_select(torch.arange(chunk * size // n, (chunk + 1) * size // n))
            loss, micro_stats = loss_fn(micro)
            (loss / n).backward()
            for k, v in {"loss": loss.item(), **micro_stats}.items():
                stats[k] = stats.get(k, 0.0) + float(v) / n
        # The norm before clipping is what the actors report; max_norm 0 means no clipping (norm still measured).
        grad_norm = torch.nn.utils.clip_grad_norm_(
            [p for p in model.parameters() if p.requires_grad],
            self.max_grad_norm if self.max_grad_norm > 0 else float("inf"))
        optimizer.step()
        optimizer.zero_grad()
        scheduler.step()
        stats["lr"] = optimizer.param_groups[0]["lr"]
        stats["grad_norm"] = grad_norm.item()
        return stats

