"""`lowrankdp data generate|check|detect-score`."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from lowrankdp.cli import main


def test_generate_check_detect_score(tmp_path, capsys):
    out = tmp_path / "cs"
    assert main(["data", "generate", "customersim", "--out", str(out), "--seed", "1", "--train", "30",
                 "--valid", "4", "--test", "5", "--canary-repeats", "3", "--json"]) == 0
    st = json.loads(capsys.readouterr().out)
    assert st["sizes"] == {"train": 33, "valid": 4, "test": 5}
    assert st["canary"]["repeats"] == 3 and len(st["canary"]["record_ids"]) == 3
    assert st["canary"]["space_size"] == 1_000_000
    assert sorted((out / f).name for f in ("train.jsonl", "meta.json")) == ["meta.json", "train.jsonl"]

    assert main(["data", "check", str(out)]) == 0
    text = capsys.readouterr().out
    assert "OK: schema valid" in text and "train 33, valid 4, test 5" in text

    assert main(["data", "detect-score", str(out), "--json"]) == 0
    sc = json.loads(capsys.readouterr().out)
    assert sc["n_records"] == 39 and "phone" in sc["types"]


def test_check_reports_bad_line(tmp_path, capsys):
    f = tmp_path / "u.jsonl"
    f.write_text('{"text": "ok"}\n{"text": "x", "spans": [{"start": 0, "end": 5, "type": "name"}]}\n')
    assert main(["data", "check", str(f)]) == 2
    err = capsys.readouterr().err
    assert "u.jsonl:2:" in err and "outside the text" in err


def test_data_package_imports_without_torch_transformers_tokenizers_faker():
    code = textwrap.dedent("""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {"torch", "transformers", "tokenizers", "faker", "peft", "opacus"}:
                    raise ImportError("blocked: " + name)
        sys.meta_path.insert(0, Block())
        import lowrankdp.data, lowrankdp.data.masks, lowrankdp.data.detect, lowrankdp.commands.data
        from lowrankdp.data import load_dataset, detect_spans, token_sensitivity_mask
        assert token_sensitivity_mask([(0, 2)], [(1, 2)]) == [1]
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
