"""Offline toy tokenizers for the families whose text encoders are not CLIP (T5, Gemma).

The real ones are SentencePiece models downloaded with the weights; the toy ones are small unigram vocabularies
(letters, digits, punctuation, word starts) built in code with the same special tokens, padding and end-of-text
rules, so the pipelines' own tokenization code runs unchanged on them.
"""

from __future__ import annotations

import functools
import string
from typing import Any

#: Size of every toy tokenizer's vocabulary (the toy text encoders' embedding tables have this many rows).
TOY_VOCAB = 128


def _unigram(specials: list[str], unk: str, template: str) -> Any:
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    pieces = [("\u2581", -2.0)]
    pieces += [(c, -3.0) for c in string.ascii_lowercase + string.digits + string.punctuation]
    pieces += [("\u2581" + c, -2.5) for c in string.ascii_lowercase]
    vocab = [(s, 0.0) for s in specials] + pieces
    tok = Tokenizer(models.Unigram(vocab, unk_id=specials.index(unk), byte_fallback=False))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    marks = [t for t in specials if t in template]
    tok.post_processor = processors.TemplateProcessing(single=template,
                                                       special_tokens=[(t, specials.index(t)) for t in marks])
    return tok


def _reloaded(tokenizer: Any) -> Any:
    """The tokenizer as ``from_pretrained`` reads it back from its saved files (what a hub snapshot gives)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save_pretrained(tmp)
        return type(tokenizer).from_pretrained(tmp)


@functools.lru_cache(maxsize=1)
def toy_t5_tokenizer() -> Any:
    """T5's conventions: ``<pad>`` = 0, ``</s>`` = 1 appended to every sequence, ``<unk>`` = 2."""
    from transformers import T5TokenizerFast

    tok = _unigram(["<pad>", "</s>", "<unk>"], "<unk>", "$A </s>")
    return _reloaded(T5TokenizerFast(tokenizer_object=tok, eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
                                     extra_ids=0))


@functools.lru_cache(maxsize=1)
def toy_gemma_tokenizer() -> Any:
    """Gemma's conventions: ``<pad>`` = 0, ``<eos>`` = 1, ``<bos>`` = 2 prepended, ``<unk>`` = 3."""
    from transformers import GemmaTokenizerFast

    tok = _unigram(["<pad>", "<eos>", "<bos>", "<unk>"], "<unk>", "<bos> $A")
    return _reloaded(GemmaTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>",
                                        pad_token="<pad>", unk_token="<unk>"))
