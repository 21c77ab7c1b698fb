"""Vocabulary.from_tokenizer maps every token to its exact bytes, for every tokenizer family."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from constrain import Vocabulary, VocabType, VocabularyError
from tests import tokenizer_factory as tf
from tests.strategies import SMOLLM2_MISSING_BYTES


def concat_bytes(vocab: Vocabulary, ids: list[int]) -> bytes:
    return b"".join(vocab.token_bytes(i) for i in ids)


# ---------------------------------------------------------------- byte-level BPE
def test_byte_level_detected_and_specials_excluded():
    tok = tf.byte_level_bpe()
    vocab = Vocabulary.from_tokenizer(tok)
    assert vocab.vocab_type is VocabType.BYTE_LEVEL
    eos = tok.token_to_id("</s>")
    assert vocab.eos_token_ids == (eos,)
    for special in ("<unk>", "<s>", "</s>"):
        assert vocab.token_bytes(tok.token_to_id(special)) is None
    # Every single byte is a token in byte-level BPE.
    singles = {b for b in vocab.tokens if b is not None and len(b) == 1}
    assert len(singles) == 256
    assert vocab.token_bytes(tok.token_to_id("Ġ")) == b" "
    assert vocab.token_bytes(tok.token_to_id("Ċ")) == b"\n"


@given(st.text(max_size=60))
def test_byte_level_round_trip(text):
    tok = tf.byte_level_bpe()
    vocab = Vocabulary.from_tokenizer(tok)
    ids = tok.encode(text, add_special_tokens=False).ids
    assert concat_bytes(vocab, ids) == text.encode("utf-8")


# ---------------------------------------------------------------- SentencePiece byte fallback
def test_sentencepiece_detected_with_byte_tokens():
    tok = tf.sentencepiece_byte_fallback()
    vocab = Vocabulary.from_tokenizer(tok)
    assert vocab.vocab_type is VocabType.BYTE_FALLBACK
    assert vocab.token_bytes(tok.token_to_id("<0x0A>")) == b"\n"
    assert vocab.token_bytes(tok.token_to_id("<0xE6>")) == b"\xe6"
    assert vocab.token_bytes(tok.token_to_id("▁")) == b" "
    assert vocab.token_bytes(tok.token_to_id("<unk>")) is None


@given(st.text(max_size=60))
def test_sentencepiece_round_trip_including_byte_fallback(text):
    tok = tf.sentencepiece_byte_fallback()
    vocab = Vocabulary.from_tokenizer(tok)
    ids = tok.encode(text, add_special_tokens=False).ids
    assert concat_bytes(vocab, ids) == text.encode("utf-8")


@given(st.text(min_size=1, max_size=40))
def test_sentencepiece_prepend_adds_exactly_one_space(text):
    tok = tf.sentencepiece_byte_fallback(prepend=True)
    vocab = Vocabulary.from_tokenizer(tok)
    ids = tok.encode(text, add_special_tokens=False).ids
    assert concat_bytes(vocab, ids) == b" " + text.encode("utf-8")


# ---------------------------------------------------------------- plain vocabularies
def test_plain_detected():
    vocab = Vocabulary.from_tokenizer(tf.plain_bpe())
    assert vocab.vocab_type is VocabType.RAW


@given(st.text(alphabet=tf.plain_alphabet(), max_size=60))
def test_plain_round_trip(text):
    tok = tf.plain_bpe()
    vocab = Vocabulary.from_tokenizer(tok)
    ids = tok.encode(text, add_special_tokens=False).ids
    assert concat_bytes(vocab, ids) == text.encode("utf-8")


# ---------------------------------------------------------------- the default model's tokenizer
def test_smollm2_vocabulary(smollm2_tokenizer, smollm2_vocab):
    vocab = smollm2_vocab
    assert vocab.size == 49152
    assert vocab.vocab_type is VocabType.BYTE_LEVEL
    assert vocab.eos_token_ids == (smollm2_tokenizer.eos_token_id,)
    for special in smollm2_tokenizer.all_special_ids:
        assert vocab.token_bytes(special) is None
    assert vocab.n_text_tokens == 49152 - 17  # 17 special tokens <|endoftext|> ... <empty_output>




def test_smollm2_single_byte_coverage(smollm2_vocab):
    singles = {b[0] for b in smollm2_vocab.tokens if b and len(b) == 1}
    assert set(range(256)) - singles == SMOLLM2_MISSING_BYTES


spellable_text = st.text(
    alphabet=st.characters(
        codec="utf-8", exclude_categories=["Cs"]
    ).filter(lambda c: not set(c.encode("utf-8")) & SMOLLM2_MISSING_BYTES),
    max_size=80,
)


@given(spellable_text)
def test_smollm2_round_trip(smollm2_tokenizer, smollm2_vocab, text):
    ids = smollm2_tokenizer.encode(text, add_special_tokens=False)
    assert concat_bytes(smollm2_vocab, ids) == text.encode("utf-8")


# ---------------------------------------------------------------- vocab_size and bad input
def test_vocab_size_pads_with_never_allowed_ids():
    tok = tf.byte_level_bpe()
    vocab = Vocabulary.from_tokenizer(tok, vocab_size=tok.get_vocab_size() + 37)
    assert vocab.size == tok.get_vocab_size() + 37
    assert all(vocab.token_bytes(i) is None for i in range(tok.get_vocab_size(), vocab.size))


def test_vocab_size_smaller_than_eos_is_an_error():
    tok = tf.byte_level_bpe()
    with pytest.raises(VocabularyError, match="beyond vocab_size"):
        Vocabulary.from_tokenizer(tok, vocab_size=1, eos_token_ids=[tok.get_vocab_size() - 1])


def test_wordpiece_is_rejected_with_reason():
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordPiece({"[UNK]": 0, "a": 1, "##b": 2}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    with pytest.raises(VocabularyError, match="WordPiece"):
        Vocabulary.from_tokenizer(tok, eos_token_ids=[0])


def test_not_a_tokenizer():
    with pytest.raises(TypeError, match="expected a transformers or tokenizers tokenizer"):
        Vocabulary.from_tokenizer(object())


def test_from_tokens_and_eos_validation():
    vocab = Vocabulary.from_tokens(["a", "b", "ab", None], eos_token_ids=3)
    assert vocab.decode([2, 0, 3]) == b"aba"
    assert vocab.is_eos(3) and not vocab.is_eos(0)
    with pytest.raises(VocabularyError, match="outside the vocabulary"):
        Vocabulary.from_tokens(["a"], eos_token_ids=5)
    with pytest.raises(TypeError, match="must be bytes or None"):
        Vocabulary([1], eos_token_ids=[0])  # type: ignore[list-item]
