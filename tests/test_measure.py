"""Measurements of a causal LM (lowrankdp.measure) on tiny models trained here, on CPU.

World (module fixture, ~25 s on a loaded 2-core CPU): a byte-level BPE tokenizer (``tokenizers``, 300
tokens, trained on public text only, so digits merge into multi-digit tokens for some secrets) and
GPT-NeoX models with 2 layers, width 64:

- ``base``: trained on 128 *public* records (never sees members or non-members);
- ``target``: ``base`` further trained on 64 *member* records plus 10 copies of the canary
  "My ID is 4821." (4-digit secret: candidate space |R| = 10⁴, log₂|R| = 13.29 bits);
- ``untrained``: fresh random weights.

Members and non-members (64 each) are drawn i.i.d. from the same generator, so for ``base`` the labels
are exchangeable and any AUC departure from ½ is chance.
"""

from __future__ import annotations

import copy
import json
import math
import random

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from lowrankdp import measure  # noqa: E402
from lowrankdp.attacks.exposure import exposure, random_exposure_moments  # noqa: E402
from lowrankdp.data import Dataset, Record, Span  # noqa: E402
from lowrankdp.metrics import auc  # noqa: E402

FIRST = ["Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy", "Mallory",
         "Oscar", "Peggy", "Rupert", "Sybil", "Trent", "Victor", "Walter"]
LAST = ["Smith", "Jones", "Brown", "Taylor", "Wilson", "Davies", "Evans", "Thomas", "Johnson", "Roberts"]
SECRET = "4821"
PREFIX = "My ID is "
CANARY_META = {"template": PREFIX + "{secret}.", "secret": SECRET, "alphabet": "0123456789", "length": 4,
               "space_size": 10_000, "repeats": 10}


def _record(rng: random.Random, rid: str, split: str) -> Record:
    name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    phone = "".join(rng.choice("0123456789") for _ in range(7))
    pre, mid = "Customer ", " called from "
    text = pre + name + mid + phone + " about an order."
    a = len(pre)
    b = len(pre + name + mid)
    return Record(rid, text, split, (Span(a, a + len(name), "name"), Span(b, b + 7, "phone")), False)


def _tokenizer(texts):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    trainer = trainers.BpeTrainer(vocab_size=300, min_frequency=2, show_progress=False,
                                  special_tokens=["<|endoftext|>", "<|padding|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>",
                                   bos_token="<|endoftext|>", pad_token="<|padding|>")


def _model(vocab: int, seed: int):
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(seed)
    cfg = GPTNeoXConfig(vocab_size=vocab, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=256, max_position_embeddings=64, rotary_pct=0.25)
    return GPTNeoXForCausalLM(cfg)


def _train(model, tok, texts, *, steps: int, lr: float, seed: int):
    g = torch.Generator().manual_seed(seed)
    enc = tok(texts, padding=True, return_tensors="pt")
    ids, att = enc["input_ids"], enc["attention_mask"]
    labels = ids.masked_fill(att == 0, -100)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    for _ in range(steps):
        idx = torch.randperm(len(texts), generator=g)[:32]
        loss = model(input_ids=ids[idx], attention_mask=att[idx], labels=labels[idx]).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return model


@pytest.fixture(scope="module")
def world():
    torch.set_num_threads(1)
    rng = random.Random(0)
    public = [_record(rng, f"public-{i}", "train") for i in range(128)]
    members = [_record(rng, f"train-{i}", "train") for i in range(64)]
    nonmembers = [_record(rng, f"test-{i}", "test") for i in range(64)]
    canaries = [Record(f"train-canary-{j}", PREFIX + SECRET + ".", "train",
                       (Span(len(PREFIX), len(PREFIX) + 4, "canary"),), True) for j in range(10)]
    tok = _tokenizer([r.text for r in public] + [f"{PREFIX}{rng.randrange(10_000):04d}." for _ in range(50)])
    base = _train(_model(len(tok), 0), tok, [r.text for r in public], steps=40, lr=1e-2, seed=0)
    target = _train(copy.deepcopy(base), tok, [r.text for r in members + canaries], steps=100, lr=5e-3, seed=1)
    untrained = _model(len(tok), 123).eval()
    meta = {"canary": dict(CANARY_META, record_ids=[c.id for c in canaries])}
    ds = Dataset({"train": members[:32] + canaries + members[32:], "test": nonmembers}, meta)
    return {"tok": tok, "base": base, "target": target, "untrained": untrained, "ds": ds,
            "members": members, "nonmembers": nonmembers}


@pytest.fixture(scope="module")
def target_report(world):
    return measure.measure_all(world["target"], world["tok"], world["ds"], base_model=world["base"],
                               progress=False, n_bootstrap=200)


@pytest.fixture(scope="module")
def base_report(world):
    return measure.measure_all(world["base"], world["tok"], world["ds"], progress=False, n_bootstrap=200)


# ------------------------------------------------------------------------------- hand computations

def _hand_token_logprobs(model, ids):
    """One sequence, no batching or padding: log-softmax row t-1 at token t."""
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].double()
    lp = torch.log_softmax(logits, dim=-1)
    return np.array([lp[t - 1, ids[t]].item() for t in range(1, len(ids))])


def _hand_flags(tok, text, spans, type_=None):
    """Sensitive flag per token from the offsets: overlaps a span on a non-space character."""
    enc = tok(text, return_offsets_mapping=True)
    flags = []
    for a, b in enc["offset_mapping"]:
        hit = False
        for s in spans:
            if type_ is not None and s.type != type_:
                continue
            hit |= any(not text[p].isspace() for p in range(max(a, s.start), min(b, s.end)))
        flags.append(hit)
    return enc["input_ids"], np.array(flags)


def test_record_logprobs_match_single_sequence_forward(world):
    """Batched, length-sorted, right-padded pass = one unpadded forward per record."""
    tok, model = world["tok"], world["target"]
    texts = [r.text for r in world["members"][:5]] + ["Hi", PREFIX + SECRET + ".", "x"]
    ids = [np.array(tok(t)["input_ids"]) for t in texts]
    got = measure.record_logprobs(model, ids, batch_size=3)
    for i, t in enumerate(ids):
        want = _hand_token_logprobs(model, list(t)) if len(t) > 1 else np.zeros(0)
        assert got[i].shape == (len(t) - 1,)
        np.testing.assert_allclose(got[i], want, atol=2e-5)


def test_loss_summary_by_hand():
    lp = [np.log([0.5, 0.25, 0.8]), np.log([0.1, 0.9]), np.log([0.7])]
    # masks include the (never predicted) first token
    masks = [np.array([1, 1, 0, 1], bool), np.array([1, 0, 0], bool), np.array([0, 1], bool)]
    s = measure.loss_summary(lp, masks)
    rec0 = [-math.log(0.5), -math.log(0.8)]
    rec2 = [-math.log(0.7)]
    assert s["n_tokens"] == 3 and s["n_records"] == 2
    assert s["loss_token"] == pytest.approx(np.mean(rec0 + rec2))
    assert s["loss_seq_mean"] == pytest.approx((np.mean(rec0) + np.mean(rec2)) / 2)
    assert s["quantiles"]["min"] == pytest.approx(min(np.mean(rec0), np.mean(rec2)))
    assert s["token_quantiles"]["median"] == pytest.approx(np.median(rec0 + rec2))
    empty = measure.loss_summary(lp, [np.zeros(4, bool), np.zeros(3, bool), np.zeros(2, bool)])
    assert empty["loss_token"] is None and empty["quantiles"]["min"] is None and empty["n_tokens"] == 0
    with pytest.raises(ValueError, match="one flag per token"):
        measure.loss_summary(lp, [np.zeros(3, bool), np.zeros(3, bool), np.zeros(2, bool)])


def test_measure_all_equals_hand_computation(world):
    """Every loss key of measure_all on a 3+2-record dataset, recomputed by hand."""
    tok, model, base = world["tok"], world["target"], world["base"]
    train = world["members"][:3]
    test = world["nonmembers"][:2]
    ds = Dataset({"train": train, "test": test}, {})
    out = measure.measure_all(model, tok, ds, base_model=base, progress=False, n_bootstrap=50, batch_size=2)

    def per_record(m, records, sensitive, type_=None):
        toks, seqs = [], []
        for r in records:
            ids, flags = _hand_flags(tok, r.text, r.spans, type_)
            lp = _hand_token_logprobs(m, ids)
            sel = -lp[flags[1:]] if sensitive else -lp[~flags[1:]]
            toks.extend(sel)
            seqs.append(sel.mean())
        return np.array(toks), np.array(seqs)

    tok_s, seq_s = per_record(model, train, True)
    assert out["sensitive_loss_token"] == pytest.approx(tok_s.mean(), rel=1e-5)
    assert out["sensitive_loss_seq_mean"] == pytest.approx(seq_s.mean(), rel=1e-5)
    q = out["sensitive_loss_quantiles"]
    assert q["min"] == pytest.approx(seq_s.min(), rel=1e-5)
    assert q["q05"] == pytest.approx(np.quantile(seq_s, 0.05), rel=1e-5)
    assert q["q25"] == pytest.approx(np.quantile(seq_s, 0.25), rel=1e-5)
    assert q["median"] == pytest.approx(np.median(seq_s), rel=1e-5)
    tok_u, seq_u = per_record(model, test, False)
    assert out["utility_loss"] == pytest.approx(tok_u.mean(), rel=1e-5)
    assert out["utility_loss_seq_mean"] == pytest.approx(seq_u.mean(), rel=1e-5)
    # sensitive tokens of the test split, and the memorisation gap (test − train, token-averaged)
    tok_st, seq_st = per_record(model, test, True)
    assert out["sensitive_loss_test_token"] == pytest.approx(tok_st.mean(), rel=1e-5)
    assert out["sensitive_loss_test_seq_mean"] == pytest.approx(seq_st.mean(), rel=1e-5)
    assert out["memorization_gap_token"] == pytest.approx(tok_st.mean() - tok_s.mean(), rel=1e-4, abs=1e-6)
    btok_s, _ = per_record(base, train, True)
    btok_u, _ = per_record(base, test, False)
    btok_st, _ = per_record(base, test, True)
    assert out["base_sensitive_loss_token"] == pytest.approx(btok_s.mean(), rel=1e-5)
    assert out["base_sensitive_loss_test_token"] == pytest.approx(btok_st.mean(), rel=1e-5)
    assert out["memorization_gap_token_gain_vs_base"] == pytest.approx(
        (tok_st.mean() - tok_s.mean()) - (btok_st.mean() - btok_s.mean()), rel=1e-4, abs=1e-6)
    assert out["sensitive_loss_token_gain_vs_base"] == pytest.approx(btok_s.mean() - tok_s.mean(), rel=1e-4)
    assert out["utility_loss_gain_vs_base"] == pytest.approx(btok_u.mean() - tok_u.mean(), rel=1e-4, abs=1e-6)
    for typ in ("name", "phone"):
        t_tok, _ = per_record(model, train, True, typ)
        assert out["per_type"][typ]["sensitive_loss_token"] == pytest.approx(t_tok.mean(), rel=1e-5)
        assert out["per_type"][typ]["n_tokens"] == t_tok.size
    assert out["counts"]["n_sensitive_tokens"] == tok_s.size
    assert out["counts"]["n_utility_tokens"] == tok_u.size
    # the LOSS attack AUC is the metric's AUC of the hand-computed mean log-probs
    loss_in = [_hand_token_logprobs(model, tok(r.text)["input_ids"]).mean() for r in train]
    loss_out = [_hand_token_logprobs(model, tok(r.text)["input_ids"]).mean() for r in test]
    assert out["mia"]["loss"]["auc"] == pytest.approx(auc(loss_in, loss_out))
    # the sensitive-token attack: each record's mean log-prob over its sensitive tokens only
    assert np.isfinite(seq_s).all() and np.isfinite(seq_st).all()
    assert out["mia"]["sensitive"]["auc"] == pytest.approx(auc(-seq_s, -seq_st))
    assert out["exposure"] is None  # no canary in this dataset


# ----------------------------------------------------------------------------------------- exposure

@pytest.mark.parametrize("prefix_cache", [True, False])
def test_trie_scores_equal_full_forward(world, prefix_cache):
    """The trie-batched candidate log-likelihoods (with the prefix's KV cache, or the prefix prepended
    to each context) equal log p(continuation | shared prefix) from one plain forward per candidate
    (3-digit space; some secrets merge into multi-digit tokens)."""
    tok, model = world["tok"], world["target"]
    secrets = measure.candidate_strings("0123456789", 3, np.arange(1000))
    scores, st = measure.candidate_logprobs(model, tok, prefix=PREFIX, secrets=secrets, batch_size=7,
                                            return_stats=True, prefix_cache=prefix_cache)
    assert st["n_contexts"] < 3 * 1000 and st["shared_prefix_tokens"] == 3
    assert st["prefix_cache"] is prefix_cache
    lengths = {len(tok(PREFIX + s)["input_ids"]) for s in secrets}
    assert len(lengths) > 1, "fixture should produce secrets of different token lengths"
    rng = np.random.default_rng(0)
    for i in rng.choice(1000, size=40, replace=False):
        ids = tok(PREFIX + secrets[i])["input_ids"]
        lp = _hand_token_logprobs(model, ids)
        assert scores[i] == pytest.approx(lp[st["shared_prefix_tokens"] - 1:].sum(), abs=1e-4)


def test_candidate_strings_follow_canary_order():
    from lowrankdp.data import Canary

    c = Canary.from_meta(dict(CANARY_META, record_ids=[], alphabet="xyz", length=3, space_size=27, secret="xyz"))
    assert measure.candidate_strings("xyz", 3, np.arange(27)) == [c.candidate(i) for i in range(27)]
    assert measure.candidate_strings("0123456789", 4, [0, 4821, 9999]) == ["0000", "4821", "9999"]
    with pytest.raises(ValueError, match="indices"):
        measure.candidate_strings("01", 2, [4])


def test_memorised_canary_has_near_maximal_exposure(world, target_report):
    """10⁴ candidates: the model trained on 10 copies of the canary ranks it within the top 2
    (exposure ≥ log₂ 10⁴ − 1 = 12.29 bits); the base, which never saw it, does not."""
    e = target_report["exposure"]
    assert e["method"] == "exact" and e["space_size"] == 10_000 and e["n_scored"] == 10_000
    assert e["max_value"] == pytest.approx(math.log2(10_000))
    assert e["value"] >= e["max_value"] - 1.0
    fitted = measure.canary_exposure(world["target"], world["tok"], world["ds"].canary, max_candidates=0,
                                     sample_size=2000)
    assert fitted["method"] == "skewnorm" and fitted["n_scored"] == 2000
    lo, hi = fitted["interval"]
    assert lo <= e["value"] <= hi + 1e-9
    assert fitted["value"] >= lo  # far above every sampled candidate: the fit extrapolates upward


def test_exact_within_fitted_interval_for_unseen_canary(world):
    """Base model (canary unseen, mid-ranked): the exact exposure lies in the distribution-free interval
    reported with the fitted estimate."""
    c = world["ds"].canary
    exact = measure.canary_exposure(world["base"], world["tok"], c)
    fit = measure.canary_exposure(world["base"], world["tok"], c, max_candidates=9_999, sample_size=3000, seed=5)
    assert exact["method"] == "exact" and fit["method"] == "skewnorm"
    lo, hi = fit["interval"]
    assert lo <= exact["value"] <= hi
    assert exact["value"] < 6.0  # far from the 13.29-bit maximum


def test_untrained_model_gives_random_baseline(world):
    """An untrained model's scores do not depend on which secret was drawn, so over S random secrets the
    mean exposure must match the uniform-rank mean (≈1.44 bits for 10⁴) within 4·sd/√S."""
    tok, model = world["tok"], world["untrained"]
    secrets = measure.candidate_strings("0123456789", 4, np.arange(10_000))
    scores = measure.candidate_logprobs(model, tok, prefix=PREFIX, secrets=secrets)
    assert np.unique(scores).size > 9_900  # (almost) no ties
    rng = np.random.default_rng(11)
    S = 300
    vals = [exposure(canary_logprob=scores[i], candidate_logprobs=scores, space_size=10_000).value
            for i in rng.integers(0, 10_000, size=S)]
    mean, sd = random_exposure_moments(10_000)
    assert abs(np.mean(vals) - mean) < 4 * sd / math.sqrt(S), (np.mean(vals), mean)


# ---------------------------------------------------------------------------- membership inference

def test_mia_on_memorising_model_near_one(target_report):
    for name in ("loss", "zlib", "min_k", "reference"):
        rep = target_report["mia"][name]
        assert rep["n_in"] == 64 and rep["n_out"] == 64
        assert rep["auc"] >= 0.95, (name, rep["auc"])
        assert rep["auc_ci"][0] >= 0.9, (name, rep["auc_ci"])


def test_mia_on_model_that_saw_neither_near_half(base_report):
    """Null SE of the AUC (Mann–Whitney, no ties): sqrt((n_in + n_out + 1) / (12 n_in n_out))."""
    se = math.sqrt((64 + 64 + 1) / (12 * 64 * 64))
    for name in ("loss", "zlib", "min_k"):
        assert abs(base_report["mia"][name]["auc"] - 0.5) < 4 * se, (name, base_report["mia"][name]["auc"])
    assert base_report["mia"]["reference"] is None  # no base model given


def test_losses_and_gains_direction(target_report, base_report):
    """Memorisation lowers the sensitive-token loss on members well below the base's; gains are the
    differences of the reported losses; canaries are excluded from the loss measures."""
    r = target_report
    assert r["sensitive_loss_token"] < r["base_sensitive_loss_token"]
    assert r["base_sensitive_loss_token"] == pytest.approx(base_report["sensitive_loss_token"])
    assert r["sensitive_loss_token_gain_vs_base"] == pytest.approx(
        r["base_sensitive_loss_token"] - r["sensitive_loss_token"])
    assert r["per_type"]["phone"]["gain_vs_base"] > 1.0  # random digits: memorised, not learnable
    assert set(r["per_type"]) == {"name", "phone"}  # "canary" records excluded
    assert r["counts"]["n_canary_records_excluded"] == 10 and r["counts"]["n_train"] == 64
    q = r["sensitive_loss_quantiles"]
    assert q["min"] <= q["q05"] <= q["q25"] <= q["median"]


def _gap_and_se(model, tok, train, test):
    """Memorisation gap (test − train token-averaged sensitive loss) from one unbatched forward per
    record, and its standard error with records as the i.i.d. unit: each split's loss is a ratio
    Σ loss_i / Σ n_i, whose delta-method variance is var(loss_i − L·n_i) / (k · n̄²)."""
    def split(records):
        sums, ns = [], []
        for r in records:
            ids, flags = _hand_flags(tok, r.text, r.spans)
            sel = -_hand_token_logprobs(model, ids)[flags[1:]]
            sums.append(sel.sum())
            ns.append(sel.size)
        sums, ns = np.array(sums), np.array(ns, float)
        loss = sums.sum() / ns.sum()
        var = np.var(sums - loss * ns, ddof=1) / (len(ns) * ns.mean() ** 2)
        return loss, var

    l_tr, v_tr = split(train)
    l_te, v_te = split(test)
    return l_te - l_tr, math.sqrt(v_tr + v_te)


def test_memorization_gap_positive_after_memorising_zero_without(world, target_report, base_report):
    """The target, trained ~40 passes on the members, predicts their names and (random) phone digits far
    better than the non-members': gap > 0 by many standard errors. A model that saw neither split —
    untrained, or the base trained on public records only — has a gap within 4 standard errors of 0
    (members and non-members are i.i.d.), and the target's gap over the base's is its own gap minus that."""
    tok, members, nonmembers = world["tok"], world["members"], world["nonmembers"]
    gap = target_report["memorization_gap_token"]
    want, se = _gap_and_se(world["target"], tok, members, nonmembers)
    assert gap == pytest.approx(want, rel=1e-4)
    assert gap > 1.0 and gap > 8 * se, (gap, se)
    assert gap == pytest.approx(target_report["sensitive_loss_test_token"] - target_report["sensitive_loss_token"])

    ds = Dataset({"train": members, "test": nonmembers}, {})
    out = measure.measure_all(world["untrained"], tok, ds, progress=False, n_bootstrap=10)
    want_u, se_u = _gap_and_se(world["untrained"], tok, members, nonmembers)
    assert out["memorization_gap_token"] == pytest.approx(want_u, rel=1e-3, abs=1e-5)
    assert abs(out["memorization_gap_token"]) < 4 * se_u, (out["memorization_gap_token"], se_u)

    base_gap = base_report["memorization_gap_token"]
    _, se_b = _gap_and_se(world["base"], tok, members, nonmembers)
    assert abs(base_gap) < 4 * se_b, (base_gap, se_b)
    assert target_report["base_sensitive_loss_test_token"] == pytest.approx(base_report["sensitive_loss_test_token"])
    assert target_report["memorization_gap_token_gain_vs_base"] == pytest.approx(gap - base_gap, rel=1e-6)
    assert "base_sensitive_loss_test_token" not in base_report  # no base model given
    assert "memorization_gap_token_gain_vs_base" not in base_report


def test_result_keys_and_json(target_report):
    expected = {
        "sensitive_loss_token", "sensitive_loss_seq_mean", "sensitive_loss_quantiles",
        "sensitive_loss_token_quantiles", "utility_loss", "utility_loss_seq_mean",
        "base_sensitive_loss_token", "base_sensitive_loss_seq_mean", "base_utility_loss",
        "sensitive_loss_token_gain_vs_base", "sensitive_loss_seq_mean_gain_vs_base",
        "utility_loss_gain_vs_base", "per_type", "exposure", "mia", "counts", "settings", "seconds",
        "sensitive_loss_test_token", "sensitive_loss_test_seq_mean", "memorization_gap_token",
        "base_sensitive_loss_test_token", "memorization_gap_token_gain_vs_base",
    }
    assert set(target_report) == expected
    assert set(target_report["mia"]) == {"loss", "zlib", "min_k", "reference", "sensitive", "sensitive_reference"}
    assert {"value", "rank", "method", "space_size"} <= set(target_report["exposure"])
    assert set(target_report["sensitive_loss_quantiles"]) == {"min", "q05", "q25", "median"}
    json.dumps(target_report, allow_nan=False)  # plain JSON, no NaN/inf


def test_model_state_restored(world):
    model = world["target"]
    model.train()
    ds = Dataset({"train": world["members"][:4], "test": world["nonmembers"][:4]}, {})
    try:
        measure.measure_all(model, world["tok"], ds, progress=False, n_bootstrap=10, max_records=3)
        assert model.training
        assert next(model.parameters()).device.type == "cpu"
    finally:
        model.eval()


def test_max_records_subsamples(world):
    ds = Dataset({"train": world["members"], "test": world["nonmembers"]}, {})
    out = measure.measure_all(world["base"], world["tok"], ds, progress=False, n_bootstrap=10, max_records=10)
    assert out["counts"]["n_train"] == 10 and out["counts"]["n_test"] == 10


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(batch_size=0), "batch_size"),
        (dict(max_length=1), "max_length"),
        (dict(min_k=0.0), "min_k"),
        (dict(exposure_max_candidates=-1), "exposure_max_candidates"),
        (dict(max_records=1), "max_records"),
    ],
)
def test_bad_arguments(world, kwargs, match):
    with pytest.raises(ValueError, match=match):
        measure.measure_all(world["base"], world["tok"], world["ds"], progress=False, **kwargs)


def test_bad_datasets(world):
    tok, m = world["tok"], world["base"]
    with pytest.raises(ValueError, match="'test' split"):
        measure.measure_all(m, tok, Dataset({"train": world["members"][:2]}, {}), progress=False)
    with pytest.raises(ValueError, match="Dataset"):
        measure.measure_all(m, tok, {"train": []}, progress=False)
    other = _model(len(tok) + 5, 0)
    with pytest.raises(ValueError, match="vocabulary"):
        measure.measure_all(m, tok, world["ds"], base_model=other, progress=False)
    bad = Dataset({"train": world["members"][:2], "test": world["nonmembers"][:2]},
                  {"canary": dict(CANARY_META, record_ids=[], space_size=999)})
    with pytest.raises(ValueError, match="space_size"):
        measure.measure_all(m, tok, bad, progress=False, n_bootstrap=10)


@pytest.mark.gpu
def test_gpu_matches_cpu(world):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    tok, m = world["tok"], world["target"]
    ds = Dataset({"train": world["members"][:16], "test": world["nonmembers"][:16]}, world["ds"].meta)
    cpu = measure.measure_all(m, tok, ds, device="cpu", progress=False, n_bootstrap=10)
    gpu = measure.measure_all(m, tok, ds, device="cuda", progress=False, n_bootstrap=10)
    assert gpu["settings"]["device"].startswith("cuda")
    assert gpu["sensitive_loss_token"] == pytest.approx(cpu["sensitive_loss_token"], rel=1e-3)
    assert gpu["exposure"]["rank"] == cpu["exposure"]["rank"]
    assert next(m.parameters()).device.type == "cpu"  # moved back
