"""Prompt datasets through the `datasets` library, as records shaped like the synthetic world's.

Every loader returns a `datasets.Dataset` whose rows have `topic` (entity name, title or question id),
`prompt` and `target`; TriviaQA adds `answers` (accepted aliases), MMLU adds `choices` and `answer_index`,
the world adds `frequency`. Loaders take `path` (a local file, a local directory, or a hub dataset name —
see `halluray.data.source` for what each means and for the split rules), `split`, and `fields` (source
column names overriding each loader's documented defaults).

    load_prompts("wikibios", "bios_{split}.jsonl", "train", fields={"name": "title"})
    prompts_for(cfg, "sft")      # from an ExperimentConfig's `data` section
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING

from halluray.errors import InputError

if TYPE_CHECKING:
    import datasets

    from halluray.config import ExperimentConfig

# dataset name (DataConfig.dataset) -> "module:function", imported on first use (`datasets` is slow to import).
LOADERS = {
    "world": "halluray.data.world:load_world",
    "world_qa": "halluray.data.world_qa:load_world_qa",
    "wikibios": "halluray.data.wikibios:load_wikibios",
    "wikiplots": "halluray.data.wikiplots:load_wikiplots",
    "triviaqa": "halluray.data.triviaqa:load_triviaqa",
    "mmlu": "halluray.data.mmlu:load_mmlu",
}


def load_prompts(dataset: str, path: str | Path, split: str | None = None, *, fields: dict | None = None,
                 subset: str | None = None, cache_dir: str | None = None) -> "datasets.Dataset":
    """Load the prompt records of `dataset` (one of LOADERS) from `path`, split `split` of the source."""
    if dataset not in LOADERS:
        raise InputError(f"unknown dataset '{dataset}' (known: {', '.join(LOADERS)})")
    module, _, name = LOADERS[dataset].partition(":")
    loader = getattr(importlib.import_module(module), name)
    return loader(path, split, fields=fields, subset=subset, cache_dir=cache_dir)


def prompts_for(cfg: "ExperimentConfig", split: str) -> "datasets.Dataset":
    """The prompts of pipeline split `split` (sft, rm, ppo, eval) as the config's `data` section describes.

    For the world, `data.path` defaults to the run directory and the pipeline split is the world's split;
    for real datasets `data.path` is required and `data.split_map` names the source split to read.
    """
    data = cfg.data
    is_world = data.dataset in ("world", "world_qa")
    path = data.path or (cfg.run_dir if is_world else None)
    if path is None:
        raise InputError(f"data.path must be set for dataset '{data.dataset}' (a local file or directory)")
    source_split = split if is_world else data.split_map.get(split, split)
    return load_prompts(data.dataset, path, source_split, fields=dict(data.fields), subset=data.subset)


__all__ = ["LOADERS", "load_prompts", "prompts_for"]
