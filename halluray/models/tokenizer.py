"""A word-level tokenizer trained locally with `tokenizers`, wrapped as a `PreTrainedTokenizerFast`.

The vocabulary is frozen at training time and shipped with every checkpoint: retraining a
frequency-ordered vocabulary renumbers words and silently breaks saved models (docs/runtime.md#tokenizer).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from halluray.world.templates import EOS

PAD, UNK = "<pad>", "<unk>"


def train_word_tokenizer(texts: Iterable[str]) -> PreTrainedTokenizerFast:
    """Every whitespace-separated word of `texts` becomes one token (min frequency 1)."""
    tok = Tokenizer(models.WordLevel(unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.WordLevelTrainer(special_tokens=[PAD, UNK, EOS], min_frequency=1)
    tok.train_from_iterator(texts, trainer=trainer)
    return _wrapped(tok)


def with_words(tokenizer: PreTrainedTokenizerFast, words: Iterable[str]) -> PreTrainedTokenizerFast:
    """A copy of a word-level `tokenizer` whose vocabulary also has `words`: each one it lacks gets the next
    free id, so every id it had keeps its word (a model's embedding rows keep their meaning; resize its
    embeddings to the new length). A word added as an "added token" instead would be cut out of longer words."""
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    if spec["model"]["type"] != "WordLevel":
        raise ValueError(f"with_words extends a word-level vocabulary, not a {spec['model']['type']} one")
    vocab = spec["model"]["vocab"]
    for word in words:
        if word not in vocab:
            vocab[word] = max(vocab.values()) + 1
    return _wrapped(Tokenizer.from_str(json.dumps(spec)))


def _wrapped(tok: Tokenizer) -> PreTrainedTokenizerFast:
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, unk_token=UNK, eos_token=EOS, bos_token=EOS,
        clean_up_tokenization_spaces=False,
    )
    fast.padding_side = "left"  # decoder-only generation pads on the left
    return fast
