"""WikiBios prompts (paper §5.1, App. E): "Write a biography for NAME." -> the entry's first sentence.

Default columns, tried in order (override any with `data.fields`):
- name: `name` (e.g. a prepared bios file), `title` (`wikimedia/wikipedia`-style dumps), `input_text.context`
  (the HF `wiki_bio` dataset, lower-cased article title);
- text: `text` (Wikipedia dumps), `target_text` (`wiki_bio`, PTB-tokenized; its " ." sentence ends are handled).
"""

from __future__ import annotations

from pathlib import Path

from halluray.data.first_sentence import load_first_sentence_prompts
from halluray.data.source import Column

DEFAULT_FIELDS: dict[str, tuple[Column, ...]] = {
    "name": ("name", "title", "input_text.context"),
    "text": ("text", "target_text"),
}
PROMPT = "Write a biography for {name}."


def load_wikibios(path: str | Path, split: str | None = None, *, fields: dict[str, Column] | None = None,
                  subset: str | None = None, cache_dir: str | None = None):
    return load_first_sentence_prompts(path, split, dataset="wikibios", defaults=DEFAULT_FIELDS, topic="name",
                                       text="text", prompt=PROMPT, fields=fields, subset=subset, cache_dir=cache_dir)
