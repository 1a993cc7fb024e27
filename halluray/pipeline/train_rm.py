"""`halluray train-rm`: train a reward model on the reward-trainer actors (DeepSpeed): the two-stage verifier or
the scalar RM (halluray/trainers/head_rm.py), or the text two-stage RM's decomposer and verifier LMs
(halluray/trainers/text_rm.py)."""

from __future__ import annotations

import json
import time

from actors.group import ActorGroup, init_ray
from actors.roles import Role
from halluray.config import ExperimentConfig
from halluray.io import atomic_dir, atomic_write_json, read_jsonl
from halluray.layout import REWARD_SOURCES, RM_FILE, require
from halluray.logging import RunLogger
from halluray.pipeline.shared.prepare import prepare
from halluray.trainers.head_rm import HeadRMTraining
from halluray.trainers.text_rm import TextRMTraining


def run(cfg: ExperimentConfig) -> dict:
    layout = prepare(cfg, "train-rm")
    rm, source, out, data = cfg.reward_model, cfg.reward_data.source, layout.rm_dir(), layout.reward_data()
    records = read_jsonl(require(data, "reward-data"))
    model_path = str(require(layout.base_model, "world"))
    # Examples are built (and their count checked) before any actor starts.
    if rm.kind == "two-stage-text":
        shared = rm.shared_decomposer
        decomposer_records = [r for s in REWARD_SOURCES for r in read_jsonl(require(
            layout.reward_data(s), f"reward-data (reward_data.source={s}; reward_model.shared_decomposer)"))] \
            if shared else None
        training = TextRMTraining(cfg, records, model_path, decomposer_records)
    else:
        training = HeadRMTraining(cfg, records, model_path)
    init_ray(cfg)
    t0 = time.time()
    # A failed run leaves no half-written RM directory (and an earlier one stays as it was).
    with RunLogger(layout.run_dir, cfg, out.name) as logger, atomic_dir(out) as tmp:
        group = ActorGroup.from_config(Role.REWARD_TRAINER, cfg, batch_size=rm.batch_size,
                                       batch_key="reward_model.batch_size")
        try:
            trained = training.run(group, logger, tmp)
        finally:
            group.shutdown()
        meta = {"kind": rm.kind, "source": source, "true_fact": cfg.ppo.reward.true_fact,
                "false_fact": cfg.ppo.reward.false_fact, "decision": rm.decision, **trained,
                "seconds": round(time.time() - t0, 1)}
        (tmp / RM_FILE).write_text(json.dumps(meta, indent=2))
        atomic_write_json(tmp / "summary.json", meta)
    quality = {k: v for k, v in meta.items() if k.startswith(("val_", "decomposer_val_"))}
    print(f"train-rm [{source}, {rm.kind}]: {meta['train_examples']} examples, {quality}; saved to {out} "
          f"({meta['seconds']} s)")
    return meta
