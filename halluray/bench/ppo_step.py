"""PPO step time, ours (Ray actor groups + DeepSpeed) vs the bare single-process torch loop
(halluray/ppo/reference_loop.py) doing the same math on the same model and prompt batches, in the same run on
the same cores."""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

import torch

from actors.group import init_ray
from halluray.config import ExperimentConfig, build_config
from halluray.data import prompts_for
from halluray.data.stream import PromptStream
from halluray.driver import PPODriver
from halluray.factuality.fact_checkers import WorldFactChecker
from halluray.factuality.reward_functions import FactCheckerReward, RewardScheme
from halluray.layout import RunLayout
from halluray.models.build import load_model
from halluray.models.heads import ValueHeadModel
from halluray.ppo.reference_loop import ReferencePPO
from halluray.stages import world
from halluray.stages.ppo import policy_init, reward_spec
from halluray.world.entities import World

PHASES = ("generate", "score", "train", "sync")


def _config(tmp: Path, steps: int) -> ExperimentConfig:
    return build_config({}, [f"run.output_dir={tmp}", "run.name=bench", "model.pretrain.steps=50",
                             f"ppo.steps={steps}", "ppo.batch_size=32", "ppo.minibatch_size=16",
                             "ppo.ppo_epochs=2", "ppo.cliprange=0.2", "ppo.kl_coef=0.05",
                             "ppo.policy_optimizer.lr=1e-4", "ppo.critic_optimizer.lr=1e-4",
                             "actors.rollout.num_actors=2", "deepspeed.zero_stage=2", "logging.wandb_mode=disabled"])


def bare_loop(cfg: ExperimentConfig, batches: list[list[dict]]) -> list[dict[str, float]]:
    """The reference loop: policy, reference, critic and fact-checker reward in one process, no distribution.
    Returns the seconds of each phase, per step."""
    path = policy_init(cfg)
    policy, tokenizer = load_model(path)
    reference, _ = load_model(path)
    torch.manual_seed(cfg.seed)  # the critic's new value head, drawn as a critic rank draws it
    critic = ValueHeadModel.from_pretrained(path, cfg.model.trust_remote_code)
    reward = FactCheckerReward(WorldFactChecker(World.load(RunLayout(cfg).world_json)),
                               RewardScheme.from_config(cfg.ppo.reward))
    loop = ReferencePPO(cfg, policy=policy, reference=reference, critic=critic, tokenizer=tokenizer,
                        reward_fn=reward)
    times = []
    for records in batches:
        metrics, _ = loop.step(records)
        times.append({p: metrics[f"time/{p}"] for p in PHASES})
    return times


def distributed_loop(cfg: ExperimentConfig, prompts: list[dict], steps: int) -> list[dict[str, float]]:
    """`PPODriver.step` on the actor groups (it draws the same batches from the same prompt stream)."""
    init_ray(cfg)
    driver = PPODriver(cfg, policy_init(cfg), reward_spec(cfg, prompts), prompts)
    times = []
    try:
        for _ in range(steps):
            metrics, _ = driver.step()
            times.append({p: metrics[f"time/{p}"] for p in PHASES})
    finally:
        driver.shutdown()
    return times


def run(steps: int = 6, warmup: int = 1) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = _config(Path(tmp), steps + warmup)
        world.run(cfg)
        prompts = list(prompts_for(cfg, "ppo"))
        stream = PromptStream(prompts, cfg.seed)
        batches = [stream.next_batch(cfg.ppo.batch_size) for _ in range(steps + warmup)]
        threads = torch.get_num_threads()
        torch.set_num_threads(2)
        try:
            bare = bare_loop(cfg, batches)[warmup:]
            torch.set_num_threads(1)
            ours = distributed_loop(cfg, prompts, steps + warmup)[warmup:]
        finally:
            torch.set_num_threads(threads)

    def summary(times):
        per_phase = {p: statistics.median(t[p] for t in times) for p in PHASES}
        return {**per_phase, "total": statistics.median(sum(t.values()) for t in times)}

    a = cfg.actors
    actors = (f"policy {a.policy.num_actors} + critic {a.critic.num_actors} (ZeRO-{cfg.deepspeed.zero_stage}), "
              f"reference, reward, {a.rollout.num_actors} rollout")
    result = {"ours": summary(ours), "bare_torch": summary(bare), "steps": steps, "batch": cfg.ppo.batch_size,
              "actors": actors}
    result["ratio"] = result["ours"]["total"] / result["bare_torch"]["total"]
    return result


def report(r: dict) -> str:
    rows = [f"PPO step (batch {r['batch']}, median of {r['steps']} steps; ours: {r['actors']}; "
            "bare torch: halluray/ppo/reference_loop.py):",
            f"  {'phase':10s} {'ours (s)':>10s} {'bare torch (s)':>15s}"]
    for phase in (*PHASES, "total"):
        rows.append(f"  {phase:10s} {r['ours'][phase]:10.3f} {r['bare_torch'][phase]:15.3f}")
    rows.append(f"  ratio ours / bare torch = {r['ratio']:.2f}x")
    return "\n".join(rows)
