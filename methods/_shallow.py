"""Numerical pieces shared by the shallow baselines (cca-itq, cvh, imh, cmfh, lssh, fsh).

Not a method (the leading underscore keeps the registry from importing it as one).
Everything here is plain numpy/scipy on float64 and has no state; each function says
what it solves so that the method modules can cite it in their equations.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg, sparse

from cmhbench.methods.base import PairedFeatures, check_memory

# --- training rows -------------------------------------------------------------------------


def subsample_rows(n: int, max_train: int, rng: np.random.Generator) -> np.ndarray:
    """Row indices to train on: all ``n`` rows, or ``max_train`` drawn without replacement.

    The indices come back sorted so the kept rows keep their original order.
    ``max_train`` < 2 is refused (a training set needs two pairs).
    """
    if max_train < 2:
        raise ValueError(f"max_train must be at least 2, got {max_train}")
    if n <= max_train:
        return np.arange(n)
    return np.sort(rng.choice(n, size=max_train, replace=False))


def data_rng(train: PairedFeatures, offset: int = 0) -> np.random.Generator:
    """A generator fixed by the training data's content key alone (not by any seed).

    Deterministic methods use it where they must draw something (a subsample), so their
    codes stay a function of the data and the hyper-parameters only.
    """
    return np.random.default_rng([int(train.key[:16], 16), int(offset)])


def centred(train: PairedFeatures, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """float64 copies of the chosen rows, centred; returns X, Y, mean_x, mean_y."""
    X = train.image[rows].astype(np.float64)
    Y = train.text[rows].astype(np.float64)
    mx, my = X.mean(axis=0), Y.mean(axis=0)
    X -= mx
    Y -= my
    return X, Y, mx, my


# --- closed-form least squares -------------------------------------------------------------


def ridge_solve(A: np.ndarray, B: np.ndarray, reg: float) -> np.ndarray:
    """argmin_W ||A W − B||² + reg·||W||²  =  (AᵀA + reg·I)⁻¹ AᵀB  (A: n x d, B: n x c).

    Solved through the d x d normal equations (Cholesky when they are positive definite,
    a least-squares solve otherwise).
    """
    G = A.T @ A
    G[np.diag_indices_from(G)] += reg
    rhs = A.T @ B
    try:
        return linalg.solve(G, rhs, assume_a="pos")
    except (linalg.LinAlgError, ValueError):
        return linalg.lstsq(G, rhs)[0]


def ridge_operator(A: np.ndarray, reg: float) -> np.ndarray:
    """(AᵀA + reg·I)⁻¹Aᵀ (d x n): ``ridge_solve(A, B, reg)`` is this times B, for any B."""
    G = A.T @ A
    G[np.diag_indices_from(G)] += reg
    try:
        return linalg.solve(G, A.T, assume_a="pos")
    except (linalg.LinAlgError, ValueError):
        return linalg.lstsq(G, A.T)[0]


def spd_solve_right(M: np.ndarray, G: np.ndarray) -> np.ndarray:
    """M G⁻¹ for a symmetric positive definite G (c x c): the "right division" M / G."""
    return linalg.solve(G, M.T, assume_a="pos").T


# --- covariances ----------------------------------------------------------------------------


def ridge_covariance(Z: np.ndarray, reg: float) -> np.ndarray:
    """C = ZᵀZ/(n−1) + reg·tr(C)/d·I of centred Z (n x d): a ridge relative to the average
    variance, so that it acts alike whatever the features' scale (cca-itq, cvh)."""
    C = Z.T @ Z / (Z.shape[0] - 1)
    scale = max(float(np.trace(C)) / C.shape[0], np.finfo(np.float64).tiny)
    C[np.diag_indices_from(C)] += reg * scale
    return C


def inverse_sqrt(C: np.ndarray) -> np.ndarray:
    """C^{-1/2} of a symmetric positive definite matrix (eigenvalues floored at 1e-12 of the largest)."""
    w, Q = linalg.eigh(C)
    w = np.maximum(w, w.max() * 1e-12)
    return (Q / np.sqrt(w)) @ Q.T


# --- distances and graphs ------------------------------------------------------------------


def squared_distances(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """||a_i − b_j||² for all rows, clipped at 0 against rounding."""
    d = (A * A).sum(1)[:, None] + (B * B).sum(1)[None, :] - 2.0 * (A @ B.T)
    np.maximum(d, 0.0, out=d)
    return d


def nearest(A: np.ndarray, B: np.ndarray, k: int, exclude_self: bool = False, chunk: int = 2048) -> np.ndarray:
    """Indices (len(A) x k) of the k nearest rows of B to each row of A, nearest first.

    Ties are broken by the lower index (a stable sort), so the result is a function of the
    data alone.  ``exclude_self`` (A is B) skips each row itself.
    """
    out = np.empty((A.shape[0], k), dtype=np.int64)
    for start in range(0, A.shape[0], chunk):
        stop = min(start + chunk, A.shape[0])
        d = squared_distances(A[start:stop], B)
        if exclude_self:
            d[np.arange(stop - start), np.arange(start, stop)] = np.inf
        out[start:stop] = np.argsort(d, axis=1, kind="stable")[:, :k]
    return out


def knn_laplacian(X: np.ndarray, k: int) -> sparse.csr_matrix:
    """Unnormalised Laplacian L = D − W of the symmetrised binary k-nearest-neighbour graph.

    W_ij = 1 when j is among the k nearest neighbours of i (itself excluded), then
    W ← (W + Wᵀ)/2, so W_ij is 1 for mutual neighbours and 1/2 for one-sided ones;
    D = diag(W 1).  Cost O(n²·d) time in chunks, O(n·k) memory for the graph.
    """
    n = X.shape[0]
    k = min(k, n - 1)
    idx = nearest(X, X, k, exclude_self=True)
    rows = np.repeat(np.arange(n), k)
    W = sparse.csr_matrix((np.ones(n * k), (rows, idx.ravel())), shape=(n, n))
    W = (W + W.T) * 0.5
    deg = np.asarray(W.sum(axis=1)).ravel()
    return (sparse.diags(deg) - W).tocsr()


def kmeans(Z: np.ndarray, m: int, rng: np.random.Generator, n_iter: int = 10) -> np.ndarray:
    """Lloyd's k-means: ``m`` centres of the rows of Z after ``n_iter`` rounds.

    Starts from ``m`` distinct rows drawn by ``rng``; a centre that loses all its points
    keeps its position.  Assignment ties go to the lower centre index.
    """
    n = Z.shape[0]
    m = min(m, n)
    centres = Z[rng.choice(n, size=m, replace=False)].copy()
    for _ in range(n_iter):
        assign = nearest(Z, centres, 1)[:, 0]
        counts = np.bincount(assign, minlength=m)
        sums = np.zeros_like(centres)
        np.add.at(sums, assign, Z)
        filled = counts > 0
        centres[filled] = sums[filled] / counts[filled, None]
    return centres


# --- sparse coding -------------------------------------------------------------------------


def lasso_fista(D: np.ndarray, X: np.ndarray, z: np.ndarray, n_iter: int) -> np.ndarray:
    """Columns s_i ≈ argmin_s ½||D s − x_i||² + z_i·||s||₁ by ``n_iter`` FISTA steps from 0.

    D: d x K dictionary, X: d x n signals (one per column), z: n per-column penalties.
    Step 1/L with L = ||D||₂² (Beck & Teboulle 2009).  Each column is solved on its own
    (the batch only vectorises), so the result of a column does not depend on the others.
    """
    K = D.shape[1]
    small = D @ D.T if D.shape[0] <= K else D.T @ D
    L = max(float(linalg.eigvalsh(small)[-1]), np.finfo(np.float64).tiny)  # ||D||₂²
    DtX = D.T @ X
    gram = K <= 2 * D.shape[0]  # DᵀD V is cheaper than Dᵀ(D V) when K ≤ 2d
    DtD = D.T @ D if gram else None
    theta = (z / L)[None, :]
    S = np.zeros((K, X.shape[1]))
    V = S.copy()
    clipped = np.empty_like(S)
    t = 1.0
    for _ in range(n_iter):
        G = DtD @ V if gram else D.T @ (D @ V)
        G -= DtX
        G *= -1.0 / L
        G += V  # G = V − ∇/L
        np.minimum(G, theta, out=clipped)
        np.maximum(clipped, -theta, out=clipped)
        G -= clipped  # soft threshold: G − clip(G, −θ, θ)
        t_new = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
        np.subtract(G, S, out=V)
        V *= (t - 1.0) / t_new
        V += G
        S, t = G, t_new
    return S


def lasso_objective(D: np.ndarray, X: np.ndarray, z: np.ndarray, S: np.ndarray) -> float:
    """Σ_i ½||D s_i − x_i||² + z_i·||s_i||₁ (what :func:`lasso_fista` lowers)."""
    R = D @ S - X
    return float(0.5 * (R * R).sum() + (z * np.abs(S).sum(axis=0)).sum())


def learn_basis(X: np.ndarray, S: np.ndarray, B: np.ndarray, sweeps: int = 1, max_norm: float = 1.0) -> np.ndarray:
    """min_B ||X − B S||² subject to ||b_j||₂ ≤ max_norm, by exact block-coordinate steps.

    X: d x n, S: K x n, B: d x K (the start; not modified).  Each step minimises over one
    column b_j with the others fixed — the unconstrained minimiser
    b_j = (X s_jᵀ − Σ_{l≠j} b_l (S Sᵀ)_{lj}) / (S Sᵀ)_jj projected onto the ball — so the
    objective never increases (the block-coordinate scheme of Mairal et al., JMLR 2010,
    for the constraint of Lee et al., NIPS 2007).  A column whose code row is all zero is
    left as it is.
    """
    B = B.copy()
    G = S @ S.T
    XSt = X @ S.T
    for _ in range(sweeps):
        for j in range(B.shape[1]):
            g = G[j, j]
            if g <= 1e-12:
                continue
            b = B[:, j] + (XSt[:, j] - B @ G[:, j]) / g
            norm = float(np.linalg.norm(b))
            B[:, j] = b if norm <= max_norm else b * (max_norm / norm)
    return B


def unit_rows(Z: np.ndarray) -> np.ndarray:
    """Rows scaled to unit Euclidean norm (all-zero rows stay zero)."""
    norms = np.sqrt((Z * Z).sum(axis=1, keepdims=True))
    return np.divide(Z, norms, out=np.zeros_like(Z), where=norms > 0)


def check_dense(n_floats: float, what: str) -> None:
    """check_memory for ``n_floats`` float64 values."""
    check_memory(int(8 * n_floats), what)
