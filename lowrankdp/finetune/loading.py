"""Device, dtype and base-model loading for the fine-tuning engine and the export path."""

from __future__ import annotations

import torch

__all__ = ["DTYPES", "resolve_device", "load_model"]

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(device: str | None) -> torch.device:
    """``device`` if given, else CUDA when available, else the CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_model(name: str, *, device: torch.device, dtype: torch.dtype):
    """``(model, tokenizer, source)`` via ``lowrankdp.models.load_base``. The model lands on ``device``
    *before* any adapter is attached (Opacus bug https://github.com/pytorch/opacus/issues/820: DP-LoRA silently broken otherwise)."""
    from lowrankdp.models import load_base

    model, tok = load_base(name, device=device, dtype=dtype)
    if tok.pad_token_id is None and tok.eos_token_id is not None:
        tok.pad_token = tok.eos_token
    return model, tok, "lowrankdp.models.load_base"
