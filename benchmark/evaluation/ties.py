"""Tie-aware AP from per-distance counts: exact expectations over the orders of tied items,
and the best and worst orders.

A Hamming ranking is only a partial order: the ``n_d`` items at distance ``d`` (``r_d`` of
them relevant) may come in any order.  Everything here is a function of the counts
``n[q, d]`` / ``r[q, d]`` the engine gathers in its one pass over the database, so it costs
nothing per database item and is the same whichever backend computed the counts.

Notation for one query: ``N_<d`` / ``R_<d`` items / relevant items closer than ``d``; H(m)
the m-th harmonic number.

**Expected AP over the whole ranking** (``tmap@all``; McSherry & Najork, ECIR 2008; He,
Cakir, Bargal & Sclaroff, CVPR 2018).  With every order of a group equally likely, the place
i of the group holds a relevant item with probability r_d/n_d, and given that, the other
r_d − 1 relevant items of the group fill the other n_d − 1 places uniformly, so
(i − 1)(r_d − 1)/(n_d − 1) of them are expected before it.  The group's expected share of
Σ m / p is

    G_d = (r_d/n_d) Σ_{i=1}^{n_d} [R_<d + 1 + (i−1)(r_d−1)/(n_d−1)] / (N_<d + i),

and AP_T = (1/R) Σ_d G_d, R being fixed.

**Expected AP@K** (``tmap@K``, with map@K's normalisation by the relevant items inside the
top K).  Let b be the group holding rank K (N_<b < K ≤ N_<b + n_b) and k' = K − N_<b its
places inside the top K.  Groups before b lie wholly in the top K; group b contributes its
first k' places; the count X of relevant items among those places is hypergeometric
(n_b items, r_b relevant, k' drawn), and the normaliser is R_<b + X.  The orders of
different groups are independent, so the groups before b contribute E[Σ_{d<b} G_d /
(R_<b + X)] = (Σ_{d<b} G_d) · E[1 / (R_<b + X)].  Given X = x, the first k' places of group b
hold a uniformly random arrangement of x relevant items, so by the same argument as above
group b adds in expectation

    S(x) = (x/k') Σ_{i=1}^{k'} [R_<b + 1 + (i−1)(x−1)/(k'−1)] / (N_<b + i),

and AP@K_T = Σ_x P(X = x) · (Σ_{d<b} G_d + S(x)) / (R_<b + x), a term with R_<b + x = 0
(no relevant item in the top K) being 0 as in ``map@K``.  With K ≥ N it equals AP_T.

**Best and worst orders of AP@K.**  Given x, relevant items first inside every group (and
inside the k' places of group b) maximise every term m / p, relevant items last minimise
them; the mean of ``map@K`` over queries is then extreme when each query is, so the best
(worst) ``map@K`` over all tie orders is the mean of the per-query maximum (minimum) over x.
"""

from __future__ import annotations

import math

import numpy as np

# Query rows per vectorised chunk times the width of the hypergeometric support: bounds memory.
_CHUNK_CELLS = 1 << 20


def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den elementwise, 0 where den is 0 (a query with nothing to normalise by scores 0)."""
    num = np.asarray(num, np.float64)
    den = np.asarray(den, np.float64)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den > 0)


_H_SMALL = 64
_H_TABLE = np.array([math.fsum(1.0 / i for i in range(1, k + 1)) for k in range(_H_SMALL + 1)])


def _harmonic_tail(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """H(b) − H(a) for a, b ≥ 64 from the asymptotic series of H, without cancellation."""
    ia, ib = 1.0 / a, 1.0 / b
    ia2, ib2 = ia * ia, ib * ib
    return (np.log1p((b - a) / a) + 0.5 * (ib - ia) - (ib2 - ia2) / 12.0
            + (ib2 * ib2 - ia2 * ia2) / 120.0 - (ib2 * ib2 * ib2 - ia2 * ia2 * ia2) / 252.0)


def harmonic_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """H(b) − H(a) = Σ_{i=a+1}^{b} 1/i for integers 0 ≤ a ≤ b, to a few ulps of the result."""
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    a, b = np.broadcast_arrays(a, b)
    small_a, small_b = np.minimum(a, _H_SMALL), np.minimum(b, _H_SMALL)
    head = _H_TABLE[small_b] - _H_TABLE[small_a]  # the part of the sum below 64, exact table
    fa = np.maximum(a, _H_SMALL).astype(np.float64)
    fb = np.maximum(b, _H_SMALL).astype(np.float64)
    return head + np.where(b > _H_SMALL, _harmonic_tail(fa, fb), 0.0)


def _expected_share(before: np.ndarray, rel_before: np.ndarray, n: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Expected Σ m / p over the relevant items among the first ``n`` places of a group that
    starts after ``before`` items (``rel_before`` relevant) and holds ``r`` relevant items
    in those places, every arrangement equally likely (G_d, or S(x) with n = k', r = x)."""
    h = harmonic_difference(before, before + n)  # Σ_{i=1}^{n} 1 / (N_< + i)
    # Σ_{i=1}^{n} (i − 1) / (N_< + i) = n − (N_< + 1) · h
    spread = ratio(r - 1, n - 1) * (n - (before + 1) * h)
    group = (rel_before + 1) * h + np.where(n > 1, spread, 0.0)
    return np.where(r > 0, ratio(r, n) * group, 0.0)


def tie_aware_ap(n: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Per-query expected AP over all orders of tied items, from counts ``n``, ``r`` of shape (Q, B)."""
    n = np.asarray(n, np.int64)
    r = np.asarray(r, np.int64)
    before = np.cumsum(n, axis=1) - n
    rel_before = np.cumsum(r, axis=1) - r
    return ratio(_expected_share(before, rel_before, n, r).sum(axis=1), r.sum(axis=1))


def _boundary(n: np.ndarray, r: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Per query: the group holding rank K and what lies before it (see the module docstring)."""
    n_total = n.sum(axis=1)
    k_eff = np.minimum(k, n_total)  # a K beyond the database is the database size
    ends = np.cumsum(n, axis=1)
    b = np.argmax(ends >= k_eff[:, None], axis=1)
    rows = np.arange(n.shape[0])
    nb, rb = n[rows, b], r[rows, b]
    before = ends[rows, b] - nb
    rel_before = np.cumsum(r, axis=1)[rows, b] - rb
    kp = k_eff - before
    lo = np.maximum(0, kp - (nb - rb))
    hi = np.minimum(kp, rb)
    return {"b": b, "nb": nb, "rb": rb, "before": before, "rel_before": rel_before, "kp": kp, "lo": lo, "hi": hi}


def _groups_before(n: np.ndarray, r: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, ...]:
    """N_<d, R_<d, n_d, r_d for the distances up to the last boundary group (a small K needs
    only the first few distances; the rest are never read)."""
    cols = int(b.max()) + 1
    n, r = n[:, :cols], r[:, :cols]
    return np.cumsum(n, axis=1) - n, np.cumsum(r, axis=1) - r, n, r


def _hypergeometric(nb: np.ndarray, rb: np.ndarray, kp: np.ndarray, x: np.ndarray,
                    valid: np.ndarray) -> np.ndarray:
    """P(X = x) for X ~ Hypergeometric(nb items, rb relevant, kp drawn), x = lo + column.

    Built from the ratio P(x+1)/P(x) = (rb−x)(kp−x) / ((x+1)(nb−rb−kp+x+1)), summed in logs
    from the lowest x of the support and normalised, so every weight is accurate to a few
    ulps times the width of the support (no factorials of database sizes).
    """
    xs = x[:, :-1]
    step_ok = valid[:, 1:]
    num = np.where(step_ok, (rb[:, None] - xs) * (kp[:, None] - xs), 1)
    den = np.where(step_ok, (xs + 1) * (nb[:, None] - rb[:, None] - kp[:, None] + xs + 1), 1)
    log_w = np.zeros(x.shape)
    np.cumsum(np.log(num.astype(np.float64)) - np.log(den.astype(np.float64)), axis=1, out=log_w[:, 1:])
    log_w = np.where(valid, log_w, -np.inf)
    w = np.exp(log_w - log_w.max(axis=1, keepdims=True))
    return w / w.sum(axis=1, keepdims=True)


def _support(g: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """x = lo, lo + 1, ... per query row, padded to the chunk's widest support with copies of
    hi (so padding stays a possible count and every formula stays in range), and the mask
    of the real support."""
    width = int((g["hi"] - g["lo"]).max()) + 1
    x = g["lo"][:, None] + np.arange(width)[None, :]
    valid = x <= g["hi"][:, None]
    return np.minimum(x, g["hi"][:, None]), valid


def _chunks(n_rows: int, width: int) -> list[slice]:
    step = max(1, _CHUNK_CELLS // max(1, width))
    return [slice(i, min(i + step, n_rows)) for i in range(0, n_rows, step)]


def tie_aware_ap_at_k(n: np.ndarray, r: np.ndarray, k: int) -> np.ndarray:
    """Per-query expected AP@K (map@K's normalisation) over all orders of tied items, (Q,)."""
    n = np.asarray(n, np.int64)
    r = np.asarray(r, np.int64)
    out = np.zeros(n.shape[0])
    if n.shape[0] == 0:
        return out
    g = _boundary(n, r, int(k))
    before, rel_before, n_in, r_in = _groups_before(n, r, g["b"])
    shares = _expected_share(before, rel_before, n_in, r_in)
    full = np.where(np.arange(n_in.shape[1])[None, :] < g["b"][:, None], shares, 0.0).sum(axis=1)
    width = int((g["hi"] - g["lo"]).max()) + 1
    for part in _chunks(n.shape[0], width):
        gp = {key: value[part] for key, value in g.items()}
        x, valid = _support(gp)
        p = _hypergeometric(gp["nb"], gp["rb"], gp["kp"], x, valid)
        col = lambda key: gp[key][:, None]  # noqa: E731
        boundary = _expected_share(col("before"), col("rel_before"), col("kp"), x)
        value = ratio(full[part][:, None] + boundary, col("rel_before") + x)
        out[part] = np.where(valid, p * value, 0.0).sum(axis=1)
    return out


def _ordered_share(before: np.ndarray, rel_before: np.ndarray, offset: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Σ_{j=1}^{r} (R_< + j) / (N_< + offset + j): r relevant items in consecutive places
    after ``before + offset`` items, as r + (R_< − N_< − offset)·(H(N_< + offset + r) − H(N_< + offset))."""
    start = before + offset
    return r + (rel_before - start) * harmonic_difference(start, start + r)


def ap_at_k_extremes(n: np.ndarray, r: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-query (worst, best) AP@K over all orders of tied items, each (Q,).

    The mean of each over queries is the lowest / highest ``map@K`` any tie rule can give.
    """
    n = np.asarray(n, np.int64)
    r = np.asarray(r, np.int64)
    worst, best = np.zeros(n.shape[0]), np.zeros(n.shape[0])
    if n.shape[0] == 0:
        return worst, best
    g = _boundary(n, r, int(k))
    before, rel_before, n_in, r_in = _groups_before(n, r, g["b"])
    inside = np.arange(n_in.shape[1])[None, :] < g["b"][:, None]
    first = np.where(inside, _ordered_share(before, rel_before, 0, r_in), 0.0).sum(axis=1)
    last = np.where(inside, _ordered_share(before, rel_before, n_in - r_in, r_in), 0.0).sum(axis=1)
    width = int((g["hi"] - g["lo"]).max()) + 1
    for part in _chunks(n.shape[0], width):
        gp = {key: value[part] for key, value in g.items()}
        x, valid = _support(gp)
        col = lambda key: gp[key][:, None]  # noqa: E731
        high = ratio(first[part][:, None] + _ordered_share(col("before"), col("rel_before"), 0, x),
                      col("rel_before") + x)
        low = ratio(last[part][:, None] + _ordered_share(col("before"), col("rel_before"), col("kp") - x, x),
                     col("rel_before") + x)
        best[part] = np.where(valid, high, -np.inf).max(axis=1)
        worst[part] = np.where(valid, low, np.inf).min(axis=1)
    return worst, best
