"""A word-level tokenizer trained locally with `tokenizers`, wrapped as a `PreTrainedTokenizerFast`.

The vocabulary is frozen at training time and shipped with every checkpoint: retraining a
frequency-ordered vocabulary renumbers words and silently breaks saved models (docs/runtime.md#tokenizer).
"""

from __future__ import annotations

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
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, unk_token=UNK, eos_token=EOS, bos_token=EOS,
        clean_up_tokenization_spaces=False,
    )
    fast.padding_side = "left"  # decoder-only generation pads on the left
    return fast
