"""Samples SmolLM2-135M-Instruct's answers to "Tell me about <country>." for the entity checker's labelled set.

Two disjoint sets of countries from `builtin:countries`, drawn per fame quartile with a fixed seed:
- dev (6 per quartile, 2 samples each): read while the checker's rules were written;
- held-out (12 per quartile, 1 sample each): its claims were labelled by hand, before the checker ran on them,
  into tests/data/entity_claims_heldout.jsonl.
Chat template with `SYSTEM_PROMPT`, sampled as the pipeline samples (`halluray.models.generation.sample`: T=1,
top-p 1, transformers' default top-k 50), 60 new tokens, seed 0, one CPU thread. Writes
tests/data/entity_responses_{dev,heldout}.jsonl (entity, quartile, sample, prompt, response). Run once, by hand
(about a minute):

    python tests/data/make_entity_claims.py [--model runs/models/smollm2-135m-instruct-bf16]
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from halluray.data.entity_table import SYSTEM_PROMPT, Entity, countries, fame_quartiles
from halluray.models.generation import sample

SEED = 0
PER_QUARTILE = {"dev": 6, "heldout": 12}
SAMPLES = {"dev": 2, "heldout": 1}
MAX_NEW_TOKENS = 60
BATCH = 16


def draw(entities: list[Entity]) -> dict[str, list[tuple[Entity, int]]]:
    """Disjoint (entity, quartile) lists per set: within each quartile a seeded shuffle, dev first."""
    quartile = fame_quartiles(entities)
    rng = random.Random(SEED)
    sets: dict[str, list[tuple[Entity, int]]] = {name: [] for name in PER_QUARTILE}
    for q in (1, 2, 3, 4):
        members = [e for e in entities if quartile[e.name] == q]
        rng.shuffle(members)
        start = 0
        for name, n in PER_QUARTILE.items():
            sets[name] += [(e, q) for e in members[start:start + n]]
            start += n
    return sets


def chat(tokenizer, prompt: str) -> str:
    return tokenizer.apply_chat_template([{"role": "system", "content": SYSTEM_PROMPT},
                                          {"role": "user", "content": prompt}], tokenize=False,
                                         add_generation_prompt=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="runs/models/smollm2-135m-instruct-bf16")
    args = parser.parse_args()
    torch.set_num_threads(1)
    tokenizer = AutoTokenizer.from_pretrained(args.model, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(args.model).eval()
    for name, drawn in draw(countries()).items():
        jobs = [(e, q, s) for e, q in drawn for s in range(SAMPLES[name])]
        responses = sample(model, tokenizer, [chat(tokenizer, e.prompt) for e, _, _ in jobs],
                           max_new_tokens=MAX_NEW_TOKENS, temperature=1.0, batch_size=BATCH, seed=SEED)
        path = Path(__file__).with_name(f"entity_responses_{name}.jsonl")
        path.write_text("".join(json.dumps({"entity": e.name, "quartile": q, "sample": s, "prompt": e.prompt,
                                            "response": r}, ensure_ascii=False) + "\n"
                                for (e, q, s), r in zip(jobs, responses)), encoding="utf-8")
        print(f"wrote {path} ({len(jobs)} responses)")


if __name__ == "__main__":
    main()
