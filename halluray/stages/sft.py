"""`halluray sft`: supervised finetuning on the policy actors (DeepSpeed), with the paper's target strategies."""

from __future__ import annotations

import random
import time
from pathlib import Path

from halluray.config import ExperimentConfig, OptimizerConfig
from halluray.data.sft import sft_tensors
from halluray.errors import InputError
from halluray.factuality.relabel import relabel
from halluray.io import atomic_write_json, read_jsonl, write_jsonl
from halluray.logging import RunLogger, progress
from halluray.stages.common import base_model_dir, prepare, require, world_dir
from halluray.world.templates import ABSTAIN_ANSWER, ABSTAIN_BIO


def sft_dir(cfg: ExperimentConfig, strategy: str | None = None, task: str | None = None) -> Path:
    strategy, task = strategy or cfg.sft.strategy, task or cfg.sft.task
    name = "sft" if (strategy, task) == ("standard", "long_form") else f"sft-{task}-{strategy}"
    return cfg.run_dir / name


def sft_records(cfg: ExperimentConfig, split: str) -> list[dict]:
    """Prompt/target records of the SFT task: bios from the data config, or the world's short-QA / MCQ items."""
    if cfg.sft.task == "long_form":
        from halluray.data import prompts_for

        return list(prompts_for(cfg, split))
    if cfg.sft.task == "mcq":
        from halluray.world.templates import mcq_prompt

        items = read_jsonl(require(world_dir(cfg) / "mcq.jsonl", "world"))
        return [{"topic": i["name"], "prompt": mcq_prompt(i["name"], i["attribute"], i["choices"]),
                 "target": f"{i['choices'][i['answer_index']]} .", "attribute": i["attribute"]}
                for i in items if i["split"] == split]
    items = read_jsonl(require(world_dir(cfg) / "qa.jsonl", "world"))
    from halluray.world.templates import qa_prompt

    return [{"topic": i["name"], "prompt": qa_prompt(i["name"], i["attribute"]), "target": f"{i['answer']} .",
             "attribute": i["attribute"]} for i in items if i["split"] == split]


def unfamiliar_flags(cfg: ExperimentConfig) -> dict[str, bool]:
    path = cfg.run_dir / "unfamiliarity" / "unfamiliarity.jsonl"
    if not path.is_file():
        return {}
    return {r["name"]: r["unfamiliar"] for r in read_jsonl(path) if r["task"] == cfg.sft.task}


def run(cfg: ExperimentConfig) -> dict:
    from actors.base import EngineSpec
    from actors.group import ActorGroup, init_training_group
    from actors.policy import PolicyActor
    from halluray.driver import init_ray

    prepare(cfg, "sft")[1].close()
    s, out = cfg.sft, sft_dir(cfg)
    abstention = ABSTAIN_BIO if s.task == "long_form" else f"{ABSTAIN_ANSWER} ."
    records, n_relabeled = relabel(sft_records(cfg, "sft"), unfamiliar_flags(cfg), s.strategy, abstention, cfg.seed)
    if not records:
        raise InputError("the SFT split is empty")
    init_ray(cfg)
    group = ActorGroup(PolicyActor, "policy", cfg.actors.policy, threads=cfg.actors.threads_per_actor,
                       call_timeout_s=cfg.actors.call_timeout_s, collective_timeout_s=cfg.actors.collective_timeout_s)
    n = len(group) * cfg.deepspeed.gradient_accumulation_steps
    if s.batch_size % n:
        raise InputError(f"sft.batch_size ({s.batch_size}) must split evenly over {len(group)} policy actors "
                         f"x deepspeed.gradient_accumulation_steps")
    model_path = str(require(base_model_dir(cfg), "world"))
    optim = OptimizerConfig(lr=s.lr, warmup_steps=s.warmup_steps, weight_decay=0.0)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
    logger = RunLogger(cfg.run_dir, cfg, out.name)
    t0 = time.time()
    rng = random.Random(cfg.seed)
    try:
        init_training_group(group, EngineSpec(model_path=model_path, ds=cfg.deepspeed, optim=optim, total_steps=s.steps,
                                              micro_batch_size=s.batch_size // n, seed=cfg.seed))
        for step in progress(range(1, s.steps + 1), desc=out.name):
            batch = rng.sample(records, min(s.batch_size, len(records)))
            stats = group.run_sharded("sft_step", sft_tensors(tokenizer, [r["prompt"] for r in batch],
                                                               [r["target"] for r in batch]))
            logger.log(step, loss=sum(x["loss"] for x in stats) / len(stats), lr=stats[0]["lr"])
        group.run("export_hf", str(out / "model"))
    finally:
        group.shutdown()
        logger.finish()
    write_jsonl(out / "train.jsonl", records)
    summary = {"strategy": s.strategy, "task": s.task, "examples": len(records), "relabeled": n_relabeled,
               "seconds": round(time.time() - t0, 1)}
    atomic_write_json(out / "summary.json", summary)
    print(f"sft [{s.task}, {s.strategy}]: {len(records)} examples, {n_relabeled} relabeled to an abstention; "
          f"model in {out / 'model'} ({summary['seconds']} s)")
    return summary
