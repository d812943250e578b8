"""``dgcpn``: Deep Graph-neighbor Coherence Preserving Network.

Paper: J. Yu, H. Zhou, Y. Zhan, D. Tao, "Deep Graph-neighbor Coherence Preserving Network
for Unsupervised Cross-modal Hashing", AAAI 2021, 35(5), 4626–4634 (arXiv 2012.13538).
Authors' code: https://github.com/Atmegal/DGCPN.  Where the paper leaves a detail open (how
the neighbour term is normalised and scaled, the loss weights, the update order, the
networks, the epoch count), this module follows the authors' training code: its entry
script's argument defaults, its training session (similarity, loss and update step) and its
network definitions.

Equations as implemented.  Over the n training pairs, with x̂, ŷ the L2-normalised image
and text features:

1. First-order (fused) similarity C_ij = (1 − w)·cos(x_i, x_j) + w·cos(y_i, y_j), w = 0.01
   (``text_weight``), computed as Z Zᵀ with Z = [√(1−w)·x̂, √w·ŷ].
2. Neighbourhoods: K = min(``knn``, round(``knn_share``·n)), at least 2, counts the item itself.  N(i) holds the K items with
   the largest C_ij, i among them, with i then removed: K − 1 other items.  (The authors'
   code keeps the K largest entries of each row of C and zeroes the largest one, the item's
   own similarity.)
3. Neighbour vectors p_i ∈ Rⁿ: p_ij = C⁺_ij / Σ_{l∈N(i)} C⁺_il for j ∈ N(i), 0 elsewhere,
   with C⁺ = max(C, 0): each kNN-restricted row of C, L1-normalised.
4. Graph-neighbour coherence G_ij = s·⟨p_i, p_j⟩, s = ``scale`` (default 2K; see below).
5. Target S = 2·[(1 − γ)·C + γ·G] − 1, γ = 0.3 (``gamma``); a constant, no gradient.
6. Loss of a batch of m pairs (terms and weights as in the authors' training code), for
   row-normalised codes U (image side) and V (text side), with P = U Uᵀ, Q = V Vᵀ, R = U Vᵀ
   and O = 1 − I_m (off-diagonal mask):
   - pair:         L_pair = mean_i (R_ii − 1.5)²                       (``pair_target``)
   - distance:     L_dist = Σ_{A∈{Q, R, P}} Σ_ij O_ij·(A_ij − S_ij)² / m²
                   (the diagonal is masked out: R_ii is pulled only toward 1.5 by L_pair,
                   and P_ii = Q_ii = 1 carry no information; the mean still runs over all
                   m² entries, as in the authors' masked MSE)
   - consistency:  L_cons = MSE(R, P) + MSE(R, Q) + MSE(P, Q) + MSE(R, Rᵀ)
   L(U, V) = λ_pair·L_pair + λ_dist·L_dist + λ_cons·L_cons, all λ = 1 (``pair_weight``,
   ``distance_weight``, ``consistency_weight``).
7. Three optimiser steps per batch.  With relaxed codes B = rownorm(tanh(h)) of the network
   outputs h (tanh slope 1 throughout) and sign codes H = sgn(h)/√c (constants):
   (a) forward both networks; L(B_I, B_T) steps both networks;
   (b) forward both again; L(B_I, H_T) steps the image network only;
   (c) with the outputs of (b) (so H_I is from before (b)'s update): L(H_I, B_T) steps the
       text network only.
   Each network thus learns once against the other's relaxed codes and once against its
   binary codes.
8. Codes: sgn(f_I(x)) for an image, sgn(f_T(y)) for a text.

Networks: per modality Linear(d → 4096)–ReLU–Dropout(0.5)–Linear(4096 → c), default
PyTorch initialisation except the text network's last weight, drawn from N(0, 0.3²)
(``text_init_std``).  Dropout is active during training only.

Defaults, all from the authors' training code: w = 0.01, γ = 0.3, pair target 1.5, unit loss
weights, K = 2000 with s = 4000 (their settings for 5,000 training pairs: their
``knn_number`` = 3,000 counts the entries zeroed, i.e. K = 5,000 − 3,000, as their own
comment relates it to the paper's K), SGD with lr 0.005 for both networks, momentum 0.9,
weight decay 5e-4, batch 32 with the last incomplete batch kept, hidden width 4096,
dropout 0.5, 100 epochs.

Deviations, and why:
- Epochs: the authors train up to 100 epochs, score a labelled validation split after each,
  stop after 10 epochs without improvement and restore the best checkpoint.  cmhbench never
  selects on labelled data, so we train the fixed 100 epochs and keep the final model.
- Scale for other K: the authors' s is a constant argument (4000) set for K = 2000.  We use
  s = 2K.  Why: with equal neighbour weights ⟨p_i, p_j⟩ = |N(i) ∩ N(j)| / (K − 1)², which
  shrinks as 1/K, so s ∝ K keeps G a function of the neighbourhood overlap alone
  (G_ij ≈ 2·|N(i) ∩ N(j)| / K, about 2 for identical neighbourhoods) whatever K; the factor 2
  is the authors' ratio 4000/2000; s does not depend on n because the inner product does
  not.  A fixed 4000 with K = 200 would put G near 20, far outside the range of code
  similarities.  ``scale`` overrides the rule.
- K on other training-set sizes: the authors ran 5,000 training pairs with K = 2000, i.e.
  40 % of the training set; their code records no other value (its Wikipedia loader comes
  with no K).  On a smaller training set we keep that share, K = min(2000, 0.4·n)
  (``knn_share`` = 0.4): a fixed 2000 on Wikipedia's 2,173 pairs would put nearly every item
  in every neighbourhood, G would be almost the same for all pairs, and the target flat —
  measured: the codes collapsed to one database code at 16–64 bits (map@all at chance),
  while with K = 869 they did not.  At n ≥ 5,000 the authors' K = 2000 is unchanged.
  ``knn`` and ``knn_share`` are parameters (``knn_share`` = 1 gives the plain cap at n); the
  fit report records the K and s used.
- The item is removed from its own neighbourhood by index, not as the row's largest entry;
  the two differ only when duplicates tie with it.
- C⁺ = max(C, 0) and empty rows: the authors' features are non-negative, so C ≥ 0 and their
  division by the row sum is the L1 normalisation.  For features with negative entries we
  clip at 0 so that p_i stays a distribution, and a row whose neighbours all have C ≤ 0 gets
  p_i = 0 (their division would be by a non-positive sum).
- sgn(0) is taken as +1 in H (as in the codes); the authors' sign gives 0 there, an event
  of probability zero for real-valued outputs.
- Feature-level protocol (as for the other deep methods here): the image network's first
  layer reads the given image features, standing in for a VGG-19 fc7 input, and C uses
  those features.
- No n × n matrix is held: the neighbour lists of every item (O(n·K) indices and weights)
  are found once, in row blocks of C, and each batch expands only its own rows (O(m·n)).
  The result is the same as indexing the authors' precomputed n × n target.

Memory: the training features, Z (n × (d_x + d_y)), the neighbour lists (n × (K − 1)
indices and weights, checked against free memory) and O(m·n + m²) per batch.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cmhbench.methods.base import check_memory
from cmhbench.methods.deep import DeepHasher, signs
from cmhbench.methods.domains import BATCH, EPOCHS, HIDDEN, Int, MOMENTUM, POSITIVE, Real, WEIGHT_DECAY, learning_rate, weight
from cmhbench.methods.registry import register

#: Floats of one block of the n × n similarity product while searching neighbours
#: (memory bound only; the neighbours found do not depend on it).
BLOCK_FLOATS = 1 << 24


# --- the graph ------------------------------------------------------------------------------
def fused_features(image: torch.Tensor, text: torch.Tensor, text_weight: float) -> torch.Tensor:
    """Z = [√(1−w)·x̂, √w·ŷ], so that Z Zᵀ = (1 − w)·cos_I + w·cos_T."""
    return torch.cat([math.sqrt(1.0 - text_weight) * F.normalize(image, dim=1),
                      math.sqrt(text_weight) * F.normalize(text, dim=1)], dim=1)


@torch.no_grad()
def neighbour_lists(z: torch.Tensor, k: int, block_floats: int = BLOCK_FLOATS) -> tuple[torch.Tensor, torch.Tensor]:
    """Each item's K − 1 neighbours (the K largest entries of its row of Z Zᵀ, itself counted
    and then removed) and their L1-normalised weights max(C_ij, 0) / Σ, found in row blocks of
    at most ``block_floats`` similarities.  Returns (indices, weights), both n × (K − 1)."""
    n = z.shape[0]
    k = min(k, n)
    rows_per_block = max(1, block_floats // n)
    indices, weights = [], []
    for start in range(0, n, rows_per_block):
        sims = z[start:start + rows_per_block] @ z.T
        local = torch.arange(sims.shape[0], device=z.device)
        sims[local, start + local] = math.inf  # the item itself ranks first, whatever the ties
        top = sims.topk(k, dim=1)
        w = top.values[:, 1:].clamp(min=0.0)
        total = w.sum(dim=1, keepdim=True)
        indices.append(top.indices[:, 1:])
        weights.append(torch.where(total > 0, w / total.clamp(min=torch.finfo(w.dtype).tiny), 0.0))
    return torch.cat(indices), torch.cat(weights)


def neighbour_term(indices: torch.Tensor, weights: torch.Tensor, n: int, scale: float) -> torch.Tensor:
    """G = s·⟨p_i, p_j⟩ among the given rows (their p expanded to a dense m × n only here)."""
    p = torch.zeros(indices.shape[0], n, dtype=weights.dtype, device=weights.device)
    p.scatter_(1, indices, weights)
    return scale * (p @ p.T)


def graph_target(z_batch: torch.Tensor, neighbour: torch.Tensor, gamma: float) -> torch.Tensor:
    """S = 2·[(1 − γ)·C + γ·G] − 1 with C = Z_b Z_bᵀ the fused cosines of the batch."""
    return 2.0 * ((1.0 - gamma) * (z_batch @ z_batch.T) + gamma * neighbour) - 1.0


def default_scale(k: int) -> float:
    """s = 2K: the authors' 4000 at their K = 2000, proportional to K elsewhere."""
    return 2.0 * k


# --- codes and losses ------------------------------------------------------------------------
def relaxed(h: torch.Tensor) -> torch.Tensor:
    """B = rownorm(tanh(h)) (the authors' tanh slope, 1, for every epoch)."""
    return F.normalize(torch.tanh(h), dim=1)


def sign_codes(h: torch.Tensor) -> torch.Tensor:
    """H = sgn(h)/√c (0 ↦ +1) for network outputs h: unit length, without gradient."""
    return signs(h.detach()) / math.sqrt(h.shape[1])


def off_diagonal_mse(a: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Σ_{i≠j} (a_ij − t_ij)² / m²: the squared error with the diagonal masked out, averaged
    over all m² entries (as the authors' MSE of the masked matrices)."""
    d = a - target
    return ((d ** 2).sum() - (d.diagonal() ** 2).sum()) / d.numel()


def consistency_term(p: torch.Tensor, q: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """MSE(R, P) + MSE(R, Q) + MSE(P, Q) + MSE(R, Rᵀ) for P = UUᵀ, Q = VVᵀ, R = UVᵀ."""
    return F.mse_loss(r, p) + F.mse_loss(r, q) + F.mse_loss(p, q) + F.mse_loss(r, r.T)


def dgcpn_loss(u: torch.Tensor, v: torch.Tensor, S: torch.Tensor, *, pair_target: float, pair_weight: float,
               distance_weight: float, consistency_weight: float) -> tuple[torch.Tensor, dict[str, float]]:
    """L(U, V) = λ_pair·L_pair + λ_dist·L_dist + λ_cons·L_cons for row-normalised image codes U
    and text codes V (relaxed or sign; see the module docstring)."""
    p, q, r = u @ u.T, v @ v.T, u @ v.T
    pair = ((r.diagonal() - pair_target) ** 2).mean()
    distance = off_diagonal_mse(q, S) + off_diagonal_mse(r, S) + off_diagonal_mse(p, S)
    consistency = consistency_term(p, q, r)
    loss = pair_weight * pair + distance_weight * distance + consistency_weight * consistency
    return loss, {"pair": pair, "distance": distance, "consistency": consistency}


# --- networks and batches --------------------------------------------------------------------
def hash_network(in_dim: int, hidden: int, out_dim: int, dropout: float,
                 out_std: float | None = None) -> nn.Sequential:
    """Linear–ReLU–Dropout–Linear; the last weight from N(0, out_std²) when ``out_std`` is given."""
    net = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Dropout(p=dropout),
                        nn.Linear(hidden, out_dim))
    if out_std is not None:
        nn.init.normal_(net[-1].weight, mean=0.0, std=out_std)
    return net


def epoch_batches(n: int, batch_size: int, generator: torch.Generator,
                  device: torch.device | str | None = None) -> list[torch.Tensor]:
    """One epoch's shuffled batches, the last incomplete one kept (the authors' loader)."""
    order = torch.randperm(n, generator=generator)
    return list((order if device is None else order.to(device)).split(batch_size))


class NeighbourGraph:
    """The training-only graph: fused features and neighbour lists; gives each batch its S."""

    def __init__(self, z: torch.Tensor, k: int, scale: float) -> None:
        self.z, self.k, self.scale = z, k, scale
        self.indices, self.weights = neighbour_lists(z, k)

    @torch.no_grad()
    def target(self, rows: torch.Tensor, gamma: float) -> torch.Tensor:
        g = neighbour_term(self.indices[rows], self.weights[rows], self.z.shape[0], self.scale)
        return graph_target(self.z[rows], g, gamma)


@register(
    name="dgcpn",
    title="Deep Graph-neighbor Coherence Preserving Network for Unsupervised Cross-modal Hashing",
    authors="Yu, Zhou, Zhan & Tao",
    venue="AAAI",
    year=2021,
    kind="deep",
    fidelity="paper",
    deterministic=False,
    memory="O(n·(d_x+d_y)) features + O(n·K) neighbour lists + O(m·n) per batch",
    presets={"quick": {"epochs": 5, "hidden": 256, "knn": 200}},
    url="https://github.com/Atmegal/DGCPN",
    # the target S = 2·[(1 − γ)·C + γ·G] − 1 over the training pairs
    prior_params=("text_weight", "gamma", "knn_share"),
    prior=lambda model, train: model._graph(torch.from_numpy(train.image), torch.from_numpy(train.text)).target(
        torch.arange(train.n), model.gamma),
)
class DGCPN(DeepHasher):
    param_domains = {
        "text_weight": Real(0.0, 1.0, search=(1e-3, 1.0), log=True, default=0.01),
        "gamma": Real(0.0, 1.0, search=(0.0, 0.9), default=0.3),
        "knn": Int(2, default=2000),
        "knn_share": Real(0.0, 1.0, low_open=True, search=(0.05, 1.0), log=True, default=0.4),
        "scale": Real(0.0, low_open=True, optional=True, default=None),
        "pair_target": POSITIVE.with_default(1.5),
        "pair_weight": weight(0.1, 10.0).with_default(1.0),
        "distance_weight": weight(0.1, 10.0).with_default(1.0),
        "consistency_weight": weight(0.1, 10.0).with_default(1.0),
        "epochs": EPOCHS.with_default(100),
        "batch_size": BATCH.with_default(32),
        "hidden": HIDDEN.with_default(4096),
        "dropout": Real(0.0, 1.0, high_open=True, default=0.5),
        "text_init_std": POSITIVE.with_default(0.3),
        "lr_image": learning_rate(1e-4, 5e-2).with_default(0.005),
        "lr_text": learning_rate(1e-4, 5e-2).with_default(0.005),
        "momentum": MOMENTUM.with_default(0.9),
        "weight_decay": WEIGHT_DECAY.with_default(5e-4),
    }

    def _check_params(self) -> None:
        if not 0.0 <= self.text_weight <= 1.0:
            raise ValueError(f"dgcpn.text_weight must lie in [0, 1], got {self.text_weight}")
        if self.knn < 2:
            raise ValueError(f"dgcpn.knn must be at least 2 (K counts the item itself), got {self.knn}")
        if not 0.0 < self.knn_share <= 1.0:
            raise ValueError(f"dgcpn.knn_share must lie in (0, 1], got {self.knn_share}")
        if self.scale is not None and not self.scale > 0:
            raise ValueError(f"dgcpn.scale must be positive (or None for 2·K), got {self.scale}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dgcpn.dropout must lie in [0, 1), got {self.dropout}")

    def _neighbours(self, n: int) -> int:
        """K for ``n`` training pairs (equation 2)."""
        return min(self.knn, n, max(2, round(self.knn_share * n)))

    @staticmethod
    def _graph_bytes(n: int, k: int) -> int:
        """The neighbour lists' indices (int64) and weights (float32), plus one search block."""
        return n * k * 12 + BLOCK_FLOATS * 4

    def _graph(self, image: torch.Tensor, text: torch.Tensor) -> NeighbourGraph:
        n = image.shape[0]
        self.knn_used_ = self._neighbours(n)
        self.scale_used_ = float(self.scale) if self.scale is not None else default_scale(self.knn_used_)
        check_memory(self._graph_bytes(n, self.knn_used_), "dgcpn's neighbour lists")
        return NeighbourGraph(fused_features(image, text, self.text_weight), self.knn_used_, self.scale_used_)

    def _loss(self, u: torch.Tensor, v: torch.Tensor, S: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        return dgcpn_loss(u, v, S, pair_target=self.pair_target, pair_weight=self.pair_weight,
                          distance_weight=self.distance_weight, consistency_weight=self.consistency_weight)

    def _train_batch(self, image: torch.Tensor, text: torch.Tensor, S: torch.Tensor,
                     opt_image: torch.optim.Optimizer, opt_text: torch.optim.Optimizer) -> dict[str, float]:
        """The authors' three steps on one batch (module docstring, item 7); returns the terms
        of step (a) and the losses of steps (b) and (c)."""
        # (a) relaxed codes of both networks; both step
        loss, terms = self._loss(relaxed(self.image_net_(image)), relaxed(self.text_net_(text)), S)
        opt_image.zero_grad(set_to_none=True)
        opt_text.zero_grad(set_to_none=True)
        loss.backward()
        opt_image.step()
        opt_text.step()
        # (b) and (c) share one fresh forward pass
        out_img, out_txt = self.image_net_(image), self.text_net_(text)
        h_img, h_txt = sign_codes(out_img), sign_codes(out_txt)
        loss_image, _ = self._loss(relaxed(out_img), h_txt, S)
        opt_image.zero_grad(set_to_none=True)
        loss_image.backward()
        opt_image.step()
        loss_text, _ = self._loss(h_img, relaxed(out_txt), S)
        opt_text.zero_grad(set_to_none=True)
        loss_text.backward()
        opt_text.step()
        return {"loss": loss.detach(), **terms, "loss_image_vs_binary": loss_image.detach(),
                "loss_text_vs_binary": loss_text.detach()}

    # --- the core's loop with DGCPN's networks, graph, batches and three-step update ----------
    def _networks(self, image_dim, text_dim, n_bits):
        return (hash_network(image_dim, self.hidden, n_bits, self.dropout),
                hash_network(text_dim, self.hidden, n_bits, self.dropout, out_std=self.text_init_std))

    def _prepare(self, run, train):
        run.state["graph"] = self._graph(run.image, run.text)  # training-only: dropped when fit returns

    def _batches(self, run):
        return epoch_batches(run.n, self.batch_size, run.generator, run.device)

    def epoch_steps(self, n_train):
        return math.ceil(n_train / self.batch_size)  # the last incomplete batch is kept

    def gpu_memory_bytes(self, n_train, image_dim, text_dim, n_bits):
        """The core's estimate plus the graph, on the device for the whole fit: the fused
        features (as wide as both modalities) and the neighbour lists."""
        return (super().gpu_memory_bytes(n_train, image_dim, text_dim, n_bits)
                + 4 * n_train * (image_dim + text_dim) + self._graph_bytes(n_train, self._neighbours(n_train)))

    def _step(self, epoch, rows, image, text, run):
        return self._train_batch(image, text, run.state["graph"].target(rows, self.gamma), *run.optimizers)

    def fit_report(self) -> dict[str, Any]:
        return {**super().fit_report(), "knn": self.knn_used_, "scale": self.scale_used_}
