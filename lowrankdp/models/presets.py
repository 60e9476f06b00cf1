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
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PythiaShape", "PRESETS", "preset_config", "parameter_count"]

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
