"""``cca-itq``: canonical correlation analysis to a shared space, then ITQ.

Paper: Y. Gong, S. Lazebnik, A. Gordo, F. Perronnin, "Iterative Quantization: A
Procrustean Approach to Learning Binary Codes for Large-Scale Image Retrieval",
IEEE TPAMI 35(12), 2013 (CVPR 2011 for ITQ).  There CCA pairs image features with a
second view; in cross-modal hashing the second view is the text, and the same projection
and rotation code both modalities.

Equations as implemented (X, Y the centred training features, n pairs):

1. Covariances with a ridge: C_xx = XᵀX/(n−1) + r·tr(C_xx)/d_x·I, likewise C_yy;
   C_xy = XᵀY/(n−1).
2. CCA: the SVD of C_xx^{−1/2} C_xy C_yy^{−1/2} = U diag(ρ) Vᵀ gives canonical
   directions W_x = C_xx^{−1/2} U_k, W_y = C_yy^{−1/2} V_k for the top k = min(d_x, d_y, c)
   correlations (c = bits); optionally each direction is scaled by ρ^p (``corr_power`` p).
3. ITQ (CVPR 2011, Alg. 1): on V = [X W_x; Y W_y] (both modalities' training embeddings
   stacked), alternate B = sgn(V R) and the orthogonal Procrustes step R = Ŝ Sᵀ from the
   SVD S Ω Ŝᵀ = Bᵀ V, for ``n_iter`` iterations from a random orthogonal R.
4. Codes: sgn((x − μ_x) W_x R) for an image, sgn((y − μ_y) W_y R) for a text.

Defaults: ``n_iter`` = 50 (ITQ paper, "50 iterations"); ``reg`` = 1e-4 (the ridge the
authors' code adds); ``corr_power`` = 0 (unscaled directions; the TPAMI paper discusses
weighting CCA directions by a power of their eigenvalues as an option).

Deviations, and why:
- The ridge is relative to the average feature variance (r·tr(C)/d) instead of an absolute
  1e-4 on the scatter matrix, so that it has the same effect whatever the features' scale
  (L1-normalised SIFT vs binary tags) and keeps rank-deficient covariances invertible.
- More bits than canonical directions (c > k, e.g. 128 bits with Wikipedia's 10-d text):
  the embedding is zero-padded to c dimensions and ITQ rotates the padded space, so the
  extra bits are further rotations of the same shared k-dimensional space and stay
  consistent across modalities (random per-modality directions would add pure noise bits).

Memory: O(n·(d_x + d_y) + (d_x + d_y)²).  Seed: the initial ITQ rotation.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from scipy import linalg

from cmhbench.methods._shallow import inverse_sqrt, ridge_covariance
from cmhbench.methods.base import Hasher, PairedFeatures, check_memory
from cmhbench.methods.domains import ITERATIONS, Real
from cmhbench.methods.registry import register


def cca(X: np.ndarray, Y: np.ndarray, k: int, reg: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-k canonical directions (W_x, W_y) and correlations of centred X and Y."""
    Kx = inverse_sqrt(ridge_covariance(X, reg))
    Ky = inverse_sqrt(ridge_covariance(Y, reg))
    Cxy = X.T @ Y / (X.shape[0] - 1)
    U, rho, Vt = linalg.svd(Kx @ Cxy @ Ky, full_matrices=False)
    return Kx @ U[:, :k], Ky @ Vt[:k].T, rho[:k]


def random_rotation(n: int, rng: np.random.Generator) -> np.ndarray:
    Q, R = np.linalg.qr(rng.standard_normal((n, n)))
    return Q * np.sign(np.diag(R))


def itq(V: np.ndarray, n_iter: int, rng: np.random.Generator,
        progress: Callable[[int], None] | None = None) -> np.ndarray:
    """ITQ rotation R (c x c) minimising ||sgn(VR) − VR||_F over orthogonal R; ``progress``
    hears the number of iterations done after each."""
    R = random_rotation(V.shape[1], rng)
    for done in range(1, n_iter + 1):
        B = np.where(V @ R >= 0, 1.0, -1.0)
        S, _, Sh_t = np.linalg.svd(B.T @ V)
        R = Sh_t.T @ S.T
        if progress is not None:
            progress(done)
    return R


@register(
    name="cca-itq",
    title="Iterative Quantization: A Procrustean Approach to Learning Binary Codes for Large-Scale Image Retrieval",
    authors="Gong, Lazebnik, Gordo & Perronnin",
    venue="IEEE TPAMI",
    year=2013,
    kind="shallow",
    fidelity="paper",
    deterministic=False,
    memory="O(n·(d_x+d_y) + (d_x+d_y)²)",
)
class CCAITQ(Hasher):
    param_domains = {
        "n_iter": ITERATIONS.with_default(50),
        "reg": Real(0.0, search=(1e-6, 1e-1), log=True, default=1e-4),
        "corr_power": Real(0.0, search=(0.0, 4.0), default=0.0),
    }

    def _fit(self, train: PairedFeatures, n_bits: int) -> None:
        n, dx, dy = train.n, train.image_dim, train.text_dim
        check_memory(8 * (3 * n * (dx + dy) + 4 * (dx + dy) ** 2), "cca-itq's covariance and CCA buffers")
        X = train.image.astype(np.float64)
        Y = train.text.astype(np.float64)
        self.image_mean_ = X.mean(axis=0)
        self.text_mean_ = Y.mean(axis=0)
        X -= self.image_mean_
        Y -= self.text_mean_
        k = min(dx, dy, n_bits)
        Wx, Wy, rho = cca(X, Y, k, self.reg)
        if self.corr_power:
            scale = np.maximum(rho, 0.0) ** self.corr_power
            Wx, Wy = Wx * scale, Wy * scale
        pad = ((0, 0), (0, n_bits - k))
        Wx, Wy = np.pad(Wx, pad), np.pad(Wy, pad)
        R = itq(np.vstack([X @ Wx, Y @ Wy]), self.n_iter, self._rng(),
                lambda done: self.report_progress(done, self.n_iter, "ITQ iteration"))
        self.image_projection_ = Wx @ R
        self.text_projection_ = Wy @ R
        self.correlations_ = rho

    def _encode_image(self, image: np.ndarray) -> np.ndarray:
        return (image - self.image_mean_) @ self.image_projection_

    def _encode_text(self, text: np.ndarray) -> np.ndarray:
        return (text - self.text_mean_) @ self.text_projection_
