"""``lowrankdp measure`` end to end on a saved tiny random GPT-NeoX and a written dataset (CPU)."""

from __future__ import annotations

import json
import random

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from lowrankdp.cli import main  # noqa: E402
from lowrankdp.data import Dataset, Record, Span, write_dataset  # noqa: E402


def _records(rng, split, n):
    out = []
    for i in range(n):
        name = rng.choice(["Ann Lee", "Bo Chan", "Cy Diaz", "Di Eze"])
        phone = "".join(rng.choice("0123456789") for _ in range(6))
        text = f"Hi, {name} here, call {phone} today."
        a = 4
        b = text.index(phone)
        out.append(Record(f"{split}-{i}", text, split, (Span(a, a + len(name), "name"),
                                                        Span(b, b + 6, "phone")), False))
    return out


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, PreTrainedTokenizerFast

    torch.set_num_threads(1)
    torch.manual_seed(0)
    rng = random.Random(0)
    root = tmp_path_factory.mktemp("measure_cli")
    train, test = _records(rng, "train", 12), _records(rng, "test", 12)
    canaries = [Record(f"train-canary-{j}", "My ID is 042.", "train", (Span(9, 12, "canary"),), True)
                for j in range(3)]
    meta = {"generator": "test", "seed": 0, "sizes": {"train": 15, "test": 12}, "schema_version": 1,
            "canary": {"template": "My ID is {secret}.", "prefix": "My ID is ", "suffix": ".", "secret": "042",
                       "alphabet": "0123456789", "length": 3, "space_size": 1000, "repeats": 3,
                       "record_ids": [c.id for c in canaries]}}
    data = write_dataset(Dataset({"train": train + canaries, "test": test}, meta), root / "data")

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    tok.train_from_iterator([r.text for r in train], trainer=trainers.BpeTrainer(
        vocab_size=280, special_tokens=["<|endoftext|>", "<|padding|>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>",
                                 pad_token="<|padding|>")
    cfg = GPTNeoXConfig(vocab_size=len(hf), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    model_dir = root / "model"
    GPTNeoXForCausalLM(cfg).save_pretrained(model_dir)
    hf.save_pretrained(model_dir)
    return str(model_dir), str(data)


def test_cli_json(paths, capsys):
    model, data = paths
    code = main(["measure", "--model", model, "--base", model, "--data", data, "--json", "--no-progress",
                 "--bootstrap", "50"])
    assert code == 0
    res = json.loads(capsys.readouterr().out)
    assert res["model"] == model and res["counts"]["n_train"] == 12 and res["counts"]["n_test"] == 12
    assert res["exposure"]["method"] == "exact" and res["exposure"]["space_size"] == 1000
    assert set(res["mia"]) == {"loss", "zlib", "min_k", "reference", "sensitive", "sensitive_reference"}
    # the base is the model itself: no gain, and the reference attack scores everything 0 (AUC 1/2)
    assert res["sensitive_loss_token_gain_vs_base"] == pytest.approx(0.0, abs=1e-9)
    assert res["mia"]["reference"]["auc"] == pytest.approx(0.5)
    assert set(res["per_type"]) == {"name", "phone"}


def test_cli_table_and_out_file(paths, capsys, tmp_path):
    model, data = paths
    out = tmp_path / "m.json"
    code = main(["measure", "--model", model, "--data", data, "--no-progress", "--bootstrap", "20",
                 "--exposure-max-candidates", "0", "--out", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "| sensitive_loss_token |" in text and "exposure (skewnorm" in text and "needs --base" in text
    saved = json.loads(out.read_text())
    assert saved["exposure"]["method"] == "skewnorm" and saved["mia"]["reference"] is None


def test_cli_bad_input(paths, capsys, tmp_path):
    model, data = paths
    assert main(["measure", "--model", model, "--data", str(tmp_path / "missing"), "--json"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["measure", "--model", model, "--data", data, "--batch-size", "0", "--no-progress"]) == 2
    assert "batch_size" in capsys.readouterr().err
