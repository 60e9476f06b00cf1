"""Membership attacks and leakage statistics.

Core (numpy only): ``lowrankdp.attacks.matrix`` (Wishart matrix mechanism, [LRP] Thm 2),
``lowrankdp.attacks.lm`` (LOSS / zlib / min-k / reference scores), ``lowrankdp.attacks.exposure``
(canary exposure, [CTW+19]). Torch layer: ``lowrankdp.attacks.lora_fa``.

IMPORTANT: every score in this package follows one convention — a **higher score means
"more likely a member"** (the record was in the training set / the neighbour that contains
it produced the output). Metrics in ``lowrankdp.metrics`` assume it.
"""
