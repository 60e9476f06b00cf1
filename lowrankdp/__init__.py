"""lowrankdp: how private is low-rank (LoRA-style) fine-tuning?

The numeric core (bounds, accountants, attack statistics) needs only numpy/scipy and
imports without torch::

    from lowrankdp import wishart, accounting, influence, metrics

The training and experiment layer (``lowrankdp.finetune``, ``lowrankdp.models``,
``lowrankdp.measure``, ``lowrankdp.attacks.lora_fa``) imports torch, transformers,
peft and opacus, and is only loaded when used.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# Core submodules re-exported lazily: `lowrankdp.wishart` etc. work after `import lowrankdp`.
_CORE = ("wishart", "influence", "accounting", "metrics", "attacks", "audit", "data", "provenance")


def __getattr__(name: str):
    if name in _CORE:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_CORE))
