"""`halluray sft`: supervised finetuning on the policy actors (DeepSpeed), with the paper's target strategies."""

from __future__ import annotations

import random
import time

from transformers import AutoTokenizer

from actors.base import EngineSpec
from actors.group import ActorGroup, init_ray
from actors.roles import Role
from halluray.config import ExperimentConfig, OptimizerConfig
from halluray.data import prompts_for
from halluray.data.sft import sft_tensors
from halluray.errors import InputError
from halluray.factuality.relabel import REAL_ABSTENTION, item_key, relabel
from halluray.io import atomic_write_json, read_jsonl, write_jsonl
from halluray.layout import WORLD_DATASETS, RunLayout, require
from halluray.logging import RunLogger, progress
from halluray.pipeline.shared.prepare import prepare
from halluray.world.corpus import replay_documents
from halluray.world.templates import ABSTAIN_ANSWER, ABSTAIN_BIO, mcq_prompt, qa_prompt


def sft_records(cfg: ExperimentConfig, split: str) -> list[dict]:
    """Prompt/target records of the SFT task: bios from the data config, or the world's short-QA / MCQ items."""
    layout = RunLayout(cfg)
    if cfg.sft.task == "long_form" or cfg.data.dataset not in WORLD_DATASETS:
        return list(prompts_for(cfg, split))
    if cfg.sft.task == "mcq":
        items = read_jsonl(require(layout.world_mcq_items, "world"))
        return [{"topic": i["name"], "prompt": mcq_prompt(i["name"], i["attribute"], i["choices"]),
                 "target": f"{i['choices'][i['answer_index']]} .", "attribute": i["attribute"]}
                for i in items if i["split"] == split]
    items = read_jsonl(require(layout.world_qa_items, "world"))
    return [{"topic": i["name"], "prompt": qa_prompt(i["name"], i["attribute"]), "target": f"{i['answer']} .",
             "attribute": i["attribute"]} for i in items if i["split"] == split]


def unfamiliar_flags(cfg: ExperimentConfig) -> dict[str, bool]:
    path = RunLayout(cfg).unfamiliarity_scores
    if not path.is_file():
        return {}
    return {item_key(r["name"], r.get("attribute")): r["unfamiliar"] for r in read_jsonl(path)
            if r["task"] == cfg.sft.task}


def abstention(cfg: ExperimentConfig) -> str:
    """The target that replaces an unfamiliar example's answer."""
    if cfg.sft.abstention is not None:
        return cfg.sft.abstention
    if cfg.data.dataset not in WORLD_DATASETS:
        return REAL_ABSTENTION
    return ABSTAIN_BIO if cfg.sft.task == "long_form" else f"{ABSTAIN_ANSWER} ."


def run(cfg: ExperimentConfig) -> dict:
    layout = prepare(cfg, "sft")
    s, out = cfg.sft, layout.sft_dir()
    records, n_relabeled = relabel(sft_records(cfg, "sft"), unfamiliar_flags(cfg), s.strategy, abstention(cfg),
                                   cfg.seed)
    if not records:
        raise InputError("the SFT split is empty")
    model_path = str(require(layout.base_model, "world"))
    tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
    # Pretraining documents replayed beside the targets, each read after the end token as in pretraining.
    replayed = [{"prompt": tokenizer.eos_token, "target": doc, "replayed": True}
                for doc in replay_documents(require(layout.world_corpus, "world").read_text().splitlines(),
                                            s.replay_documents, cfg.seed)] if s.replay_documents else []
    examples = records + replayed
    optim = OptimizerConfig(lr=s.lr, warmup_steps=s.warmup_steps, weight_decay=0.0)
    # The `lora` section gives the adapters' shape; `sft.lora` alone decides whether SFT uses them.
    lora = cfg.lora.model_copy(update={"enabled": True}) if s.lora else None
    init_ray(cfg)
    group = ActorGroup.from_config(Role.POLICY, cfg, batch_size=s.batch_size, batch_key="sft.batch_size")
    logger = RunLogger(layout.run_dir, cfg, out.name)
    t0 = time.time()
    rng = random.Random(cfg.seed)
    try:
        group.gather(group.init_engines(EngineSpec(model_path=model_path, ds=cfg.deepspeed, optim=optim,
                                                   total_steps=s.steps, seed=cfg.seed, lora=lora,
                                                   micro_batch_size=group.micro_batch_size(s.batch_size))))
        for step in progress(range(1, s.steps + 1), desc=out.name):
            batch = rng.sample(examples, min(s.batch_size, len(examples)))
            stats = group.run_sharded("sft_step", sft_tensors(tokenizer, [r["prompt"] for r in batch],
                                                               [r["target"] for r in batch]))
            logger.log(step, loss=sum(x["loss"] for x in stats) / len(stats), lr=stats[0]["lr"])
        group.run("export_hf", str(out / "model"))
    finally:
        group.shutdown()
        logger.finish()
    write_jsonl(out / "train.jsonl", examples)
    summary = {"strategy": s.strategy, "task": s.task, "examples": len(records), "relabeled": n_relabeled,
               "replayed": len(replayed), "seconds": round(time.time() - t0, 1)}
    atomic_write_json(out / "summary.json", summary)
    print(f"sft [{s.task}, {s.strategy}]: {len(records)} examples, {n_relabeled} relabeled to an abstention, "
          f"{len(replayed)} pretraining documents replayed; "
          f"model in {out / 'model'} ({summary['seconds']} s)")
    return summary
