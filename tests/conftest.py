import os

# Deterministic, and polite to a 2-core CI machine.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest


@pytest.fixture(scope="session")
def tiny_base_path():
    """Embedded tiny model dir; built once per machine into $LOWRANKDP_CACHE (~1 min CPU), then reused."""
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    from lowrankdp.models import build_tiny

    return build_tiny()


@pytest.fixture
def tiny_base(tiny_base_path):
    """Fresh (model, tokenizer) of the tiny model: eval mode, CPU float32, safe to modify."""
    from lowrankdp.models import load_base

    return load_base("tiny")
