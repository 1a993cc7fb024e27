"""Prompt datasets through the `datasets` library, as records shaped like the synthetic world's.

Every loader returns a `datasets.Dataset` whose rows have `topic` (entity name, title or question id),
`prompt` and `target`; TriviaQA adds `answers` (accepted aliases), MMLU adds `choices` and `answer_index`,
the world adds `frequency`, fact tables add `answers`, `attribute`, `fame`, `answer_prefix` and `table`, entity
tables (long form) `fame`, `fame_quartile` and `table`.
Loaders take `path` (a local file, a local directory, or a hub dataset name — see `halluray.data.source`
for what each means and for the split rules), `split`, and `fields` (source column names overriding each
loader's documented defaults).

    load_prompts("wikibios", "bios_{split}.jsonl", "train", fields={"name": "title"})
    prompts_for(cfg, "sft")      # from an ExperimentConfig's `data` section
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from halluray.errors import InputError
from halluray.layout import WORLD_DATASETS, RunLayout
from halluray.models.chat import chat_formatter

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
    "fact_table": "halluray.data.fact_table:load_fact_table",
    "entity_table": "halluray.data.entity_prompts:load_entity_prompts",
}
LONG_FORM_DATASETS = ("world", "wikibios", "wikiplots", "entity_table")
"""Datasets whose responses are long form (facts checked one by one); the others are short answers."""


def load_prompts(dataset: str, path: str | Path, split: str | None = None, *, fields: dict | None = None,
                 subset: str | None = None, cache_dir: str | None = None, **options: Any) -> datasets.Dataset:
    """Load the prompt records of `dataset` (one of LOADERS) from `path`, split `split` of the source.

    `options` are extra keywords of that one loader (fact_table: `entity_splits`, `target_style`; entity_table:
    `entity_splits`, `split_seed`)."""
    if dataset not in LOADERS:
        raise InputError(f"unknown dataset '{dataset}' (known: {', '.join(LOADERS)})")
    module, _, name = LOADERS[dataset].partition(":")
    loader = getattr(importlib.import_module(module), name)
    return loader(path, split, fields=fields, subset=subset, cache_dir=cache_dir, **options)


def prompts_for(cfg: ExperimentConfig, split: str) -> datasets.Dataset:
    """The prompts of pipeline split `split` (sft, rm, ppo, val, eval) as the config's `data` section describes.

    For the world, `data.path` defaults to the run directory and the pipeline split is the world's split;
    for real datasets `data.path` is required and `data.split_map` names the source split to read; fact
    and entity tables are split by entity with `data.entity_splits`.
    """
    data = cfg.data
    is_world = data.dataset in WORLD_DATASETS
    path = data.path or (cfg.run_dir if is_world else None)
    if path is None:
        raise InputError(f"data.path must be set for dataset '{data.dataset}' (a local file or directory)")
    source_split = split if is_world else data.split_map.get(split, split)
    options = {"fact_table": {"entity_splits": dict(data.entity_splits), "target_style": data.target_style},
               "entity_table": {"entity_splits": dict(data.entity_splits), "split_seed": data.split_seed},
               }.get(data.dataset, {})
    ds = load_prompts(data.dataset, path, source_split, fields=dict(data.fields), subset=data.subset, **options)
    if not cfg.model.chat_template:
        return ds
    # Every stage then sees the same chat-formatted prompt: SFT targets, rollouts and rewards all agree.
    fmt = chat_formatter(str(RunLayout(cfg).base_model), cfg.model.system_prompt, cfg.model.trust_remote_code)
    return ds.remove_columns("prompt").add_column("prompt", [fmt(p) for p in ds["prompt"]])


READER_NOTES = "Notes on {topic}: {notes}\n\n{prompt}"
"""A prompt as the reader source (reward_data.standard_source: reader) is asked it."""


def reader_prompts(cfg: ExperimentConfig, split: str) -> list[str]:
    """The prompts of `split` as the reader source is asked them: each record's reference text (`target`) as
    notes before the question, in the same chat template and system prompt. The standard RM's data then come from
    a model that knows each entity's facts, as GPT-3.5 knows more than the policy in the paper, and still writes
    (and errs) as a model does. Notes in the user turn, not the system prompt: on 12 RM countries SmolLM2 then
    stated 1.7 true and 0.4 false claims per reply instead of 1.2 and 0.4."""
    raw = prompts_for(cfg.model_copy(update={"model": cfg.model.model_copy(update={"chat_template": False})}), split)
    texts = [READER_NOTES.format(topic=r["topic"], notes=r["target"], prompt=r["prompt"]) for r in raw]
    if not cfg.model.chat_template:
        return texts
    fmt = chat_formatter(str(RunLayout(cfg).base_model), cfg.model.system_prompt, cfg.model.trust_remote_code)
    return [fmt(t) for t in texts]


__all__ = ["LOADERS", "LONG_FORM_DATASETS", "load_prompts", "prompts_for", "reader_prompts"]
