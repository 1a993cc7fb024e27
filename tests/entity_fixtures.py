"""A made-up entity table a user could write, and a tiny random model that knows its words: what the entity-table
tests run the pipeline on in place of the countries and SmolLM2."""

from __future__ import annotations

import json
from pathlib import Path

from halluray.config import build_config


def made_up_table(path: Path, names: tuple[str, ...]) -> Path:
    """Countries `names`, each bordering the next, with a capital, a continent and a fame (its index)."""
    rows = [{"entity": name, "fame": float(i), "attributes": {
        "capital": f"{name[:3]}ville", "continent": "Europe" if i % 2 else "Africa",
        "neighbours": [names[(i + 1) % len(names)], names[i - 1]]}} for i, name in enumerate(names)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def tiny_entity_model(directory: Path, table: Path) -> Path:
    """A 2-layer GPT-2 (random weights) whose word tokenizer knows every word the pipeline writes or reads about
    the table: prompts, reference texts, the reader's notes, the decomposer's and verifier's formats."""
    from halluray.data.entity_table import read_entity_table
    from halluray.models.build import build_gpt2, save_model
    from halluray.models.tokenizer import train_word_tokenizer

    texts = [f"Notes on {e.name}: {e.reference} {e.prompt} It borders {e.name}." for e in read_entity_table(table)]
    cfg = build_config({}, ["model.n_layer=2", "model.n_embd=32", "model.n_head=2", "model.n_positions=160"])
    tok = train_word_tokenizer(texts + ["Response: Facts: - Fact:"])
    save_model(build_gpt2(cfg.model, tok, seed=0), tok, directory / "model")
    return directory / "model"
