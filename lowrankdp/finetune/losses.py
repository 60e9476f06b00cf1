"""Per-sequence causal-LM loss and the per-token expansion used for token-level clipping."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["per_sequence_loss", "token_losses", "expand_per_token"]


def token_losses(logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy, shape ``[B, L-1]`` (position t predicts token t+1), in float32."""
    lg = logits[:, :-1, :].float()
    tgt = input_ids[:, 1:]
    return F.cross_entropy(lg.reshape(-1, lg.shape[-1]), tgt.reshape(-1), reduction="none").view(tgt.shape)


def per_sequence_loss(
    logits: torch.Tensor,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    loss_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean next-token loss of each sequence over its real target tokens: shape ``[B]``.

    This is the per-sample loss that ghost clipping needs (opacus reduces the loss per sequence:
    the privacy unit is the sequence). ``loss_mask`` ([B, L], 1 = keep target at that position) restricts
    the targets further (per-token expansion).
    """
    ce = token_losses(logits, input_ids)
    mask = attention_mask[:, 1:].to(ce.dtype)
    if loss_mask is not None:
        mask = mask * loss_mask[:, 1:].to(ce.dtype)
    return (ce * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


def expand_per_token(input_ids: torch.Tensor, attention_mask: torch.Tensor):
    """One row per target token: row k repeats its sequence and keeps only that token in the loss.

    Returns ``(input_ids, attention_mask, loss_mask, owner)`` where ``owner[k]`` is the index of the
    source sequence. Used for ``clip_unit="token"`` ([RPUE]'s per-token clipping): opacus then clips
    each row, i.e. each token's gradient, separately.
    """
    rows_ids, rows_att, rows_mask, owner = [], [], [], []
    L = input_ids.shape[1]
    for i in range(input_ids.shape[0]):
        valid = attention_mask[i, 1:].nonzero().flatten() + 1  # target positions
        for t in valid.tolist():
            m = torch.zeros(L, dtype=attention_mask.dtype, device=attention_mask.device)
            m[t] = 1
            rows_ids.append(input_ids[i])
            rows_att.append(attention_mask[i])
            rows_mask.append(m)
            owner.append(i)
    if not rows_ids:
        z = input_ids[:0]
        return z, attention_mask[:0], attention_mask[:0], torch.zeros(0, dtype=torch.long)
    return (torch.stack(rows_ids), torch.stack(rows_att), torch.stack(rows_mask),
            torch.tensor(owner, dtype=torch.long))
