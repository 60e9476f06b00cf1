"""Lemma (docs/theory.md §4.8): truncating a fresh projection at every step costs the union of the tails.

Setting. T adaptive steps. At step t, given the history h (all earlier outputs), a projection A_t is drawn from a
law π that is the same under both neighbours, then Y_t from P_t(· | A_t, h) (world "in") or Q_t(· | A_t, h)
("out"); the transcript is (A_1, Y_1, …, A_T, Y_T). G_t(h) is a set of projections (the ones keeping at most τ of
the record's directions at step t; it may depend on h and on the pair of datasets, never on the world), with
π(G_t(h)ᶜ) ≤ p for every h. P^G, Q^G are the transcripts' laws when every A_t is drawn from π conditioned on G_t(h).

Statement. For every γ = e^ε ≥ 0 and every event S of transcripts, if H_γ(P^G‖Q^G) ≤ δ₁ then
    P(S) ≤ γ·Q(S) + δ₁ + 1 − (1 − p)^T,   and   1 − (1 − p)^T ≤ T·p.

Proof. (a) P(S ∩ G) = E_{P^G}[w·1_S] and Q(S ∩ G) = E_{Q^G}[w·1_S] with the same path weight
w = Π_t π(G_t(h_{<t})) ∈ [0, 1] (a function of the transcript, not of the world): factor each step's
sub-probability kernel π(· ∩ G_t)·P_t as π(G_t)·(conditioned kernel). (b) For a test f with values in [0, 1],
f·(p − γq) ≤ (p − γq)_+ pointwise, so E_P[f] − γ E_Q[f] ≤ H_γ(P‖Q); with f = w·1_S this gives
P(S ∩ G) ≤ γ Q(S ∩ G) + δ₁ ≤ γ Q(S) + δ₁. (c) P(Gᶜ) = 1 − E_P[w] ≤ 1 − (1 − p)^T. (d) Bernoulli:
g(p) = T·p − 1 + (1 − p)^T has g(0) = 0 and g′(p) = T(1 − (1 − p)^{T−1}) ≥ 0 on [0, 1].

Checks: SYMBOLIC (sympy) — (b) on both signs of p − γq, and (d); NUMERIC — exact finite adaptive mechanisms with
history-dependent bad sets: the statement holds for every random instance (to float accuracy), and dropping the
tail term fails on some instance (so the test can fail and the term is needed); the conditioned moment of an
increasing function of one Beta is at most the unconditioned one (used to combine the truncated and ₁F₁ curves).
"""

import itertools

import numpy as np
import sympy as sp
from scipy import integrate, stats


def test_bounded_test_function_symbolic():
    f, gamma = sp.symbols("f gamma", nonnegative=True)
    x = sp.symbols("x", positive=True)
    for sign in (1, -1):  # p − γq = ±x
        diff = sign * x
        gap = sp.Max(diff, 0) - f * diff
        # the gap is affine in f, so its minimum over f ∈ [0, 1] is at an end
        for end in (0, 1):
            assert sp.simplify(gap.subs(f, end)).is_nonnegative, (sign, end)


def test_bernoulli_union_symbolic():
    p = sp.symbols("p", nonnegative=True)
    for T in range(1, 12):
        g = T * p - 1 + (1 - p) ** T
        assert sp.simplify(g.subs(p, 0)) == 0
        dg = sp.expand(sp.diff(g, p))
        assert sp.simplify(dg - T * (1 - (1 - p) ** (T - 1))) == 0
    # g' ≥ 0 on [0, 1] because 0 ≤ (1 − p)^(T−1) ≤ 1 there: checked on a fine grid for every T above
    ps = np.linspace(0, 1, 1001)
    for T in range(1, 12):
        assert np.all(T * (1 - (1 - ps) ** (T - 1)) >= -1e-15)


def _transcripts(pi, kernels, bad, T, cond):
    """Exact law of the transcript ((a_1, y_1), …) as a dict, for one world. ``kernels[t][h]`` is an (m, n) array
    of output laws given A = a_i and history h (a tuple of earlier (a, y)); ``bad[t][h]`` a boolean mask of A.
    ``cond``: draw A from π conditioned on the complement of the bad set."""
    law = {(): 1.0}
    for t in range(T):
        nxt = {}
        for h, ph in law.items():
            w = pi * (~bad[t][h]) if cond else pi
            w = w / w.sum()
            for a, y in itertools.product(range(len(pi)), range(kernels[t][h].shape[1])):
                m = ph * w[a] * kernels[t][h][a, y]
                if m > 0:
                    nxt[h + ((a, y),)] = nxt.get(h + ((a, y),), 0.0) + m
        law = nxt
    return law


def _histories(m, n, t):
    return [tuple(x) for x in itertools.product(itertools.product(range(m), range(n)), repeat=t)]


def _hockey(P, Q, g):
    keys = set(P) | set(Q)
    return sum(max(P.get(k, 0.0) - g * Q.get(k, 0.0), 0.0) for k in keys)


def test_union_over_steps_on_exact_adaptive_mechanisms():
    rng = np.random.default_rng(0)
    needed = False
    for _ in range(150):
        T = int(rng.integers(1, 4))
        m, n = int(rng.integers(2, 4)), int(rng.integers(2, 4))
        pi = rng.dirichlet(np.ones(m))
        kin, kout, bad = [], [], []
        p_max = 0.0
        for t in range(T):
            ki, ko, bd = {}, {}, {}
            for h in _histories(m, n, t):
                mask = rng.random(m) < 0.35
                if mask.all():
                    mask[rng.integers(m)] = False
                bd[h] = mask
                p_max = max(p_max, float(pi[mask].sum()))
                ko[h] = rng.dirichlet(np.ones(n), size=m)
                # "in" world: close to "out" on good projections, far on bad ones (as a large b would be)
                far = rng.dirichlet(np.full(n, 0.3), size=m)
                near = 0.8 * ko[h] + 0.2 * rng.dirichlet(np.ones(n), size=m)
                ki[h] = np.where(mask[:, None], far, near)
            kin.append(ki)
            kout.append(ko)
            bad.append(bd)
        P, Q = _transcripts(pi, kin, bad, T, False), _transcripts(pi, kout, bad, T, False)
        PG, QG = _transcripts(pi, kin, bad, T, True), _transcripts(pi, kout, bad, T, True)
        assert abs(sum(P.values()) - 1) < 1e-12 and abs(sum(PG.values()) - 1) < 1e-12
        for g in (1.0, 1.5, 3.0):
            for A, B, AG, BG in ((P, Q, PG, QG), (Q, P, QG, PG)):
                d1 = _hockey(AG, BG, g)
                tail = 1 - (1 - p_max) ** T
                assert _hockey(A, B, g) <= d1 + tail + 1e-12
                assert tail <= T * p_max + 1e-15
                needed = needed or _hockey(A, B, g) > d1 + 1e-9
    assert needed  # without the union term the statement fails on some instance: the check can fail


def test_truncation_lowers_the_moment_of_one_beta():
    d, r, z, q = 64, 4, 0.7, 0.3
    law = stats.beta(r / 2, (d - r) / 2)
    for alpha in (2, 5, 20):
        k = np.arange(alpha + 1)
        w = np.array([float(sp.binomial(alpha, int(j))) for j in k]) * (1 - q) ** (alpha - k) * q**k

        def A(b):
            return float(np.sum(w * np.exp(k * (k - 1) * b / (2 * z * z))))

        full = integrate.quad(lambda b: A(b) * law.pdf(b), 0, 1, limit=400, points=[law.ppf(0.999)])[0]
        for tau in (law.ppf(0.9), law.ppf(0.999), 0.5):
            cond = integrate.quad(lambda b: A(b) * law.pdf(b), 0, tau, limit=400)[0] / law.cdf(tau)
            assert cond <= full * (1 + 1e-9)
