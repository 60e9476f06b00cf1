"""Public Pythia shapes with random weights, for efficiency runs at true scale (docs/theory.md §8.4).

| preset              | layers | hidden | heads | parameters (computed) |
|---------------------|--------|--------|-------|-----------------------|
| pythia-70m-shape    | 6      | 512    | 8     | 70,426,624            |
| pythia-160m-shape   | 12     | 768    | 12    | 162,322,944           |
| pythia-410m-shape   | 24     | 1024   | 16    | 405,334,016           |
| pythia-1b-shape     | 16     | 2048   | 8     | 1,011,781,632         |

All: vocabulary 50,304, MLP 4× hidden, rotary on 25 % of head dims, parallel residual, untied
embeddings, 2,048 positions — the published Pythia configurations (EleutherAI/pythia-*,
``config.json``), whose parameter counts the table reproduces (e.g. 70,426,624 for pythia-70m).

Speed, memory and FLOPs do not depend on the weight values, so these models measure efficiency
only; their outputs are noise.

:func:`model_width` gives the hidden size of a model name without building it. This module is torch-free
(``transformers`` is imported only inside :func:`preset_config`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PythiaShape", "PRESETS", "PUBLIC_WIDTHS", "preset_config", "parameter_count", "model_width"]

PYTHIA_VOCAB = 50304


@dataclass(frozen=True)
class PythiaShape:
    layers: int
    hidden: int
    heads: int
    nominal: str  # the public name's size

    @property
    def intermediate(self) -> int:
        return 4 * self.hidden


PRESETS: dict[str, PythiaShape] = {
    "pythia-70m-shape": PythiaShape(6, 512, 8, "70M"),
    "pythia-160m-shape": PythiaShape(12, 768, 12, "160M"),
    "pythia-410m-shape": PythiaShape(24, 1024, 16, "410M"),
    "pythia-1b-shape": PythiaShape(16, 2048, 8, "1.0B"),
}


def preset_config(name: str, *, bos_token_id: int = 0, eos_token_id: int = 0, pad_token_id: int = 1):
    """The ``GPTNeoXConfig`` of a preset (no weights are allocated)."""
    from transformers import GPTNeoXConfig

    if name not in PRESETS:
        raise ValueError(f"preset must be one of {', '.join(map(repr, PRESETS))}, got {name!r}")
    s = PRESETS[name]
    return GPTNeoXConfig(
        vocab_size=PYTHIA_VOCAB, hidden_size=s.hidden, num_hidden_layers=s.layers,
        num_attention_heads=s.heads, intermediate_size=s.intermediate, hidden_act="gelu",
        rotary_pct=0.25, rotary_emb_base=10000, max_position_embeddings=2048,
        use_parallel_residual=True, tie_word_embeddings=False, hidden_dropout=0.0, attention_dropout=0.0,
        initializer_range=0.02, layer_norm_eps=1e-5,
        bos_token_id=bos_token_id, eos_token_id=eos_token_id, pad_token_id=pad_token_id,
    )


def parameter_count(config) -> int:
    """Parameters of a GPT-NeoX causal LM from its config, in closed form.

    Per layer: two LayerNorms (4h), QKV (3h² + 3h), output projection (h² + h), MLP
    (2·h·f + f + h); plus input and (untied) output embeddings (2·V·h, or V·h if tied) and the
    final LayerNorm (2h).
    """
    h, f, v, n = config.hidden_size, config.intermediate_size, config.vocab_size, config.num_hidden_layers
    per_layer = 4 * h + (3 * h * h + 3 * h) + (h * h + h) + (2 * h * f + f + h)
    embeddings = v * h * (1 if config.tie_word_embeddings else 2)
    return n * per_layer + embeddings + 2 * h


#: hidden sizes of the public Pythia checkpoints (EleutherAI/pythia-*, ``config.json``), also under ``-deduped``
PUBLIC_WIDTHS: dict[str, int] = {
    "pythia-14m": 128, "pythia-31m": 256, "pythia-70m": 512, "pythia-160m": 768, "pythia-410m": 1024,
    "pythia-1b": 2048, "pythia-1.4b": 2048, "pythia-2.8b": 2560, "pythia-6.9b": 4096, "pythia-12b": 5120,
}


def _config_width(directory: Path) -> int | None:
    try:
        data = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    for key in ("hidden_size", "n_embd", "d_model"):
        value = data.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def model_width(name: str | os.PathLike) -> int | None:
    """Hidden size of a model, known without building it or importing torch; None when it cannot be known.

    Knows ``"tiny"`` (its recipe), the ``*-shape`` presets, the public Pythia hub ids (with or without the
    ``EleutherAI/`` prefix and ``-deduped``), local model directories (``config.json``: ``hidden_size``,
    ``n_embd`` or ``d_model``) and fine-tuning run directories (their exported ``model/config.json``).
    GPT-NeoX attention and MLP matrices are hidden × {1, 3, 4}·hidden, so a LoRA rank above this width
    cannot be realised on them.
    """
    text = os.fspath(name)
    if text == "tiny":
        from .recipe import DEFAULT_RECIPE

        return DEFAULT_RECIPE.hidden_size
    if text in PRESETS:
        return PRESETS[text].hidden
    local = Path(text).expanduser()
    if local.is_dir():
        width = _config_width(local)
        return width if width is not None else _config_width(local / "model")
    public = text.rsplit("/", 1)[-1].lower()
    if public.endswith("-deduped"):
        public = public[: -len("-deduped")]
    if text.count("/") <= 1 and public in PUBLIC_WIDTHS:
        return PUBLIC_WIDTHS[public]
    return None
