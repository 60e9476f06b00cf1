"""Monte Carlo of the exact δ(ε) of a projected Gaussian run under replace-one neighbours, shared by the fresh and
fixed PLD tests (tests/test_accounting_pld.py, tests/test_accounting_pld_fixed.py).

Record u in one world, v in the other (``config``: antipodal v = −u, or orthogonal); T Poisson-sampled steps in the
projected space, every projection public; ``projection="fixed"`` draws one A for the run, ``"fresh"`` a new one per
step. Returns (δ̂, standard error) of the larger direction.
"""

import math

import numpy as np


def replace_one_delta(eps, *, z, q, t, d, r, n, seed, config, projection):
    rng = np.random.default_rng(seed)
    u = np.eye(d)[0]
    v = -u if config == "antipodal" else np.eye(d)[1]

    def directions():  # u and v in an orthonormal basis of A's row space
        qm, _ = np.linalg.qr(rng.standard_normal((n, d, r)))
        return np.einsum("ndr,d->nr", qm, u), np.einsum("ndr,d->nr", qm, v)

    fixed = directions() if projection == "fixed" else None
    out = []
    for sign in (1.0, -1.0):
        total = np.zeros(n)
        for _ in range(t):
            au, av = fixed if fixed is not None else directions()
            y = z * rng.standard_normal((n, r)) + (au if sign > 0 else av) * (rng.random(n) < q)[:, None]
            lu = (2 * np.einsum("nr,nr->n", y, au) - np.sum(au**2, 1)) / (2 * z * z)
            lv = (2 * np.einsum("nr,nr->n", y, av) - np.sum(av**2, 1)) / (2 * z * z)
            total += sign * (np.log1p(q * np.expm1(lu)) - np.log1p(q * np.expm1(lv)))  # log p_u(y)/p_v(y)
        vals = np.maximum(0.0, -np.expm1(eps - total))
        out.append((vals.mean(), vals.std() / math.sqrt(n)))
    return max(out)
