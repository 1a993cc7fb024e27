"""WikiBios prompts (paper §5.1, App. E): "Write a biography for NAME." -> the entry's first sentence.

Default columns, tried in order (override any with `data.fields`):
- name: `name` (e.g. a prepared bios file), `title` (`wikimedia/wikipedia`-style dumps), `input_text.context`
  (the HF `wiki_bio` dataset, lower-cased article title);
- text: `text` (Wikipedia dumps), `target_text` (`wiki_bio`, PTB-tokenized; its " ." sentence ends are handled).
"""

from __future__ import annotations

from pathlib import Path

from halluray.data.source import Column, Fields, clean, open_source, to_dataset
from halluray.data.text import first_sentence

DEFAULT_FIELDS: dict[str, tuple[Column, ...]] = {
    "name": ("name", "title", "input_text.context"),
    "text": ("text", "target_text"),
}
PROMPT = "Write a biography for {name}."


def load_wikibios(path: str | Path, split: str | None = None, *, fields: dict[str, Column] | None = None,
                  subset: str | None = None, cache_dir: str | None = None):
    ds, where = open_source(path, split, subset=subset, cache_dir=cache_dir)
    cols = Fields(ds, where, "wikibios", DEFAULT_FIELDS, fields)
    records, skipped = [], 0
    for _, row in cols.read(ds):
        name, target = clean(row["name"]), first_sentence(clean(row["text"]))
        if name and target:
            records.append({"topic": name, "prompt": PROMPT.format(name=name), "target": target})
        else:
            skipped += 1
    return to_dataset(records, where, skipped)
