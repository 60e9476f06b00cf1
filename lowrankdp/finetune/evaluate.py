"""What the engine records at each evaluation: the measurements (through the one scorer,
:func:`lowrankdp.measure.measure_all`), the privacy block, and the base model's epoch-0 measurement shared by the
runs of a sweep.

The base model's measurement (epoch 0) is the same for every method that starts from it (adapters start at
B = 0, compressed DP-SGD and DP-SGD from the base weights), so a sweep computes it once per (model, dataset,
measurement settings) and every run reads it: ``FinetuneConfig.base_cache`` names the directory, the key is a
hash of everything that determines the measurement, and a file lock makes concurrent runs wait for the first.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..results import Guarantee, Privacy, atomic_write_json

__all__ = ["BaseCache", "privacy_block", "measure_kwargs"]


def measure_kwargs(config) -> dict[str, Any]:
    """The keyword arguments of ``measure_all`` a run uses (also part of the base-cache key)."""
    kw: dict[str, Any] = dict(batch_size=config.measure_batch_size, exposure_max_candidates=config.exposure_max_candidates,
                              progress=False, seed=config.seed, delta=config.delta)
    for k in ("n_bootstrap", "exposure_sample_size"):
        if k in config.extra.get("measure_kwargs", {}):
            kw[k] = config.extra["measure_kwargs"][k]
    return kw


class BaseCache:
    """The shared epoch-0 measurement of one (model, dataset, settings): ``<key>.json`` (measurements and
    retention) and ``<key>.npz`` (the base model's per-token log-probs, so that later epochs get the
    ``*_gain_vs_base`` keys and the reference attack without re-scoring the base)."""

    def __init__(self, directory: str | Path, identity: dict[str, Any]):
        self.dir = Path(directory)
        self.key = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:20]
        self.json = self.dir / f"base-{self.key}.json"
        self.npz = self.dir / f"base-{self.key}.npz"

    @contextmanager
    def locked(self) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / f"base-{self.key}.lock", "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def load(self) -> tuple[dict[str, Any], tuple[list[np.ndarray], list[np.ndarray]]] | None:
        if not (self.json.is_file() and self.npz.is_file()):
            return None
        try:
            entry = json.loads(self.json.read_text(encoding="utf-8"))
            with np.load(self.npz) as z:
                lp = (_split(z["tr"], z["tr_len"]), _split(z["te"], z["te_len"]))
        except (OSError, ValueError, KeyError):
            return None  # a damaged cache entry is recomputed, never trusted
        return entry, lp

    def store(self, entry: dict[str, Any], logprobs: tuple[list[np.ndarray], list[np.ndarray]]) -> None:
        tr, te = logprobs
        tmp = self.npz.with_name(self.npz.name + ".tmp.npz")
        np.savez(tmp, tr=_cat(tr), tr_len=np.array([a.size for a in tr]), te=_cat(te),
                 te_len=np.array([a.size for a in te]))
        tmp.replace(self.npz)
        atomic_write_json(self.json, entry)  # written last: its presence means both files are complete


def _cat(arrays: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(arrays) if arrays else np.zeros(0)


def _split(flat: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
    return np.split(flat, np.cumsum(lengths)[:-1]) if lengths.size else []


def privacy_block(config, *, steps: int, sampling_rate: float | None, projection=None, span_dim: int | None,
                  calibrated: float | None) -> Privacy:
    """ε of a run after ``steps`` steps, from ``lowrankdp.accounting`` with the accountant of its method."""
    from .. import accounting

    spec = config.spec
    if not spec.private:
        return Privacy.none()
    sigma = calibrated if calibrated is not None else config.noise_multiplier
    base = dict(accountant=config.accountant, delta=config.delta, noise_multiplier=sigma, sampling_rate=sampling_rate,
                steps=steps, max_grad_norm=config.max_grad_norm, target_epsilon=config.target_epsilon,
                privacy_unit="token (per-token clipping: ε does not protect a record)" if config.clip_unit == "token"
                else "record")
    kw: dict[str, Any] = dict(noise_multiplier=sigma, sampling_rate=sampling_rate, steps=steps, delta=config.delta,
                              accountant=config.accountant)
    notes: list[str] = []
    assumption = None
    if projection is not None:
        dims = [d_in for (_o, d_in) in projection.dims.values()]
        base.update(projection=projection.mode, d=tuple(sorted(set(dims))), r=config.rank)
        kw.update(projection=projection.mode, d=dims, r=config.rank, span_dim=span_dim)
        base["span_dim"] = span_dim
        notes.append(f"{projection.mode} projection accounted with span_dim={span_dim} (the most tokens in a "
                     "training record: a record's gradient spans up to that many input directions)")
        if projection.mode == "fixed":
            assumption = accounting.FIXED_PROJECTION_ASSUMPTION
        else:
            assumption = accounting.FRESH_PROJECTION_ASSUMPTION
    if steps == 0:
        return Privacy(epsilon=0.0, guarantee=Guarantee.BOUND, source="no step taken", assumption=assumption,
                       notes=tuple(notes), **base)
    eps, guarantee, source = accounting_epsilon(kw)
    return Privacy(epsilon=eps, guarantee=guarantee, source=source, assumption=assumption, notes=tuple(notes),
                   **base)


def accounting_epsilon(kw: dict[str, Any]) -> tuple[float | None, Guarantee, str]:
    """(ε, what it is, where it came from) from ``lowrankdp.accounting.epsilon_result(**kw)``: the tightest valid
    value among its accountants, flagged "estimate" where it is not a proven bound. A failure is recorded, never
    replaced by another number."""
    from .. import accounting

    try:
        res = accounting.epsilon_result(**kw)
    except ValueError as exc:
        return None, Guarantee.NONE, f"lowrankdp.accounting.epsilon_result failed: {exc}"
    eps = float(res.epsilon)
    if not math.isfinite(eps):
        return eps, Guarantee.NONE, f"lowrankdp.accounting ({res.source})"
    kind = Guarantee.ESTIMATE if res.kind == "estimate" else Guarantee.BOUND
    return eps, kind, f"lowrankdp.accounting ({res.source})"
