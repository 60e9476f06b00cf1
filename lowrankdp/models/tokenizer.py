"""Byte-level BPE tokenizer of the embedded tiny model (``tokenizers`` library).

- Byte-level: the initial alphabet is all 256 bytes, so any text (any script, emoji, digits,
  punctuation) encodes without an unknown token and decodes back exactly.
- Digits are split into single-digit tokens before BPE (``Digits(individual_digits=True)``), so
  phone numbers, IDs and canary secrets become one token per digit, whatever digits the
  pretraining text happened to contain.
- Special tokens: ``<|endoftext|>`` (id 0; eos and bos, as in Pythia) and ``<|padding|>`` (id 1).
- Offsets are trimmed of the leading space (``trim_offsets=True``), so a token " Smith" maps to
  the characters of "Smith" only — what span masks need.

Training is deterministic for a given corpus and ``tokenizers`` version (single-threaded, and
checked in ``tests/test_models.py``).
"""

from __future__ import annotations

import os
from typing import Iterable

__all__ = ["EOS_TOKEN", "PAD_TOKEN", "train_tokenizer", "wrap_tokenizer"]

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|padding|>"


def train_tokenizer(texts: Iterable[str], *, vocab_size: int, model_max_length: int):
    """Train the byte-level BPE on ``texts``; return a ``transformers`` fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[EOS_TOKEN, PAD_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    return wrap_tokenizer(tok, model_max_length=model_max_length)


def wrap_tokenizer(tok, *, model_max_length: int):
    """Wrap a ``tokenizers.Tokenizer`` as ``transformers.PreTrainedTokenizerFast``."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=EOS_TOKEN,
        bos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        model_max_length=model_max_length,
        padding_side="right",
        clean_up_tokenization_spaces=False,
    )
