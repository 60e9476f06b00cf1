"""Canaries inside the fine-tuning engine: one-run privacy audits of a real run (docs/audit.md §5).

``FinetuneConfig.audit_canaries = m`` switches on two audits; each canary is included independently with
probability ½ (bits from ``numpy.random.default_rng([audit_seed, ...])``, stored in the result), and each audit
is judged by :func:`lowrankdp.audit.audit_scores` at the accountant's δ with ``k₊ = k₋ = ceil(GUESS_FRACTION·m)``
guesses fixed before training.

* **Input-space canaries** (every method): m extra records ``prefix + 32 random tokens``. An included canary is an
  ordinary training record (Poisson-sampled and clipped like any other by the DP methods); the non-included ones
  are never trained on. They are appended to the training set after the dataset's members and non-members were
  fixed, so they never enter ``measure_all``. Score: ``log p_model(secret | prefix) − log p_base(secret |
  prefix)`` (the base = the model before the first step), at every evaluation.
* **White-box gradient canaries** (private methods): m Dirac canaries ``C·e_j`` on distinct trainable coordinates.
  DP-SGD (every parameter trains): rows of the input embedding of tokens that occur in no training record, so no
  real record ever updates them (rarest tokens if too few are absent; recorded). Other private methods: random
  coordinates of the trained matrices (real gradients then add to the canary coordinates: a nuisance for the
  score, never for the validity of the audit). At each step every included canary is Poisson-sampled at the run's
  rate q; a sampled canary's per-example gradient ``C·e_j`` has norm C, so clipping leaves it unchanged, and it is
  added to the clipped sum of that step. It is added in the DP optimizer's step hook, after opacus added the noise
  and divided by the expected batch size (added as ``C·e_j / B``): noise and canary are independent, so the
  released value has exactly the distribution of "canary added before the noise". The released noisy coordinate
  (gradient-sum units) is recorded every step and scored with
  :func:`lowrankdp.audit.canaries.score_dirac_canaries` (``all_iterates``); the last-iterate audit uses only the
  final weights, ``θ_j(0) − θ_j(T)`` (the descent direction of a positive canary gradient; under AdamW the update
  is a monotone-in-sign but non-linear function of the gradients, a valid though weaker score).
* **Compressed DP-SGD**: canaries are Dirac directions ``e_c`` of a row of a projected weight matrix (the full
  gradient space); what is released is the row's noisy gradient projected by the step's ``A_t``
  (``(G_i + E_i)A_tᵀ``, r numbers, with ``A_t`` published to the auditor) and scored by
  :class:`lowrankdp.audit.canaries.ProjectedCanaryScorer` (fresh: per step; fixed: after the run, centred on the
  mean release where several canaries share a row). ``canaries_per_row`` canaries share one row's release
  (several directions in one projected gradient); ``span > 1`` (fixed only) gives each canary a gradient spanning
  ``span`` coordinates, aligned to the direction the fixed A retains most (both set through
  ``config.extra["audit_canary_shape"]``, for experiments).

The audits' cost (seconds spent in the canary hooks, in scoring and in the analyses) is recorded with each audit
as a share of the run's wall time.
"""

from __future__ import annotations

import math
import time
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from .._validate import check_int
from ..audit import audit_scores
from ..audit.canaries import ProjectedCanaryScorer, score_dirac_canaries, top_retained_direction
from .losses import per_sequence_loss

__all__ = ["EngineAudit", "GUESS_FRACTION", "SECRET_TOKENS", "CANARY_PREFIX", "audit_guesses"]

GUESS_FRACTION = 0.05  # k₊ = k₋ = ceil(0.05·m): fixed before any score is seen
SECRET_TOKENS = 32
CANARY_PREFIX = "audit canary, secret code:"


def audit_guesses(m: int) -> int:
    """Guesses per side (k₊ = k₋) for m canaries, fixed in advance."""
    return max(1, math.ceil(GUESS_FRACTION * m))


def _bits_string(bits: np.ndarray) -> str:
    return "".join("1" if b else "0" for b in bits)


class EngineAudit:
    """The canaries of one run. Built in the engine's preparation; see the module docstring for the protocol.

    ``config.extra["audit_canary_shape"] = {"canaries_per_row": k, "span": s}`` shapes the compressed-DP-SGD
    white-box canaries (experiments; default one Dirac canary per row)."""

    def __init__(self, config, tokenizer, train_records: Sequence[np.ndarray]):
        self.config = config
        self.m = int(config.audit_canaries)
        self.seed = int(config.audit_seed if config.audit_seed is not None else config.seed)
        shape = dict(config.extra.get("audit_canary_shape") or {})
        unknown = sorted(set(shape) - {"canaries_per_row", "span"})
        if unknown:
            raise ValueError(f"extra.audit_canary_shape takes canaries_per_row and span, got {unknown}")
        self.canaries_per_row = check_int("canaries_per_row", shape.get("canaries_per_row", 1), minimum=1)
        self.span = check_int("span", shape.get("span", 1), minimum=1)
        self.seconds = 0.0  # everything the audits cost
        self.hook_seconds = 0.0  # of which: the per-step canary hooks
        self.hook_steps = 0
        t = time.perf_counter()
        rng = np.random.default_rng([self.seed, 1])
        self.included_input = rng.random(self.m) < 0.5
        rng = np.random.default_rng([self.seed, 2])
        self.included_white = rng.random(self.m) < 0.5
        self.sample_rng = np.random.default_rng([self.seed, 3])  # Poisson sampling of the gradient canaries
        self.vocab = int(len(tokenizer))
        special = set(getattr(tokenizer, "all_special_ids", []) or [])
        for name in ("pad_token_id", "eos_token_id", "bos_token_id"):
            v = getattr(tokenizer, name, None)
            if v is not None:
                special.add(int(v))
        counts = np.zeros(self.vocab, dtype=np.int64)
        for rec in train_records:
            np.add.at(counts, np.asarray(rec, dtype=np.int64), 1)
        self.token_counts = counts
        self.special = sorted(special)
        self._build_input_canaries(tokenizer, rng=np.random.default_rng([self.seed, 4]))
        self.base_scores: np.ndarray | None = None
        self.white: dict[str, Any] | None = None
        self.resumed = False
        self.seconds += time.perf_counter() - t

    # ------------------------------------------------------------------------------ input-space canaries
    def _build_input_canaries(self, tokenizer, *, rng: np.random.Generator) -> None:
        prefix = [int(i) for i in tokenizer(CANARY_PREFIX, add_special_tokens=False)["input_ids"]]
        if len(prefix) + SECRET_TOKENS > self.config.max_length:
            raise ValueError(f"max_length must be at least {len(prefix) + SECRET_TOKENS} with audit_canaries > 0 "
                             f"(canary prefix {len(prefix)} tokens + {SECRET_TOKENS} secret tokens), got "
                             f"{self.config.max_length}")
        allowed = np.setdiff1d(np.arange(self.vocab), np.array(self.special, dtype=np.int64))
        # secrets avoid the tokens absent from the data: those embedding rows may carry gradient canaries
        self.absent_tokens = np.array([t for t in allowed if self.token_counts[t] == 0], dtype=np.int64)
        pool = np.setdiff1d(allowed, self.absent_tokens) if allowed.size - self.absent_tokens.size >= 64 else allowed
        self.prefix = np.array(prefix, dtype=np.int64)
        self.secrets = rng.choice(pool, size=(self.m, SECRET_TOKENS), replace=True)
        self.secret_bits = SECRET_TOKENS * math.log2(pool.size)
        self.records = [np.concatenate([self.prefix, s]) for s in self.secrets]

    @property
    def input_records(self) -> list[np.ndarray]:
        """The included input-space canaries: records to append to the training set."""
        return [r for r, b in zip(self.records, self.included_input) if b]

    @torch.no_grad()
    def secret_logprob(self, model: nn.Module, *, batch_size: int = 64) -> np.ndarray:
        """``log p(secret | prefix)`` (nats) of every input-space canary under ``model`` (eval mode, no hooks)."""
        t = time.perf_counter()
        device = next(model.parameters()).device
        ids = torch.as_tensor(np.stack(self.records), dtype=torch.long)
        att = torch.ones_like(ids)
        mask = torch.zeros_like(ids)
        mask[:, self.prefix.size:] = 1  # targets: the secret tokens only
        out = []
        for s in range(0, self.m, batch_size):
            b_ids, b_att, b_mask = ids[s:s + batch_size].to(device), att[s:s + batch_size].to(device), \
                mask[s:s + batch_size].to(device)
            res = model(input_ids=b_ids, attention_mask=b_att, use_cache=False)
            logits = res.logits if hasattr(res, "logits") else res[0]
            mean_nll = per_sequence_loss(logits, b_ids, b_att, b_mask)  # mean over the secret tokens
            out.append((-mean_nll * SECRET_TOKENS).double().cpu().numpy())
        self.seconds += time.perf_counter() - t
        return np.concatenate(out)

    def record_base(self, model: nn.Module) -> None:
        was = model.training
        model.eval()
        try:
            self.base_scores = self.secret_logprob(model)
        finally:
            model.train(was)

    # ------------------------------------------------------------------------------ white-box canaries
    def attach(self, runner) -> None:
        """Select the gradient-canary coordinates and wrap the DP optimizer's step hook (private methods only)."""
        priv = runner.private
        if priv is None:
            return
        t = time.perf_counter()
        opt = priv.optimizer
        proj = runner.setup.projection
        raw = runner.raw_model
        rng = np.random.default_rng([self.seed, 5])
        names = {id(p): n for n, p in raw.named_parameters()}
        w: dict[str, Any] = {"q": float(priv.sample_rate), "sigma": float(opt.noise_multiplier),
                             "clip": float(opt.max_grad_norm), "scale": float(opt.expected_batch_size),
                             "observed": [], "projection": None}
        if proj is not None:
            groups = self._projected_groups(proj, rng)
            w["projection"] = proj.mode
            w["releases"] = []
        else:
            groups, w["where"] = self._dirac_groups(raw, rng)
        w["groups"] = groups
        w["initial"] = [p.detach().reshape(-1)[idx].double().cpu().numpy().copy() if idx is not None else None
                        for (p, idx, _rows, _cols, _canary) in groups]
        w["param_names"] = sorted({names.get(id(g[0]), "?") for g in groups})
        self.white = w
        self.proj = proj
        inner = opt.step_hook

        def hook(o):
            self._inject(o)
            if inner is not None:
                inner(o)
            if proj is not None:
                self._observe_projected()

        opt.step_hook = hook
        self.seconds += time.perf_counter() - t

    def _dirac_groups(self, raw: nn.Module, rng: np.random.Generator):
        """``[(param, flat coordinates, None, None, canary indices)]`` for Dirac canaries."""
        emb = raw.get_input_embeddings() if hasattr(raw, "get_input_embeddings") else None
        m = self.m
        if emb is not None and emb.weight.requires_grad:
            hidden = emb.weight.shape[1]
            rows_needed = math.ceil(m / hidden)
            order = np.lexsort((rng.random(self.vocab), self.token_counts))  # absent tokens first, then rarest
            taken = set(self.special) | set(np.unique(self.secrets).tolist())
            order = np.array([t for t in order.tolist() if t not in taken], dtype=np.int64)[:rows_needed]
            if order.size < rows_needed:
                raise ValueError(f"audit_canaries must be ≤ {order.size * hidden} for this vocabulary, got {m}")
            coords = (order[:, None] * hidden + np.arange(hidden)[None, :]).reshape(-1)[:m]
            absent = int(np.sum(self.token_counts[order] == 0))
            where = (f"input-embedding rows of {order.size} tokens ({absent} occur in no training record; "
                     f"max count of the others {int(self.token_counts[order].max())})")
            return [(emb.weight, torch.as_tensor(coords, device=emb.weight.device), None, None, np.arange(m))], where
        params = [p for p in raw.parameters() if p.requires_grad]
        sizes = np.array([p.numel() for p in params])
        total = int(sizes.sum())
        if m > total:
            raise ValueError(f"audit_canaries must be ≤ the {total} trainable coordinates, got {m}")
        flat = np.sort(rng.choice(total, size=m, replace=False))
        which = np.searchsorted(np.cumsum(sizes), flat, side="right")
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        groups = []
        for k in np.unique(which):
            sel = np.nonzero(which == k)[0]
            p = params[k]
            groups.append((p, torch.as_tensor(flat[sel] - offsets[k], device=p.device), None, None, sel))
        return groups, "random coordinates of the trained parameters (real gradients also update them)"

    def _projected_groups(self, proj, rng: np.random.Generator):
        """Canaries on rows of projected matrices: ``[(param, flat coordinates, row, directions, canaries)]``
        with ``canaries_per_row`` canaries sharing a row (distinct columns / column blocks)."""
        k, span = self.canaries_per_row, self.span
        if span > 1 and proj.mode != "fixed":
            raise ValueError(f"span > 1 is audited only with projection='fixed', got {proj.mode!r}")
        slots = [(n, i) for n, p in proj.params.items() for i in range(p.shape[0]) if p.shape[1] >= k * span]
        n_rows = math.ceil(self.m / k)
        if n_rows > len(slots):
            raise ValueError(f"audit_canaries must be ≤ {len(slots) * k} for compressed-dp-sgd with "
                             f"{k} canaries per row, got {self.m}")
        pick = rng.choice(len(slots), size=n_rows, replace=False)
        groups, j = [], 0
        for s in pick:
            name, row = slots[s]
            p = proj.params[name]
            d_in = p.shape[1]
            cnt = min(k, self.m - j)
            cols = rng.choice(d_in // span, size=cnt, replace=False) * span
            if span == 1:
                dirs: np.ndarray = cols.astype(np.int64)
            else:
                a_fixed = proj.fixed[name].double().cpu().numpy()
                dirs = np.zeros((cnt, d_in))
                for c_i, c in enumerate(cols):
                    block = np.arange(c, c + span)
                    dirs[c_i, block] = top_retained_direction(a_fixed, block)
            flat = torch.as_tensor(row * d_in + np.arange(d_in), device=p.device)
            groups.append((p, flat, (name, row), dirs, np.arange(j, j + cnt)))
            j += cnt
        return groups

    def _inject(self, opt) -> None:
        t = time.perf_counter()
        w = self.white
        sampled = (self.sample_rng.random(self.m) < w["q"]) & self.included_white
        obs = np.zeros(self.m) if w["projection"] is None else None
        rows = []
        for (p, idx, row, dirs, canary) in w["groups"]:
            if p.grad is None:
                continue
            flat = p.grad.view(-1)
            if row is None:
                add = torch.as_tensor(w["clip"] * sampled[canary] / w["scale"], dtype=flat.dtype, device=flat.device)
                flat[idx] += add
                obs[canary] = flat[idx].double().cpu().numpy() * w["scale"]
            else:
                d_in = idx.numel()
                if dirs.ndim == 1:
                    vec = np.zeros(d_in)
                    vec[dirs] = w["clip"] * sampled[canary]
                else:
                    vec = w["clip"] * (sampled[canary].astype(float) @ dirs)
                flat[idx] += torch.as_tensor(vec / w["scale"], dtype=flat.dtype, device=flat.device)
                rows.append(flat[idx].double().cpu().numpy() * w["scale"])  # the noisy row, before projection
        if obs is not None:
            w["observed"].append(obs)
        else:
            self._pending_rows = rows
        dt = time.perf_counter() - t
        self.seconds += dt
        self.hook_seconds += dt
        self.hook_steps += 1

    def _observe_projected(self) -> None:
        """After the projection hook: the release of each canary row, ``(G_i + E_i)A_tᵀ``, and the A_t used."""
        t = time.perf_counter()
        w = self.white
        last = self.proj.last
        rel = []
        for (p, _idx, (name, _row), dirs, canary), y in zip(w["groups"], self._pending_rows):
            a = last[name].double().cpu().numpy()
            rel.append(a @ y)
            if w["projection"] == "fresh":
                sc = w.setdefault("scorers", {})
                key = (name, _row)
                if key not in sc:
                    sc[key] = ProjectedCanaryScorer(canaries=canary.size, sampling_rate=w["q"],
                                                    noise_multiplier=w["sigma"], clip_norm=w["clip"])
                sc[key].update(rel[-1], a, dirs)
        if w["projection"] == "fixed":
            w["releases"].append(rel)
        dt = time.perf_counter() - t
        self.seconds += dt
        self.hook_seconds += dt

    def _white_scores(self, runner) -> tuple[np.ndarray | None, np.ndarray]:
        """(all-iterates scores or None if no step was observed, last-iterate scores)."""
        w = self.white
        last = np.zeros(self.m)
        for g, init in zip(w["groups"], w["initial"]):
            p, idx, row, dirs, canary = g
            now = p.detach().reshape(-1)[idx].double().cpu().numpy()
            delta = init - now  # θ(0) − θ(T): a positive gradient moves θ down
            if row is None:
                last[canary] = delta
            elif dirs.ndim == 1:
                last[canary] = delta[dirs]
            else:
                last[canary] = dirs @ delta
        if w["projection"] is None:
            if not w["observed"]:
                return None, last
            return score_dirac_canaries(np.stack(w["observed"]), sampling_rate=w["q"], noise_multiplier=w["sigma"],
                                        clip_norm=w["clip"]), last
        scores = np.zeros(self.m)
        if w["projection"] == "fresh":
            if not w.get("scorers"):
                return None, last
            for (p, _idx, (name, row), dirs, canary) in w["groups"]:
                scores[canary] = w["scorers"][(name, row)].scores
            return scores, last
        if not w["releases"]:
            return None, last
        for gi, (p, _idx, (name, row), dirs, canary) in enumerate(w["groups"]):
            a = self.proj.fixed[name].double().cpu().numpy()
            rel = np.stack([r[gi] for r in w["releases"]])
            # several canaries share this release: centre on the mean release, which removes their persistent
            # pull (docs/audit.md §2); one canary alone keeps its signal uncentred (the mean would take half of it)
            mean = rel.mean(axis=0) if canary.size > 1 else None
            sc = ProjectedCanaryScorer(canaries=canary.size, sampling_rate=w["q"], noise_multiplier=w["sigma"],
                                       clip_norm=w["clip"])
            for z in rel:
                sc.update(z, a, dirs, offset=mean)
            scores[canary] = sc.scores
        return scores, last

    # ------------------------------------------------------------------------------ the audits
    def _one(self, name: str, scores: np.ndarray, included: np.ndarray, privacy, **extra) -> dict[str, Any]:
        k = audit_guesses(self.m)
        delta = privacy.delta if privacy.delta is not None else self.config.delta
        res = audit_scores(scores, included, k_pos=k, k_neg=k, delta=delta)
        eps_acc = privacy.epsilon
        d = {"name": name, **res.to_dict(), "epsilon_accountant": eps_acc,
             "verdict": res.judge(eps_acc)["verdict"], "audit_seed": self.seed,
             "included_bits": _bits_string(included), **extra}
        return d

    def audits(self, runner, privacy, *, final: bool, run_seconds: float) -> tuple[dict[str, Any], ...]:
        """The audits at one evaluation: input-space always; the white-box ones at the final evaluation of a
        private run (not after a resume: the iterates before it were not observed)."""
        t = time.perf_counter()
        raw = runner.raw_model
        out = []
        if self.base_scores is not None:
            now = self.secret_logprob(raw)
            out.append(self._one("input-space", now - self.base_scores, self.included_input, privacy,
                                 kind="input", secret_tokens=SECRET_TOKENS, secret_bits=self.secret_bits,
                                 score="log p_model(secret|prefix) - log p_base(secret|prefix)"))
        if final and self.white is not None and not self.resumed:
            all_it, last = self._white_scores(runner)
            common = dict(kind="white-box", where=self.white.get("where"), projection=self.white["projection"],
                          canaries_per_row=self.canaries_per_row if self.white["projection"] else None,
                          span=self.span if self.white["projection"] else None,
                          sampling_rate=self.white["q"], noise_multiplier=self.white["sigma"],
                          clip_norm=self.white["clip"], steps_observed=self.hook_steps)
            if all_it is not None:
                out.append(self._one("white-box all iterates", all_it, self.included_white, privacy,
                                     score="sum over steps of the subsampled-Gaussian log-likelihood ratio",
                                     **common))
            out.append(self._one("white-box last iterate", last, self.included_white, privacy,
                                 score="theta_j(0) - theta_j(T)", **common))
        self.seconds += time.perf_counter() - t
        share = self.seconds / run_seconds if run_seconds > 0 else None
        per_step = self.hook_seconds / self.hook_steps if self.hook_steps else None
        return tuple({**a, "cost_seconds": self.seconds, "cost_share": share, "cost_hook_seconds": self.hook_seconds,
                      "cost_hook_per_step_s": per_step} for a in out)
