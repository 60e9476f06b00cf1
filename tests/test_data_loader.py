"""Loader: every malformed case is rejected with file, line and reason; user JSONL accepted."""

from __future__ import annotations

import json

import pytest

from lowrankdp.data import Span, generate, load_dataset, write_dataset
from lowrankdp.data.schema import Dataset, Record


def _write(path, lines):
    path.write_text("".join((l if isinstance(l, str) else json.dumps(l)) + "\n" for l in lines),
                    encoding="utf-8")
    return path


GOOD = {"id": "a", "text": "Call Ann at 555-123-4567.", "split": "train",
        "spans": [{"start": 5, "end": 8, "type": "name"}, {"start": 12, "end": 24, "type": "phone"}],
        "canary": False}

BAD_CASES = [
    ("{not json", "malformed JSON"),
    ([1, 2], "must be a JSON object"),
    ({"id": "x", "spans": []}, "missing field 'text'"),
    ({**GOOD, "text": 5}, "'text' must be a string"),
    ({**GOOD, "spans": "oops"}, "'spans' must be a list"),
    ({**GOOD, "spans": [[5, 8, "name"]]}, r"spans\[0\] must be an object"),
    ({**GOOD, "spans": [{"start": 5, "end": 8}]}, "missing field 'type'"),
    ({**GOOD, "spans": [{"start": "5", "end": 8, "type": "name"}]}, "must be integers"),
    ({**GOOD, "spans": [{"start": True, "end": 8, "type": "name"}]}, "must be integers"),
    ({**GOOD, "spans": [{"start": 5, "end": 8, "type": ""}]}, "non-empty string"),
    ({**GOOD, "spans": [{"start": 20, "end": 99, "type": "phone"}]}, "outside the text"),
    ({**GOOD, "spans": [{"start": -1, "end": 3, "type": "name"}]}, "outside the text"),
    ({**GOOD, "spans": [{"start": 6, "end": 6, "type": "name"}]}, "empty"),
    ({**GOOD, "spans": [{"start": 5, "end": 9, "type": "name"}, {"start": 8, "end": 12, "type": "x"}]},
     "spans overlap"),
    ({**GOOD, "spans": [{"start": 5, "end": 8, "type": "name"}, {"start": 5, "end": 8, "type": "name"}]},
     "spans overlap"),
    ({**GOOD, "split": "dev"}, "'split' must be one of"),
    ({**GOOD, "canary": "yes"}, "'canary' must be true or false"),
    ({**GOOD, "id": 7}, "'id' must be a non-empty string"),
]


@pytest.mark.parametrize("bad,reason", BAD_CASES, ids=[r for _, r in BAD_CASES])
def test_rejects_malformed_line_with_file_line_reason(tmp_path, bad, reason):
    f = _write(tmp_path / "user.jsonl", [GOOD, {**GOOD, "id": "b"}, bad])
    with pytest.raises(ValueError, match=rf"user\.jsonl:3: .*{reason}"):
        load_dataset(f)


def test_blank_lines_skipped_but_counted(tmp_path):
    f = tmp_path / "u.jsonl"
    f.write_text(json.dumps(GOOD) + "\n\n" + "{bad\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"u\.jsonl:3: malformed JSON"):
        load_dataset(f)


def test_user_jsonl_spans_optional(tmp_path):
    f = _write(tmp_path / "mine.jsonl", [
        {"text": "My name is Ann Lee and my phone is 555-123-4567."},
        {"text": "Nothing here.", "spans": []},
        {"text": "Order 123-45678-9012.", "split": "test", "spans": None},
    ])
    ds = load_dataset(f)
    assert ds.sizes() == {"train": 2, "test": 1}
    r0, r1 = ds["train"]
    assert r0.id == "mine-1" and r0.spans is None and r0.canary is False
    assert r1.spans == ()
    filled = load_dataset(f, detect=True)
    got = {(s.type, filled["train"][0].text[s.start:s.end]) for s in filled["train"][0].spans}
    assert ("phone", "555-123-4567") in got and ("name", "Ann Lee") in got
    assert filled["train"][1].spans == ()  # annotated-empty is kept, not re-detected
    assert [s.type for s in filled["test"][0].spans] == ["order_number"]


def test_directory_checks(tmp_path):
    path = generate("synbio", out_dir=tmp_path / "d", seed=0, sizes={"train": 5, "valid": 2, "test": 2},
                    canary_repeats=2)
    ds = load_dataset(path)
    assert ds.sizes() == {"train": 7, "valid": 2, "test": 2}
    # record in the wrong split file
    lines = (path / "valid.jsonl").read_text().splitlines()
    rec = json.loads(lines[1])
    rec["split"] = "test"
    lines[1] = json.dumps(rec)
    (path / "valid.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"valid\.jsonl:2: .*split 'test'.*'valid' file"):
        load_dataset(path)
    rec["split"] = "valid"
    del rec["canary"]  # generated data (meta has schema_version): every field required
    lines[1] = json.dumps(rec)
    (path / "valid.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"valid\.jsonl:2: missing field 'canary'"):
        load_dataset(path)


def test_meta_consistency(tmp_path):
    path = generate("customersim", out_dir=tmp_path / "d", seed=0, sizes={"train": 4, "valid": 1, "test": 1},
                    canary_repeats=2)
    meta = json.loads((path / "meta.json").read_text())
    meta["canary"]["record_ids"] = meta["canary"]["record_ids"][:1]
    (path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="canary.record_ids do not match"):
        load_dataset(path)
    meta["canary"] = None
    (path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="marked canary but meta has no canary"):
        load_dataset(path)
    meta = json.loads((path / "meta.json").read_text())
    (path / "meta.json").write_text(json.dumps({**meta, "canary": None, "sizes": {"train": 99}}))
    with pytest.raises(ValueError, match=r"sizes\['train'\] = 99"):
        load_dataset(path)


def test_duplicate_ids_and_missing(tmp_path):
    f = _write(tmp_path / "u.jsonl", [GOOD, GOOD])
    with pytest.raises(ValueError, match="duplicate record id 'a'"):
        load_dataset(f)
    with pytest.raises(ValueError, match="does not exist"):
        load_dataset(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no train.jsonl"):
        load_dataset(tmp_path / "empty")


def test_write_load_round_trip(tmp_path):
    recs = [Record("r1", "Zoë Ünal lives at 1 Main St, Springfield, IL 62704.", "train",
                   (Span(0, 8, "name"), Span(18, 50, "address")), False),
            Record("r2", "plain", "train", None, False)]
    ds = Dataset({"train": recs}, {"note": "user"})
    write_dataset(ds, tmp_path / "w")
    back = load_dataset(tmp_path / "w")
    assert back["train"] == recs and back.meta == {"note": "user"}
    assert back["train"][0].values() == [("name", "Zoë Ünal"), ("address", "1 Main St, Springfield, IL 62704")]
