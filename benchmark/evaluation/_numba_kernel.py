"""Optional compiled kernel for :func:`cmhbench.evaluation.engine.ranking_stats`.

Importing this module raises ImportError where numba is absent; the engine then uses
its numpy path, which computes the same statistics.  Per query, two passes over the
database in row order:

1. over the database in row order: distance (popcount of XOR) and relevance (a shared
   label bit) of every item, counted per distance; the running counts are every item's
   place in its distance bucket in row order, which relevant items note down;
2. over the relevant items only: with the items before each distance known (prefix sums
   of the counts), place in bucket + items closer = the stable rank p (ties in row
   order), and likewise the relevant-rank m, so m / p is summed without sorting.
   Cut-offs are resolved from the counts: a top-K prefix covers whole distance buckets
   plus part of one, and only items of that boundary bucket are compared with K.

``nogil=True``: the engine calls it from several threads over blocks of queries.
``cache=True``: compiled code is cached beside this file (in ``__pycache__``).
"""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.extending import intrinsic


@intrinsic
def _popcount(typingctx, x):
    """The CPU's population count of a uint64 (LLVM ctpop), typed int64."""
    if not isinstance(x, types.Integer):
        return None
    sig = types.int64(types.uint64)

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return sig, codegen


@njit(nogil=True, cache=True, inline="always")
def _scan_one_word(x, y, dw, dl, count, rcount, rel_dist, rel_a, rel_b):  # pragma: no cover - compiled
    """Pass 1 for codes and labels of one uint64 word each (1-D views: much faster loop)."""
    found = 0
    for j in range(dw.shape[0]):
        dist = _popcount(x ^ dw[j])
        rel = 1 if (y & dl[j]) != 0 else 0
        a = count[dist] + 1
        count[dist] = a
        b = rcount[dist] + rel
        rcount[dist] = b
        # Written for every item, kept (found advances) only for relevant ones: no branch.
        rel_dist[found] = dist
        rel_a[found] = a
        rel_b[found] = b
        found += rel
    return found


@njit(nogil=True, cache=True, inline="always")
def _scan_words(x, y, dw, dl, count, rcount, rel_dist, rel_a, rel_b):  # pragma: no cover - compiled
    """Pass 1 for codes or labels of several uint64 words."""
    found = 0
    for j in range(dw.shape[0]):
        dist = 0
        for w in range(dw.shape[1]):
            dist += _popcount(x[w] ^ dw[j, w])
        shared = np.uint64(0)
        for w in range(dl.shape[1]):
            shared |= y[w] & dl[j, w]
        rel = 1 if shared != 0 else 0
        a = count[dist] + 1
        count[dist] = a
        b = rcount[dist] + rel
        rcount[dist] = b
        rel_dist[found] = dist
        rel_a[found] = a
        rel_b[found] = b
        found += rel
    return found


@njit(nogil=True, cache=True)
def stats_kernel(qw, dw, ql, dl, n_bits, stable, pos_k, rank_k, lo, hi,
                 n_out, r_out, ap_out, hits_out, pos_out, rank_out):  # pragma: no cover - compiled
    n_db = dw.shape[0]
    one_word = dw.shape[1] == 1 and dl.shape[1] == 1
    dw1 = dw[:, 0].copy()
    dl1 = dl[:, 0].copy()
    n_bins = n_bits + 1
    n_pos = pos_k.shape[0]
    n_rank = rank_k.shape[0]
    # Per relevant item, in row order: its distance, its place among the items (a) and
    # among the relevant items (b) at that distance so far (both 1-based).
    rel_dist = np.empty(n_db, np.int32)
    rel_a = np.empty(n_db, np.int32)
    rel_b = np.empty(n_db, np.int32)
    count = np.zeros(n_bins, np.int64)
    rcount = np.zeros(n_bins, np.int64)
    ncum = np.zeros(n_bins + 1, np.int64)
    rcum = np.zeros(n_bins + 1, np.int64)
    bucket_sum = np.zeros(n_bins, np.float64)
    pos_bucket = np.zeros(n_pos, np.int64)
    pos_lo = np.zeros(n_bins, np.int64)
    pos_hi = np.zeros(n_bins, np.int64)
    part_sum = np.zeros(n_pos, np.float64)
    part_cnt = np.zeros(n_pos, np.int64)
    rank_bucket = np.zeros(n_rank, np.int64)
    rank_lim = np.zeros(n_rank, np.int64)
    rank_lo = np.zeros(n_bins, np.int64)
    rank_hi = np.zeros(n_bins, np.int64)
    rank_part = np.zeros(n_rank, np.float64)
    for q in range(lo, hi):
        # Pass 1 over the database, in row order: distance, relevance, running counts.
        for d in range(n_bins):
            count[d] = 0
            rcount[d] = 0
        if one_word:
            found = _scan_one_word(qw[q, 0], ql[q, 0], dw1, dl1, count, rcount, rel_dist, rel_a, rel_b)
        else:
            found = _scan_words(qw[q], ql[q], dw, dl, count, rcount, rel_dist, rel_a, rel_b)
        for d in range(n_bins):
            n_out[q, d] = count[d]
            r_out[q, d] = rcount[d]
        if not stable:
            continue
        for d in range(n_bins):
            ncum[d + 1] = ncum[d] + count[d]
            rcum[d + 1] = rcum[d] + rcount[d]
        total = rcum[n_bins]
        if total == 0:
            ap_out[q] = 0.0
            for e in range(n_pos):
                hits_out[q, e] = 0
                pos_out[q, e] = 0.0
            for e in range(n_rank):
                rank_out[q, e] = 0.0
            continue
        # Boundary bucket of each top-K cut-off (K ascending, so buckets ascend too).
        for d in range(n_bins):
            pos_lo[d] = 0
            pos_hi[d] = 0
            rank_lo[d] = 0
            rank_hi[d] = 0
            bucket_sum[d] = 0.0
        d = 0
        for e in range(n_pos):
            while ncum[d + 1] < pos_k[e]:
                d += 1
            pos_bucket[e] = d
            part_sum[e] = 0.0
            part_cnt[e] = 0
        for e in range(n_pos - 1, -1, -1):
            pos_lo[pos_bucket[e]] = e
        for e in range(n_pos):
            pos_hi[pos_bucket[e]] = e + 1
        # Boundary bucket of each first-min(K, R)-relevant cut-off.
        d = 0
        for e in range(n_rank):
            lim = rank_k[e] if rank_k[e] < total else total
            rank_lim[e] = lim
            while rcum[d + 1] < lim:
                d += 1
            rank_bucket[e] = d
            rank_part[e] = 0.0
        for e in range(n_rank - 1, -1, -1):
            rank_lo[rank_bucket[e]] = e
        for e in range(n_rank):
            rank_hi[rank_bucket[e]] = e + 1
        # Pass 2 over the relevant items only: stable rank p = items closer + place in
        # the bucket; relevant-rank m likewise.
        if n_pos == 0 and n_rank == 0:
            acc = 0.0
            for i in range(found):
                d = rel_dist[i]
                acc += (rcum[d] + rel_b[i]) / (ncum[d] + rel_a[i])
            ap_out[q] = acc
            continue
        for i in range(found):
            d = rel_dist[i]
            p = ncum[d] + rel_a[i]
            m = rcum[d] + rel_b[i]
            v = m / p
            bucket_sum[d] += v
            for e in range(pos_lo[d], pos_hi[d]):
                if p <= pos_k[e]:
                    part_sum[e] += v
                    part_cnt[e] += 1
            for e in range(rank_lo[d], rank_hi[d]):
                if m <= rank_lim[e]:
                    rank_part[e] += v
        acc = 0.0
        for d in range(n_bins):
            acc += bucket_sum[d]
        ap_out[q] = acc
        for e in range(n_pos):
            s = part_sum[e]
            for d in range(pos_bucket[e]):
                s += bucket_sum[d]
            pos_out[q, e] = s
            hits_out[q, e] = rcum[pos_bucket[e]] + part_cnt[e]
        for e in range(n_rank):
            s = rank_part[e]
            for d in range(rank_bucket[e]):
                s += bucket_sum[d]
            rank_out[q, e] = s
