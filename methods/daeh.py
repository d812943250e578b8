"""``daeh``: Deep Adaptively-Enhanced Hashing with discriminative similarity guidance.

Paper: Y. Shi, Y. Zhao, X. Liu, F. Zheng, W. Ou, X. You, Q. Peng, "Deep Adaptively-Enhanced
Hashing With Discriminative Similarity Guidance for Unsupervised Cross-Modal Retrieval",
IEEE TCSVT 32(10), 2022, pp. 7255–7268 (doi 10.1109/TCSVT.2022.3172716).  Authors' code
(PyTorch): https://github.com/reresearcher/DAEH, last commit 97b8ff1; file references below
are to it: ``daeh.py``, ``model_loader.py`` and ``run.py`` (whose argument defaults are the
values ``test.sh`` runs; only MIRFlickr-25K is wired up, ``data/data_loader.py:17-26``).  The
paper's text was not available to us, so the equations are the code's; where the code is
broken we follow its evident intent (listed below).

Three networks train together on one loss: an image student f, a text student g and a
teacher t that reads the image and carries an attribute branch.  Codes come from the
students.  Over a batch of m training pairs (x_i, y_i):

1. Discriminative similarity (daeh.py:449-527; the image half is SSDH's construction).
   Image: d^I_ij = 1 − cos(x_i, x_j).  Over all n² training pairs, the cosine distances are
   binned in bins 0.01 wide; the left edge of the fullest bin is μ; the distances ≤ μ and
   those > μ are each mirrored about μ and fitted with a normal (mean μ, std σ_L and σ_R);
   s^I_ij = +1 if d^I_ij < μ − α·σ_L, −1 if d^I_ij > μ + β·σ_R, else 0 (α = β = 2).
   Text: d^T_ij = ‖y_i − y_j‖, s^T_ij = +1 if d^T_ij ≤ 1, −1 if d^T_ij ≥ 5, else 0
   (``text_near``, ``text_far``).  Then
   S_ij = +1 if s^I_ij = s^T_ij = +1; −1 if either is −1; otherwise the fused cosine
   2·(a·cos(y_i, y_j) + (1 − a)·cos(x_i, x_j)) − 1, a = 0.3 (``text_weight``).
   Only μ, σ_L and σ_R need all n² pairs; a batch's S is computed from its own features.
2. Alignment of two relaxed codes (daeh.py:22-82): with â, b̂ the row-normalised outputs of
   two networks (m × c) and mse the mean of squares,
   J(a, b) = mse(diag(âb̂ᵀ), 1.5) + mse(âb̂ᵀ ∘ (1 − I), S ∘ (1 − I)) + mse(ââᵀ, b̂b̂ᵀ).
   The authors' ``tri_loss`` is 4·J(f, g) + 1·(J(f, t) + J(g, t)) (``student_weight``,
   ``teacher_weight``); their ``cross_loss`` is J itself.
3. Attribute reconstruction (daeh.py:210-223; model_loader.py:139-169): the teacher's code t
   passes through an attribute branch a = A(t) and back, r = R(a);
   L_att = (Σ(r − t)² + Σ(a − e)²) / m, e the image's attributes (item 6), weight γ = 10⁻³.
4. Adaptive enhancement (daeh.py:225-243; model_loader.py:9-43): matrix-based Rényi
   mutual information of order 2 between S (its rows as the batch's samples) and each
   student's output, with Gaussian kernels of width σ = 1: for a sample matrix Z,
   K_ij = exp(−‖z_i − z_j‖²/2σ²), A = K/m, H(A) = −log Σ λ_k(A)² = −log ‖A‖_F² (A is
   symmetric), and MI(S, F) = H(A_S) + H(A_F) − H(m·A_S ∘ A_F).  If MI(S, f) > MI(S, g)
   the text student is the weaker one and the step adds 0.1·J(t, g) (``enhance_weight``),
   else 0.1·J(f, t).  The choice is made per batch and carries no gradient.
5. Objective per batch: L = tri + γ·L_att + 0.1·J(enhanced pair), one backward pass, one
   SGD step of each of the three networks (daeh.py:244-254).
6. Networks on the features we are given (see deviations).  Image student:
   Linear(d_x→4096)–ReLU–Dropout(0.5)–Linear(4096→c)–tanh (model_loader.py:204-221).  Text
   student: Linear(d_y→4096)–ReLU–Dropout(0.5)–Linear(4096→c)–tanh, the last weight from
   N(0, 0.3²) (model_loader.py:226-242).  Teacher: Linear(d_x→768) standing in for ViT-B/16,
   then the authors' hash layer ReLU–Linear(768→c)–tanh (model_loader.py:70-74, 139-143);
   attribute branch Linear(c→256)–ReLU–Linear(256→512)–ReLU–Linear(512→d_x)–ReLU and its
   inverse Linear(d_x→512)–ReLU–Linear(512→256)–ReLU–Linear(256→c)–tanh
   (model_loader.py:144-159), with the image features as the attributes e.
7. Schedule (run.py:107, 119; daeh.py:153-156, 196): 30 epochs of shuffled batches of 18,
   SGD with lr 0.001, momentum 0.9 and weight decay 5·10⁻⁴ for each network, constant.
8. Codes: sgn(f(x)) for an image, sgn(g(y)) for a text (daeh.py:437-443, the "stu" codes).

Defaults, all the authors' (one set; their scripts give MIRFlickr-25K's only, used here for
every dataset): α = β = 2, text thresholds 1 and 5, a = 0.3, weights 4 / 1 / 0.1, γ = 10⁻³,
30 epochs, batch 18, hidden 4096 (students) and 768 (teacher), dropout 0.5, SGD 0.001 / 0.9 /
5·10⁻⁴.  The ``quick`` preset (tests, default tour): 3 epochs, hidden 256, teacher 64.

Fidelity table (ours vs theirs; "=" where identical):

| item | authors (file:line) | ours |
| --- | --- | --- |
| image similarity | SSDH thresholds on cosine distance, 100 bins on [0, 1), α = β = 2 (daeh.py:463-465, 487-527; run.py:148-151) | = on [0, 2) (item 1) |
| text similarity | Euclidean ≤ 1 → +1, ≥ 5 → −1 (daeh.py:467-471) | = (``text_near``, ``text_far``) |
| fusion | decided ±1, else 2(0.3·cos_T + 0.7·cos_I) − 1 (daeh.py:472-485; run.py:162) | = |
| mask | (1 − I), I the batch identity (daeh.py:215; the fused I of line 476 is unused) | = |
| J | diag target 1.5, masked S, intra consistency, F.mse_loss means (daeh.py:22-82) | = |
| weights | tri 4, teacher 1, cross 0.1, γ = 10^−3 (run.py:154-161; daeh.py:141, 244) | = |
| attribute loss | (Σ(r − t)² + Σ(a − e)²)/m (daeh.py:219-223) | =, e = image features |
| enhancement | Rényi MI (σ 1, order 2) of S with f and g; J(t, g) if MI_f > MI_g else J(f, t) (daeh.py:225-243) | = with a symmetric Gaussian kernel (below) |
| image student | fc 4096–ReLU–dropout 0.5–fc c–tanh on VGG fc7 (model_loader.py:204-221) | = on the given features |
| text student | fc 4096–ReLU–dropout 0.5–fc c (N(0, 0.3²))–tanh (model_loader.py:226-242) | = |
| teacher | ViT-B/16 fine-tuned + ReLU–fc c–tanh (model_loader.py:70-74, 139-143) | Linear(d_x→768) + the same head |
| attributes | 1000 ImageNet logits of a frozen ViT on pixels (daeh.py:163, 558) | the given image features |
| tanh slope | 1 (``set_alpha`` is never called) (model_loader.py:210, 232) | = |
| optimiser | SGD 0.001, momentum 0.9, decay 5·10⁻⁴, one per network (daeh.py:153-156) | = |
| batch | 18, shuffled, last short batch kept (run.py:119; flickr25k.py:54-60) | 18, last short batch dropped |
| schedule | 30 epochs (run.py:107) | = |
| model selection | the best I→T + T→I test mAP every 2 epochs is logged (daeh.py:262-292) | none: the final networks |

Where the released code is broken, what we did:
- The Gaussian kernel (model_loader.py:9-16) subtracts ‖z_j‖² twice where the kernel
  exp(−‖z_i − z_j‖²/2σ²) subtracts ‖z_i‖² and ‖z_j‖² (``repeat`` rebuilds the same
  orientation twice), which makes K non-symmetric and its eigenvalues possibly complex; the
  matrix-based Rényi entropy it implements is defined on the symmetric kernel, so we use that
  one.  For a symmetric matrix, Σλ² = ‖A‖_F², so no eigen-decomposition is needed
  (``torch.eig``, which the authors call, no longer exists in torch).
- ``set_alpha`` (model_loader.py:223-224, 244-245) uses ``math``, which the module never
  imports; it is never called, so the tanh slope stays 1 as the code runs.

Other deviations, and why:
- Feature-level protocol: no ViT on pixels.  The teacher reads the given image features
  through one trainable layer as wide as ViT-B/16's output (768), under the authors' hash
  head; the students are the authors' own networks, which already read features.
- Attributes: the authors' are the class scores of a frozen ImageNet ViT, a fixed
  description of each image made by a pre-trained network.  On features there is no such
  classifier; the given image features are themselves a frozen pre-trained network's
  description (VGG-19 fc7 on MIRFlickr-25K), so they are the attributes (width d_x instead
  of 1000).  The attribute branch ends in a ReLU as the authors' does, so negative feature
  values (``--features zscore``) cannot be matched exactly, as the authors' negative logits
  cannot.
- Histogram range: the authors bin cosine distances on [0, 1), the whole range for their
  non-negative features; zero-centred features reach distances up to 2, so the bins of width
  0.01 cover [0, 2).  On non-negative features the result is the authors'.  A bin holds
  (lo, lo + 0.01] instead of (lo, lo + 0.01); the self-pairs (distance 0) count in the
  left half and in no bin, as theirs.
- The thresholds 1 and 5 on text distance are the authors' for binary tag vectors; on other
  text features they mean something else (on Wikipedia's 10-d topic proportions every pair
  is within 1, so there s^T = +1 throughout and S is decided by the image side alone).
- The last short batch of an epoch is dropped, as in every deep method here (10 of the
  authors' 10,000 pairs per epoch).
- No model selection on test scores.

Memory: the training features, O(m²) per batch, and one pass over the n² cosine distances in
blocks of about four million before training; nothing n × n is kept.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from cmhbench.methods.base import PairedFeatures
from cmhbench.methods.deep import WEIGHT_COPIES, DeepHasher, TrainingRun, cosine_matrix, mlp
from cmhbench.methods.domains import (BATCH, EPOCHS, HIDDEN, MOMENTUM, WEIGHT_DECAY, Real, learning_rate,
                                      weight)
from cmhbench.methods.registry import register

#: Target of the paired codes' cosine (daeh.py:36, 74): above the reachable 1, a constant pull.
PAIR_TARGET = 1.5
#: Width of the histogram bins of cosine distance and its range (daeh.py:502-504; item 1).
BIN_WIDTH, MAX_COSINE_DISTANCE = 0.01, 2.0
#: Kernel width of the mutual information, both variables (daeh.py:225-227).
MI_SIGMA = 1.0
#: Widths of the attribute branch (model_loader.py:144-159).
ATTRIBUTE_HIDDEN = (256, 512)
#: Standard deviation of the text student's last weight (model_loader.py:235).
TEXT_INIT_STD = 0.3
#: Distances per block in the pass over all training pairs (memory bound only).
BLOCK_ELEMENTS = 4_000_000


# --- the discriminative similarity ----------------------------------------------------------------
@torch.no_grad()
def cosine_distance_statistics(image: torch.Tensor, block_elements: int = BLOCK_ELEMENTS,
                               report: Callable[[int, int], None] | None = None) -> dict[str, float]:
    """μ, σ_L, σ_R of the n² image cosine distances (item 1): one blockwise pass that keeps,
    per bin, the count, sum and sum of squares (float64), from which the mirrored normals'
    standard deviations follow exactly (a mirrored sample's mean is μ itself)."""
    n = image.shape[0]
    bins = round(MAX_COSINE_DISTANCE / BIN_WIDTH)
    stats = torch.zeros(3, bins + 1, dtype=torch.float64, device=image.device)  # slot 0: distance 0
    unit = F.normalize(image, dim=1)
    rows = max(1, block_elements // n)
    for start in range(0, n, rows):
        d = 1.0 - unit[start:start + rows] @ unit.T
        own = torch.arange(d.shape[0], device=d.device)
        d[own, start + own] = 0.0  # an item's distance to itself is 0 exactly, as squareform's
        d = d.clamp(0.0, MAX_COSINE_DISTANCE).double().flatten()
        slot = torch.where(d > 0, torch.ceil(d / BIN_WIDTH).long().clamp(1, bins), 0)
        for row, values in enumerate((torch.ones_like(d), d, d * d)):
            stats[row] += torch.bincount(slot, weights=values, minlength=bins + 1)
        if report is not None:
            report(min(start + rows, n), n)
    count, total, squares = stats.cpu().tolist()
    mode = max(range(1, bins + 1), key=lambda j: (count[j], -j))  # the first fullest bin
    mu = (mode - 1) * BIN_WIDTH

    def spread(side: slice) -> float:
        k = sum(count[side])
        if k == 0:
            return 0.0
        return max(0.0, (sum(squares[side]) - 2 * mu * sum(total[side]) + mu * mu * k) / k) ** 0.5

    return {"mu": mu, "sigma_left": spread(slice(0, mode)), "sigma_right": spread(slice(mode, bins + 1))}


def batch_similarity(image: torch.Tensor, text: torch.Tensor, *, near: float, far: float, text_near: float,
                     text_far: float, text_weight: float) -> torch.Tensor:
    """S of a batch (item 1): ±1 where both modalities agree on near / either says far, else the
    fused cosine mapped to [−1, 1].  ``near``, ``far``: the image thresholds on cosine distance."""
    cos_i, cos_t = cosine_matrix(image), cosine_matrix(text)
    dist_i = 1.0 - cos_i
    dist_t = torch.cdist(text, text, compute_mode="donot_use_mm_for_euclid_dist")
    close = (dist_i < near) & (dist_t <= text_near)
    apart = (dist_i > far) | (dist_t >= text_far)
    fused = 2.0 * (text_weight * cos_t + (1.0 - text_weight) * cos_i) - 1.0
    S = torch.where(apart, -1.0, torch.where(close, 1.0, fused)).to(image.dtype)
    return S.fill_diagonal_(1.0)  # an item with itself: distance 0, cosine 1, so +1 in every case


# --- the losses -------------------------------------------------------------------------------------
def alignment(a: torch.Tensor, b: torch.Tensor, S: torch.Tensor) -> torch.Tensor:
    """J(a, b) of item 2 for two networks' outputs on the same batch."""
    a, b = F.normalize(a, dim=1), F.normalize(b, dim=1)
    cross = a @ b.T
    off = 1.0 - torch.eye(S.shape[0], dtype=S.dtype, device=S.device)
    return (F.mse_loss(torch.diagonal(cross), torch.full_like(S[0], PAIR_TARGET))
            + F.mse_loss(cross * off, S * off) + F.mse_loss(a @ a.T, b @ b.T))


def attribute_loss(code: torch.Tensor, attribute: torch.Tensor, recovered: torch.Tensor,
                   target: torch.Tensor) -> torch.Tensor:
    """(Σ(r − t)² + Σ(a − e)²)/m (item 3)."""
    return ((recovered - code).pow(2).sum() + (attribute - target).pow(2).sum()) / code.shape[0]


def _gram(z: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian kernel matrix over the rows of ``z``, divided by their number (trace 1)."""
    d2 = torch.cdist(z, z, compute_mode="donot_use_mm_for_euclid_dist").pow(2)
    return torch.exp(-d2 / (2.0 * sigma * sigma)) / z.shape[0]


def _renyi2(A: torch.Tensor) -> torch.Tensor:
    """Matrix-based Rényi entropy of order 2 of a symmetric A: −log Σλ² = −log ‖A‖_F²."""
    return -torch.log(A.pow(2).sum())


@torch.no_grad()
def mutual_information(u: torch.Tensor, v: torch.Tensor, sigma: float = MI_SIGMA) -> torch.Tensor:
    """Matrix-based Rényi mutual information of order 2 between two batches of samples (item 4)."""
    Au, Av = _gram(u, sigma), _gram(v, sigma)
    return _renyi2(Au) + _renyi2(Av) - _renyi2(Au * Av * u.shape[0])


# --- networks ----------------------------------------------------------------------------------------
def student_network(in_dim: int, hidden: int, out_dim: int, dropout: float,
                    init_std: float | None = None) -> nn.Sequential:
    """Linear–ReLU–Dropout–Linear–tanh; the last weight from N(0, init_std²) when given."""
    net = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
                        nn.Linear(hidden, out_dim), nn.Tanh())
    if init_std is not None:
        nn.init.normal_(net[3].weight, mean=0.0, std=init_std)
    return net


class Teacher(nn.Module):
    """The teacher: a hash head on a stand-in backbone, and the attribute branch that maps its
    code to the image's attributes and back (item 6)."""

    def __init__(self, in_dim: int, hidden: int, n_bits: int, attribute_dim: int) -> None:
        super().__init__()
        h1, h2 = ATTRIBUTE_HIDDEN
        self.hash = nn.Sequential(*mlp(in_dim, hidden, n_bits), nn.Tanh())
        self.to_attribute = nn.Sequential(nn.Linear(n_bits, h1), nn.ReLU(inplace=True), nn.Linear(h1, h2),
                                          nn.ReLU(inplace=True), nn.Linear(h2, attribute_dim), nn.ReLU())
        self.to_code = nn.Sequential(nn.Linear(attribute_dim, h2), nn.ReLU(inplace=True), nn.Linear(h2, h1),
                                     nn.ReLU(inplace=True), nn.Linear(h1, n_bits), nn.Tanh())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(code t, attributes a, recovered code r)."""
        code = self.hash(x)
        attribute = self.to_attribute(code)
        return code, attribute, self.to_code(attribute)


@register(
    name="daeh",
    title="Deep Adaptively-Enhanced Hashing With Discriminative Similarity Guidance for Unsupervised "
          "Cross-Modal Retrieval",
    authors="Shi, Zhao, Liu, Zheng, Ou, You & Peng",
    venue="IEEE TCSVT",
    year=2022,
    kind="deep",
    fidelity="paper",
    deterministic=False,
    memory="O(n·(d_x+d_y)) features + O(m²) per batch; a blockwise pass over the n² image cosine distances",
    presets={"quick": {"epochs": 3, "hidden": 256, "teacher_hidden": 64}},
    url="https://github.com/reresearcher/DAEH",
    version=1,
)
class DAEH(DeepHasher):
    param_domains = {
        "alpha": Real(0.0, search=(0.5, 4.0), default=2.0),
        "beta": Real(0.0, search=(0.5, 4.0), default=2.0),
        "text_near": Real(0.0, default=1.0),
        "text_far": Real(0.0, low_open=True, default=5.0),
        "text_weight": Real(0.0, 1.0, search=(0.1, 0.9), default=0.3),
        "student_weight": weight(0.1, 10.0).with_default(4.0),
        "teacher_weight": weight(0.1, 10.0).with_default(1.0),
        "enhance_weight": weight(0.01, 1.0).with_default(0.1),
        "gamma": weight(1e-4, 1e-1).with_default(1e-3),
        "epochs": EPOCHS.with_default(30),
        "batch_size": BATCH.with_default(18),
        "hidden": HIDDEN.with_default(4096),
        "teacher_hidden": HIDDEN.with_default(768),
        "dropout": Real(0.0, 1.0, high_open=True, default=0.5),
        "lr_image": learning_rate(1e-4, 1e-1).with_default(1e-3),
        "lr_text": learning_rate(1e-4, 1e-1).with_default(1e-3),
        "lr_teacher": learning_rate(1e-4, 1e-1).with_default(1e-3),
        "momentum": MOMENTUM.with_default(0.9),
        "weight_decay": WEIGHT_DECAY.with_default(5e-4),
    }

    def _check_params(self) -> None:
        if not self.text_near < self.text_far:
            raise ValueError(f"daeh: text_near ({self.text_near}) must be below text_far ({self.text_far})")

    def _networks(self, image_dim, text_dim, n_bits):
        return (student_network(image_dim, self.hidden, n_bits, self.dropout),
                student_network(text_dim, self.hidden, n_bits, self.dropout, TEXT_INIT_STD))

    def _teacher(self, image_dim: int, n_bits: int) -> Teacher:
        return Teacher(image_dim, self.teacher_hidden, n_bits, attribute_dim=image_dim)

    def _prepare(self, run: TrainingRun, train: PairedFeatures) -> None:
        self.teacher_net_ = self._teacher(train.image_dim, self.n_bits_).to(run.device).train()
        stats = cosine_distance_statistics(
            run.image, report=lambda done, total: self.report_progress(done, total, "similarity rows", rows=done))
        self.similarity_ = {**stats, "near": stats["mu"] - self.alpha * stats["sigma_left"],
                            "far": stats["mu"] + self.beta * stats["sigma_right"]}

    def _optimizers(self):
        def sgd(net: nn.Module, lr: float) -> torch.optim.Optimizer:
            return torch.optim.SGD(net.parameters(), lr=lr, momentum=self.momentum, weight_decay=self.weight_decay)
        return [sgd(self.image_net_, self.lr_image), sgd(self.text_net_, self.lr_text),
                sgd(self.teacher_net_, self.lr_teacher)]

    def _batch_loss(self, epoch, rows, image, text):
        with torch.no_grad():
            S = batch_similarity(image, text, near=self.similarity_["near"], far=self.similarity_["far"],
                                 text_near=self.text_near, text_far=self.text_far, text_weight=self.text_weight)
        f, g = self.image_net_(image), self.text_net_(text)
        t, attribute, recovered = self.teacher_net_(image)
        students, image_teacher, text_teacher = alignment(f, g, S), alignment(f, t, S), alignment(g, t, S)
        attributes = attribute_loss(t, attribute, recovered, image)
        # enhance the student whose output tells less about S (a device-side choice: no read per step)
        text_weaker = mutual_information(S, f.detach()) > mutual_information(S, g.detach())
        enhance = torch.where(text_weaker, text_teacher, image_teacher)
        loss = (self.student_weight * students + self.teacher_weight * (image_teacher + text_teacher)
                + self.gamma * attributes + self.enhance_weight * enhance)
        return loss, {"students": students.detach(), "teacher": (image_teacher + text_teacher).detach(),
                      "attribute": attributes.detach(), "enhance": enhance.detach(),
                      "text_enhanced": text_weaker.to(loss.dtype)}

    def gpu_memory_bytes(self, n_train, image_dim, text_dim, n_bits):
        """The core's count plus the teacher's weights (its attribute branch is d_x wide)."""
        with torch.device("meta"):
            teacher = self._teacher(image_dim, n_bits)
        weights = sum(p.numel() for p in teacher.parameters())
        return super().gpu_memory_bytes(n_train, image_dim, text_dim, n_bits) + 4 * WEIGHT_COPIES * weights

    def fit_report(self) -> dict[str, Any]:
        share = self.loss_history_.get("text_enhanced")
        return {**super().fit_report(), "similarity": self.similarity_,
                "text_enhanced_share": float(share.mean()) if share is not None and len(share) else None}
