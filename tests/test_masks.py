"""Span → token masks on tokenizer families built offline: byte-level BPE (with and without offset
trimming), WordPiece (BERT-style, special tokens) and Unigram (Metaspace "▁")."""

from __future__ import annotations

import pytest

pytest.importorskip("tokenizers")
transformers = pytest.importorskip("transformers")

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers  # noqa: E402

from lowrankdp.data import Span, generate_dataset  # noqa: E402
from lowrankdp.data.masks import encode_with_mask, token_sensitivity_mask, token_span_types  # noqa: E402


@pytest.fixture(scope="module")
def corpus():
    ds = generate_dataset("customersim", seed=2, sizes={"train": 60, "valid": 0, "test": 0}, canary_repeats=2)
    sb = generate_dataset("synbio", seed=2, sizes={"train": 60, "valid": 0, "test": 0}, canary_repeats=0)
    return list(ds["train"]) + list(sb["train"])


def _bpe(texts, trim):
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=trim)
    tr = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>"],
                             initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, tr)
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>")


def _wordpiece(texts):
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tr = trainers.WordPieceTrainer(vocab_size=400, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]"],
                                   show_progress=False)
    tok.train_from_iterator(texts, tr)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]",
                                                       special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                                cls_token="[CLS]", sep_token="[SEP]")


def _unigram(texts):
    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tr = trainers.UnigramTrainer(vocab_size=300, special_tokens=["<pad>", "<unk>"], unk_token="<unk>",
                                 show_progress=False)
    tok.train_from_iterator(texts, tr)
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>")


@pytest.fixture(scope="module")
def tokenizers_(corpus):
    texts = [r.text for r in corpus]
    return {"bpe-trim": _bpe(texts, True), "bpe-notrim": _bpe(texts, False),
            "wordpiece": _wordpiece(texts), "unigram": _unigram(texts)}


FAMILIES = ["bpe-trim", "bpe-notrim", "wordpiece", "unigram"]


def _check_round_trip(text, spans, offsets, mask):
    """Every non-space character of a span lies in a sensitive token; every sensitive token covers a
    non-space character of a span; checked character by character (independent of the implementation)."""
    in_span = [False] * len(text)
    for s in spans:
        for p in range(s.start, s.end):
            in_span[p] = not text[p].isspace()
    covered = [False] * len(text)
    last = max((b for (a, b) in offsets), default=0)
    for (a, b), m in zip(offsets, mask):
        if m:
            assert any(in_span[a:b]), (text[a:b], a, b)
            for p in range(a, b):
                covered[p] = True
        else:
            assert not any(in_span[a:b]), ("missed", text[a:b])
    for p in range(min(len(text), last)):
        if in_span[p]:
            assert covered[p], (p, text[p])


@pytest.mark.parametrize("family", FAMILIES)
def test_round_trip_on_generated_records(family, tokenizers_, corpus):
    tok = tokenizers_[family]
    recs = corpus[:40] + corpus[-20:]
    enc = encode_with_mask(tok, [r.text for r in recs], [r.spans for r in recs], max_length=4096,
                           padding=False)
    n_sens = 0
    for r, ids, offs, mask, types in zip(recs, enc["input_ids"], enc["offset_mapping"], enc["sensitive_mask"],
                                         enc["sensitive_types"]):
        assert len(ids) == len(offs) == len(mask) == len(types)
        _check_round_trip(r.text, r.spans, offs, mask)
        n_sens += sum(mask)
        assert all((t is not None) == bool(m) for t, m in zip(types, mask))
        # decoding the sensitive tokens of a span gives back the value (normalisation aside)
        for s in r.spans:
            idx = [i for i, (a, b) in enumerate(offs) if mask[i] and a < s.end and b > s.start]
            assert {types[i] for i in idx} == {s.type}
            dec = tok.decode([ids[i] for i in idx]).replace(" ", "").lower()
            value = r.text[s.start:s.end].replace(" ", "").lower()
            assert value in dec, (family, value, dec)
    assert 0 < n_sens < sum(map(len, enc["input_ids"]))


def test_leading_space_does_not_matter(tokenizers_, corpus):
    """Byte-level BPE with and without trimmed offsets gives the same tokens and the same mask."""
    a, b = tokenizers_["bpe-trim"], tokenizers_["bpe-notrim"]
    recs = corpus[:30]
    ea = encode_with_mask(a, [r.text for r in recs], [r.spans for r in recs], max_length=4096, padding=False)
    eb = encode_with_mask(b, [r.text for r in recs], [r.spans for r in recs], max_length=4096, padding=False)
    assert ea["input_ids"] == eb["input_ids"]
    assert ea["offset_mapping"] != eb["offset_mapping"]  # the untrimmed offsets include the "Ġ" space
    assert ea["sensitive_mask"] == eb["sensitive_mask"]
    # the naive interval rule on untrimmed offsets would differ only if a span touches a space; with a
    # span that carries a trailing space, the next "Ġword" token must stay non-sensitive
    text = "Hi Ann Lee thanks"
    spans = [Span(3, 11, "name")]  # "Ann Lee " (stray trailing space)
    enc = encode_with_mask(b, [text], [spans], max_length=64, padding=False)
    toks = [text[x:y] for x, y in enc["offset_mapping"][0]]
    sens = [t for t, m in zip(toks, enc["sensitive_mask"][0]) if m]
    assert "".join(sens).replace(" ", "") == "AnnLee", toks
    naive = token_sensitivity_mask(enc["offset_mapping"][0], spans)  # no text: plain interval overlap
    assert sum(naive) > sum(enc["sensitive_mask"][0])  # the naive rule marks " thanks" too


@pytest.mark.parametrize("family", FAMILIES)
def test_span_starting_mid_word(family, tokenizers_):
    tok = tokenizers_[family]
    text = "refXQ7Z9ABCDEF and order 123-45678-9012x today"
    spans = [Span(3, 13, "tracking_number"), Span(25, 39, "order_number")]  # both touch a word inside
    enc = encode_with_mask(tok, [text], [spans], max_length=128, padding=False)
    offs, mask = enc["offset_mapping"][0], enc["sensitive_mask"][0]
    _check_round_trip(text, spans, offs, mask)
    # the token holding "f" of "ref" is sensitive only if it also holds "X"
    first = [i for i, (a, b) in enumerate(offs) if a <= 3 < b][0]
    assert mask[first] == 1
    for w in (" and ", " today"):
        lo = text.index(w) + 1
        hi = lo + len(w.strip())
        inside = [j for j, (a, b) in enumerate(offs) if b > a and a >= lo - 1 and b <= hi]
        assert inside and all(mask[j] == 0 for j in inside), (family, w)
    # the partial-word neighbours are sensitive: "ref"+"X..." and "...9012"+"x" share tokens with spans
    last = [i for i, (a, b) in enumerate(offs) if a < 39 <= b - 1 or (a <= 38 < b)][0]
    assert mask[last] == 1


def test_special_and_padding_tokens_never_sensitive(tokenizers_):
    tok = tokenizers_["wordpiece"]
    texts = ["Ann Lee", "Call 555-123-4567 now please, Ann Lee"]
    spans = [[Span(0, 7, "name")], [Span(5, 17, "phone"), Span(30, 37, "name")]]
    enc = encode_with_mask(tok, texts, spans, max_length=64)
    ids, att, mask = enc["input_ids"], enc["attention_mask"], enc["sensitive_mask"]
    assert len(ids[0]) == len(ids[1])
    assert ids[0][0] == tok.cls_token_id and mask[0][0] == 0
    sep = ids[0].index(tok.sep_token_id)
    assert mask[0][sep] == 0 and mask[0][1] == 1
    pad = [i for i, a in enumerate(att[0]) if a == 0]
    assert pad and all(ids[0][i] == tok.pad_token_id and mask[0][i] == 0 for i in pad)
    assert enc["offset_mapping"][0][0] == (0, 0)


def test_truncation_padding_side_and_tensors(tokenizers_, corpus):
    tok = tokenizers_["bpe-trim"]  # no pad token: falls back to eos
    recs = corpus[:3]
    enc = encode_with_mask(tok, [r.text for r in recs], [r.spans for r in recs], max_length=16,
                           return_tensors="np")
    assert enc["input_ids"].shape == (3, 16) == enc["sensitive_mask"].shape
    full = encode_with_mask(tok, [r.text for r in recs], [r.spans for r in recs], max_length=4096,
                            padding=False)
    assert enc["sensitive_mask"][0].tolist() == full["sensitive_mask"][0][:16]
    tok.padding_side = "left"
    try:
        e2 = encode_with_mask(tok, ["Ann", "Ann Lee is here"], [[Span(0, 3, "name")], None], max_length=32)
    finally:
        tok.padding_side = "right"
    assert e2["attention_mask"][0][0] == 0 and e2["attention_mask"][0][-1] == 1
    assert e2["input_ids"][0][0] == tok.eos_token_id
    assert e2["sensitive_mask"][0][-1] == 1 and sum(e2["sensitive_mask"][1]) == 0


def test_token_mask_unit_cases():
    offsets = [(0, 0), (0, 2), (2, 5), (5, 6), (6, 9), (0, 0)]
    text = "HiAnn Lee"
    assert token_sensitivity_mask(offsets, [Span(2, 9, "name")], text=text) == [0, 0, 1, 0, 1, 0]
    assert token_sensitivity_mask(offsets, [(3, 4)]) == [0, 0, 1, 0, 0, 0]
    assert token_sensitivity_mask(offsets, None) == [0] * 6
    assert token_sensitivity_mask(offsets, [{"start": 4, "end": 7, "type": "x"}]) == [0, 0, 1, 1, 1, 0]
    assert token_span_types(offsets, [Span(0, 2, "a"), Span(6, 9, "b")]) == [None, "a", None, None, "b", None]


def test_rejects_bad_input(tokenizers_):
    tok = tokenizers_["unigram"]
    with pytest.raises(ValueError, match="one entry per text"):
        encode_with_mask(tok, ["a", "b"], [None], max_length=8)
    with pytest.raises(ValueError, match="max_length"):
        encode_with_mask(tok, ["a"], [None], max_length=0)
    with pytest.raises(ValueError, match="single string"):
        encode_with_mask(tok, "abc", [None], max_length=8)

    class Slow:
        is_fast = False
    with pytest.raises(ValueError, match="fast tokenizer"):
        encode_with_mask(Slow(), ["a"], [None], max_length=8)


def test_mask_matches_brute_force_definition():
    """Random texts, offsets (possibly overlapping/empty) and spans vs the definition, char by char."""
    import random

    rng = random.Random(0)
    alphabet = "ab \tC\u00a0d\n\u3000é😀"
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        n = len(text)
        spans = []
        for _ in range(rng.randint(0, 3)):
            a = rng.randint(0, max(n - 1, 0))
            spans.append(Span(a, rng.randint(a + 1, n + 1) if n else a + 1, rng.choice("xyz")))
        offsets = []
        for _ in range(rng.randint(0, 12)):
            a = rng.randint(0, n)
            offsets.append((a, rng.randint(a, n)))
        want_mask, want_type = [], []
        for a, b in offsets:
            hits = [(p, s) for p in range(a, b) if not text[p].isspace()
                    for s in sorted(spans) if s.start <= p < s.end]
            want_mask.append(1 if hits else 0)
            want_type.append(min(hits, key=lambda h: (h[0], h[1]))[1].type if hits else None)
        assert token_sensitivity_mask(offsets, spans, text=text) == want_mask, (text, spans, offsets)
        assert token_span_types(offsets, spans, text=text) == want_type, (text, spans, offsets)
