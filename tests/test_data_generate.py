"""Generators: gold spans are exactly the inserted values, determinism, split sizes, canaries."""

from __future__ import annotations

import json
import re

import pytest

from lowrankdp.data import DEFAULT_SIZES, generate, generate_dataset, load_dataset

SIZES = {"train": 200, "valid": 30, "test": 30}
K = 7

# Independent format checks of each value type (written from the spec, not from the generator code).
FORMAT = {
    "order_number": re.compile(r"\d{3}-\d{5}-\d{4}"),
    "phone": re.compile(r"(\(\d{3}\) \d{3}-\d{4}|\d{3}([-. ]?)\d{3}\2\d{4})"),
    "tracking_number": re.compile(r"[A-Z0-9]{10}"),
    "ssn": re.compile(r"\d{3}-\d{2}-\d{4}"),
    "email": re.compile(r"[a-z0-9._]+@[a-z0-9.-]+\.[a-z]{2,}"),
    "address": re.compile(r"\d+ [^,\n]+, [^,\n]+, [A-Z]{2} \d{5}"),
    "birthplace": re.compile(r"[A-Z][A-Za-z .'-]+, [A-Z][A-Za-z ]+"),
    "birth_date": re.compile(r"([A-Z][a-z]+ \d{1,2}, \d{4}|\d{1,2} [A-Z][a-z]+ \d{4}|\d{2}/\d{2}/\d{4}"
                             r"|\d{4}-\d{2}-\d{2})"),
    "name": re.compile(r"[A-Z][A-Za-z'-]+( [A-Z][A-Za-z'-]+)?"),
    "employer": re.compile(r"[A-Z].*\S"),
    "canary": re.compile(r"\d{6}"),
}
# Patterns that must never occur outside a gold span (completeness of the labels).
MUST_BE_LABELLED = {
    "customersim": [r"\d{3}-\d{5}-\d{4}", r"(?<![\w-])\d{3}[-. ]\d{3}[-. ]\d{4}(?![\w-])",
                    r"\b(?=[A-Z0-9]*\d)(?=[A-Z0-9]*[A-Z])[A-Z0-9]{10}\b"],
    "synbio": [r"(?<![\w-])\d{3}-\d{2}-\d{4}(?![\w-])", r"\S+@\S+\.\w+",
               r"(?<![\w-])\d{3}[-. ]\d{3}[-. ]\d{4}(?![\w-])", r"\b\d{5}\b"],
}


@pytest.fixture(scope="module", params=["customersim", "synbio"])
def generated(request, tmp_path_factory):
    kind = request.param
    out = tmp_path_factory.mktemp(kind)
    path = generate(kind, out_dir=out, seed=3, sizes=SIZES, canary_repeats=K)
    return kind, path, load_dataset(path)


def test_spans_match_values_exactly(generated):
    kind, _, ds = generated
    n_spans = 0
    for r in ds.records():
        assert r.spans is not None
        names = [r.text[s.start:s.end] for s in r.spans if s.type == "name"]
        full = max(names, key=len) if names else ""
        for s in r.spans:
            v = r.text[s.start:s.end]
            assert v == v.strip() and v, (r.id, s, v)
            assert FORMAT[s.type].fullmatch(v), (r.id, s.type, v)
            if s.type == "name":  # a mention is the full name, its first or its last word
                assert v in (full, *full.split(" ")), (r.id, v, full)
            n_spans += 1
        # spans sorted and disjoint, and never in the middle of a word
        for a, b in zip(r.spans, r.spans[1:]):
            assert a.end <= b.start
        for s in r.spans:
            assert s.start == 0 or not r.text[s.start - 1].isalnum(), (r.id, s)
            assert s.end == len(r.text) or not r.text[s.end].isalnum(), (r.id, s)
    assert n_spans > 5 * SIZES["train"]


def test_every_personal_value_is_labelled(generated):
    kind, _, ds = generated
    for r in ds.records():
        if r.canary:
            continue
        covered = [False] * len(r.text)
        for s in r.spans:
            covered[s.start:s.end] = [True] * (s.end - s.start)
        for pat in MUST_BE_LABELLED[kind]:
            for m in re.finditer(pat, r.text):
                assert all(covered[m.start():m.end()]), (r.id, pat, m.group())
        # every capitalised occurrence of the person's first and last name is a name span
        full = max((r.text[s.start:s.end] for s in r.spans if s.type == "name"), key=len)
        for word in full.split(" "):
            for m in re.finditer(rf"\b{re.escape(word)}\b", r.text):
                if any(s.start <= m.start() < s.end and s.type in ("email", "address", "employer",
                                                                 "birthplace") for s in r.spans):
                    continue  # e.g. a street or company named after the same surname
                assert covered[m.start()], (r.id, word)


def test_types_per_generator(generated):
    kind, _, ds = generated
    types = {s.type for r in ds.records() for s in r.spans}
    expected = {"customersim": {"name", "order_number", "phone", "address", "tracking_number", "canary"},
                "synbio": {"name", "birth_date", "birthplace", "address", "email", "phone", "employer",
                           "ssn", "canary"}}[kind]
    assert types == expected
    assert sorted(types) == ds.meta["span_types"]
    for r in ds.records():
        if not r.canary:  # every record carries every type of its generator
            assert {s.type for s in r.spans} == expected - {"canary"}, r.id


def test_split_sizes_and_canaries(generated):
    kind, path, ds = generated
    canary = ds.canary
    assert canary is not None
    assert ds.sizes() == {"train": SIZES["train"] + K, "valid": SIZES["valid"], "test": SIZES["test"]}
    assert ds.meta["requested_sizes"] == SIZES
    assert ds.meta["sizes"] == ds.sizes()
    marked = [r for r in ds.records() if r.canary]
    assert len(marked) == K == canary.repeats == len(canary.record_ids)
    assert all(r.split == "train" for r in marked)
    assert sorted(r.id for r in marked) == sorted(canary.record_ids)
    assert canary.space_size == 10 ** 6 and len(canary.secret) == 6 and canary.secret.isdigit()
    for r in marked:
        assert r.text == f"My ID is {canary.secret}." == canary.text()
        (span,) = r.spans
        assert r.text[span.start:span.end] == canary.secret and span.type == "canary"
    # the secret occurs in no other record
    assert sum(canary.secret in r.text for r in ds.records()) == K
    # canary records are spread over the split, not appended at the end
    pos = [i for i, r in enumerate(ds["train"]) if r.canary]
    assert pos != list(range(SIZES["train"], SIZES["train"] + K))
    lines = (path / "train.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == SIZES["train"] + K
    assert sum(json.loads(line)["canary"] for line in lines) == K


def test_canary_candidates_cover_space():
    ds = generate_dataset("synbio", seed=1, sizes={"train": 2, "valid": 0, "test": 0}, canary_repeats=3,
                          canary_digits=2)
    c = ds.canary
    cands = list(c.candidates())
    assert len(cands) == 100 == c.space_size and len(set(cands)) == 100
    assert c.secret in cands and cands[0] == "00" and cands[-1] == "99" and c.candidate(42) == "42"


def _files(path):
    return {f.name: f.read_bytes() for f in sorted(path.iterdir())}


@pytest.mark.parametrize("kind", ["customersim", "synbio"])
def test_same_seed_byte_identical_different_seed_differs(kind, tmp_path):
    a = generate(kind, out_dir=tmp_path / "a", seed=11, sizes={"train": 40, "valid": 5, "test": 5})
    b = generate(kind, out_dir=tmp_path / "b", seed=11, sizes={"train": 40, "valid": 5, "test": 5})
    c = generate(kind, out_dir=tmp_path / "c", seed=12, sizes={"train": 40, "valid": 5, "test": 5})
    fa, fb, fc = _files(a), _files(b), _files(c)
    assert set(fa) == {"train.jsonl", "valid.jsonl", "test.jsonl", "meta.json"}
    assert fa == fb
    for name in fa:
        assert fa[name] != fc[name], name
    assert json.loads(fa["meta.json"])["canary"]["secret"] != json.loads(fc["meta.json"])["canary"]["secret"]


def test_determinism_independent_of_hash_seed(tmp_path):
    """Same files from two interpreters with different PYTHONHASHSEED (no set/dict-order dependence)."""
    import os
    import subprocess
    import sys

    outs = []
    for hs in ("1", "2"):
        out = tmp_path / hs
        code = ("from lowrankdp.data import generate; "
                f"generate('customersim', out_dir={str(out)!r}, seed=5, sizes={{'train': 20, 'valid': 2, 'test': 2}})")
        env = {**os.environ, "PYTHONHASHSEED": hs}
        subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)
        outs.append(_files(out))
    assert outs[0] == outs[1]


def test_split_streams_are_independent():
    a = generate_dataset("customersim", seed=0, sizes={"train": 10, "valid": 3, "test": 3}, canary_repeats=0)
    b = generate_dataset("customersim", seed=0, sizes={"train": 10, "valid": 3, "test": 8}, canary_repeats=0)
    assert a["train"] == b["train"] and a["valid"] == b["valid"] and a["test"] == b["test"][:3]


def test_templates_vary():
    ds = generate_dataset("customersim", seed=0, sizes={"train": 100, "valid": 0, "test": 0},
                          canary_repeats=0)
    # mask values out; the remaining skeletons should be many, not one template
    skeletons = set()
    for r in ds["train"]:
        t = r.text
        for s in reversed(r.spans):
            t = t[:s.start] + f"<{s.type}>" + t[s.end:]
        skeletons.add(t)
    assert len(skeletons) > 80
    lengths = {len(r.text.splitlines()) for r in ds["train"]}
    assert len(lengths) >= 3


def test_defaults_and_validation():
    assert DEFAULT_SIZES["customersim"] == {"train": 10_000, "valid": 1_000, "test": 1_000}
    assert sum(DEFAULT_SIZES["synbio"].values()) == 5_000
    with pytest.raises(ValueError, match="kind"):
        generate_dataset("tweets")
    with pytest.raises(ValueError, match="canary_repeats"):
        generate_dataset("synbio", canary_repeats=-1)
    with pytest.raises(ValueError, match="sizes"):
        generate_dataset("synbio", sizes={"training": 3})
    ds = generate_dataset("synbio", seed=0, sizes={"train": 3, "valid": 1, "test": 1}, canary_repeats=0)
    assert ds.canary is None and ds.meta["canary"] is None and not any(r.canary for r in ds.records())
