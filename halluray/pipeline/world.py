"""`halluray world`: generate the world, train the tokenizer, pretrain and save the base model."""

from __future__ import annotations

import time

from halluray.config import ExperimentConfig
from halluray.logging import RunLogger
from halluray.models.build import build_gpt2, save_model
from halluray.models.pretrain import pretrain
from halluray.models.tokenizer import train_word_tokenizer
from halluray.pipeline.shared.prepare import prepare
from halluray.world.build import build_corpus, make_world, vocabulary_texts, write_world


def run(cfg: ExperimentConfig) -> dict:
    layout = prepare(cfg, "world")
    t0 = time.time()
    world = make_world(cfg)
    corpus = build_corpus(cfg, world)
    write_world(cfg, world, corpus, layout.world_dir)
    if cfg.model.pretrained_path:
        print(f"world: {len(world.people)} people written; using the base model at {cfg.model.pretrained_path}")
        return {"people": len(world.people), "documents": len(corpus)}
    tokenizer = train_word_tokenizer(list(vocabulary_texts(world)) + corpus)
    model = build_gpt2(cfg.model, tokenizer, cfg.seed)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"world: {len(world.people)} people, {len(corpus)} documents, vocab {len(tokenizer)}, "
          f"model {n_params / 1e6:.2f}M parameters")
    with RunLogger(layout.run_dir, cfg, "world") as logger:
        losses = pretrain(model, tokenizer, corpus, cfg.model.pretrain, cfg.seed, logger)
        save_model(model, tokenizer, layout.base_model)
        summary = {"people": len(world.people), "documents": len(corpus), "vocab": len(tokenizer),
                   "parameters": n_params, "final_loss": losses[-1], "seconds": round(time.time() - t0, 1)}
        logger.log(cfg.model.pretrain.steps, **summary)
    print(f"world: final loss {losses[-1]:.3f}; base model in {layout.base_model} ({summary['seconds']} s)")
    return summary
