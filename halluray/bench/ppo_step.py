"""PPO step time, ours (Ray actor groups + DeepSpeed) vs a bare single-process torch loop doing the same math
on the same model and batch, in the same run on the same cores."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import torch

from halluray.config import build_config
from halluray.ppo import minibatches, policy_loss, value_loss
from halluray.ppo.experience import make_experience

PHASES = ("generate", "score", "train", "sync")


def _config(tmp: Path, steps: int):
    return build_config({}, [f"run.output_dir={tmp}", "run.name=bench", "model.pretrain.steps=50",
                             f"ppo.steps={steps}", "ppo.batch_size=32", "ppo.minibatch_size=16",
                             "ppo.ppo_epochs=2", "ppo.cliprange=0.2", "ppo.kl_coef=0.05",
                             "ppo.policy_optimizer.lr=1e-4", "ppo.critic_optimizer.lr=1e-4", "actors.rollout.num_actors=2",
                             "deepspeed.zero_stage=2", "logging.wandb_mode=disabled"])


def bare_loop(cfg, prompts: list[list[dict]]) -> list[dict[str, float]]:
    """Policy, reference, critic and fact-checker reward in one process; plain AdamW; no distribution."""
    from halluray.driver import _default_init, _scheme
    from halluray.factuality.rewards import FactCheckerReward
    from halluray.models.build import load_model
    from halluray.models.forward import logits_of, token_logprobs, token_logprobs_from_logits
    from halluray.models.generation import SamplingParams, generate_rollout
    from halluray.models.heads import ValueHeadModel
    from halluray.stages.common import world_dir

    ppo, path = cfg.ppo, _default_init(cfg)
    policy, tokenizer = load_model(path)
    reference, _ = load_model(path)
    critic = ValueHeadModel.from_pretrained(path)
    reward = FactCheckerReward(str(world_dir(cfg) / "world.json"), _scheme(cfg))
    popt = torch.optim.AdamW(policy.parameters(), lr=ppo.policy_optimizer.lr, betas=(0.9, 0.95))
    copt = torch.optim.AdamW(critic.parameters(), lr=ppo.critic_optimizer.lr, betas=(0.9, 0.95))
    sampling = SamplingParams(ppo.temperature, ppo.top_p, ppo.max_new_tokens)
    times = []
    for step, records in enumerate(prompts):
        t = {}
        t0 = time.perf_counter()
        r = generate_rollout(policy, tokenizer, [x["prompt"] for x in records], sampling, seed=step)
        t["generate"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        with torch.no_grad():
            old = token_logprobs(policy, r["input_ids"], r["attention_mask"])
            ref = token_logprobs(reference, r["input_ids"], r["attention_mask"])
            values = critic(r["input_ids"], r["attention_mask"])[:, :-1]
        scores = torch.tensor(reward(r["prompts"], r["responses"], [x["topic"] for x in records]))
        t["score"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        exp, _ = make_experience(r["input_ids"], r["attention_mask"], r["action_mask"], old, ref, values, scores,
                                 kl_coef=ppo.kl_coef, kl_estimator=ppo.kl_estimator, gamma=ppo.gamma, lam=ppo.lam,
                                 whiten=ppo.whiten_advantages)
        policy.train()
        critic.train()
        gen = torch.Generator().manual_seed(step)
        for _ in range(ppo.ppo_epochs):
            for idx in minibatches(len(exp), ppo.minibatch_size, gen):
                mb = exp.index_select(idx)
                logp = token_logprobs_from_logits(logits_of(policy, mb.input_ids, mb.attention_mask), mb.input_ids)
                loss, _ = policy_loss(logp, mb.old_logprobs, mb.advantages, mb.action_mask, ppo.cliprange)
                popt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
                popt.step()
                v = critic(mb.input_ids, mb.attention_mask)[:, :-1]
                vloss, _ = value_loss(v, mb.values, mb.returns, mb.action_mask, ppo.cliprange_value)
                copt.zero_grad()
                vloss.backward()
                torch.nn.utils.clip_grad_norm_(critic.parameters(), 1.0)
                copt.step()
        policy.eval()
        t["train"] = time.perf_counter() - t0
        t["sync"] = 0.0  # one process: the generating model is the trained model
        times.append(t)
    return times


def run(steps: int = 6, warmup: int = 1) -> dict:
    from halluray.data import prompts_for
    from halluray.data.stream import PromptStream
    from halluray.driver import PPODriver
    from halluray.stages import world

    with tempfile.TemporaryDirectory() as tmp:
        cfg = _config(Path(tmp), steps + warmup)
        world.run(cfg)
        stream = PromptStream(list(prompts_for(cfg, "ppo")), cfg.seed)
        batches = [stream.next_batch(cfg.ppo.batch_size) for _ in range(steps + warmup)]
        torch.set_num_threads(2)
        bare = bare_loop(cfg, batches)[warmup:]
        torch.set_num_threads(1)
        driver = PPODriver(cfg)
        ours = []
        try:
            for _ in range(steps + warmup):
                m = driver.step()
                ours.append({p: m[f"time/{p}"] for p in PHASES})
        finally:
            driver.shutdown()
        ours = ours[warmup:]

    def summary(times):
        per_phase = {p: statistics.median(t[p] for t in times) for p in PHASES}
        return {**per_phase, "total": statistics.median(sum(t.values()) for t in times)}

    result = {"ours": summary(ours), "bare_torch": summary(bare), "steps": steps,
              "batch": cfg.ppo.batch_size, "actors": "policy 2 + critic 2 (ZeRO-2), reference, reward, 2 rollout"}
    result["ratio"] = result["ours"]["total"] / result["bare_torch"]["total"]
    return result


def report(r: dict) -> str:
    rows = [f"PPO step (batch {r['batch']}, median of {r['steps']} steps; ours: {r['actors']}):",
            f"  {'phase':10s} {'ours (s)':>10s} {'bare torch (s)':>15s}"]
    for phase in (*PHASES, "total"):
        rows.append(f"  {phase:10s} {r['ours'][phase]:10.3f} {r['bare_torch'][phase]:15.3f}")
    rows.append(f"  ratio ours / bare torch = {r['ratio']:.2f}x")
    return "\n".join(rows)
