"""``ucch``: Unsupervised Contrastive Cross-modal Hashing.

Paper: P. Hu, H. Zhu, J. Lin, D. Peng, Y.-P. Zhao, X. Peng, "Unsupervised Contrastive
Cross-Modal Hashing", IEEE TPAMI 45(3), 3877–3889, 2023 (online 2022).
Authors' code: https://github.com/penghu-cs/UCCH (``UCCH.py``, ``NCE/``, ``src/utils.py``).

Notation: a batch of m training pairs with training-set rows r_1..r_m, c bits, n training
pairs.  Equations as implemented:

1. Networks (the authors' feature-level ones): f_I = Linear(d_x→w)–ReLU–Linear(w→w)–ReLU–
   Linear(w→c), f_T = Linear(d_y→w)–ReLU–Linear(w→c), w = ``hidden`` = 8192.  The outputs
   used in the losses are unit-length, b = rownorm(tanh(f(·))); codes are sgn(f(·)) (tanh
   and the row norm do not change signs).  No batch normalisation or dropout, so a code
   depends on its own row only.
2. Memory bank ("momentum optimizer"): M ∈ R^{n×c}, one row per training pair, started
   at random ±1/√c; its keys are binary, k_j = sgn(M_j) (0 ↦ +1).
3. Contrastive hashing loss against the binary keys, for each modality v ∈ {x, y}:
   p_i^v = exp(cos(k_{r_i}, b_i^v)/τ) / Σ_{j ∈ {r_i} ∪ N_i} exp(cos(k_j, b_i^v)/τ),
   with cos(k, b) = ⟨k, b⟩/√c (‖k‖ = √c, ‖b‖ = 1), and L_c = −mean_i (log p_i^x + log p_i^y).
   N_i, the negatives of row i: every other training pair when n − 1 ≤ K; otherwise K
   draws, uniform with replacement, from the n − 1 other pairs.
4. Momentum update of the bank, after the logits are taken and without gradient:
   M_{r_i} ← rownorm(γ·M_{r_i} + (1 − γ)·rownorm((b_i^x + b_i^y)/2)).
5. Warm-up (the first ``warmup_epochs`` epochs): the keys are the batch's own fused signs
   sgn((b_j^x + b_j^y)/2), the negatives of row i are the other m − 1 rows of the batch,
   and the bank update uses γ = 0 (the bank is overwritten with fresh values).
6. Cross-modal ranking loss over all in-batch negatives, with s_ij = ⟨b_i^x, b_j^y⟩ and
   α the margin: for an image query i, the scores of texts more than α below the positive
   are lowered by δ (``shift``), ŝ_ij = s_ij if s_ij ≥ s_ii − α else s_ij − δ, and
   L_r = mean_i [log Σ_j exp(ŝ_ij) − s_ii + α] + (the same for text queries, by columns),
   j running over the whole batch (the positive included).  Every negative contributes,
   weighted by its softmax share, not only the hardest one.
7. L = β·L_c + (1 − β)·L_r; one Adam optimiser over both networks, the gradient's global
   norm clipped to ``clip_norm`` before each step.

Defaults, from the authors' MIRFlickr-25K feature command (their README) and their
config defaults where the command sets nothing: β = 0.7 (their ``--alpha``), K = 4096
negatives, τ = 0.9, γ = 0.4, α (margin) = 0.2, δ = 0.1, Adam lr 1e-4 and weight decay 1e-6,
batch 256, 20 epochs, hidden width 8192 (3 image / 2 text layers), 1 warm-up epoch,
gradient clipping at norm 1.  The authors' README gives this one command; its values are
used on every dataset.

Deviations and choices, and why:
- Ranking loss: item 6 is the authors' code (``src/utils.py``, with their command's
  margin and shift); the paper's own statement of the loss was not available to us when
  this module was written, so the code settles it.  ``ranking="hinge"`` selects a plain
  alternative with the same "all negatives" property, a hinge averaged over the m − 1
  negatives and the m queries in both directions:
  mean_i mean_{j≠i} [α − s_ii + s_ij]_+ + mean_i mean_{j≠i} [α − s_ii + s_ji]_+.
- Negatives: the code draws K + 1 indices uniformly with replacement from all n pairs
  and overwrites the first with the positive, so a row may meet itself among its
  negatives and, on sets smaller than K, sees many duplicates.  We never draw the
  positive, and when n − 1 ≤ K we use each other pair exactly once (a full softmax over
  the training set), which keeps the method well defined on small training sets.
- Logits: the code divides ⟨k, b⟩ by τ·√c; that is cos(k, b)/τ as written above.
- On a GPU the negatives are drawn on the GPU by a generator seeded from ``seed`` (on the
  CPU, from the batch-order generator): a GPU fit is reproducible but its draws differ from
  a CPU fit's, as its float rounding does anyway.
- Number of epochs: the authors' script evaluates after every epoch on labelled data
  (the first 2,000 retrieval items as queries and database) and restores the best epoch.
  An unsupervised benchmark selects nothing on labels: we train 20 epochs and keep the
  final model.
- The learning-rate schedule of the code (×0.1 at epochs 30, 60, 90, 120) never fires
  within 20 epochs and is omitted; the warm-up epoch, the bank initialisation and the
  gradient clipping are taken from the code.
- Feature-level protocol: the networks are the authors' own feature-level ones (their
  ``*_fea`` runs), so nothing changes here; image augmentation does not apply.

Memory: the training features, the two networks at width 8192 (about 114 M weights for
4,096-d images and 1,386-d tags, 68 M for Wikipedia's 128-d / 10-d features; four
copies under Adam), the bank (n × c), and per batch the m × n logits against all keys
(O(m·n), from which each row's K + 1 are gathered).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cmhbench.methods.deep import DeepHasher, signs
from cmhbench.methods.domains import BATCH, Choice, EPOCHS, HIDDEN, Int, POSITIVE, Real, WEIGHT_DECAY, learning_rate
from cmhbench.methods.registry import register

RANKING_FORMS = ("smooth", "hinge")


def hash_network(in_dim: int, hidden: int, layers: int, out_dim: int) -> nn.Sequential:
    """``layers`` Linear layers of width ``hidden`` with ReLU between them (UCCH's MLPs)."""
    if layers < 1:
        raise ValueError(f"a network needs at least one layer, got {layers}")
    widths = [in_dim] + [hidden] * (layers - 1) + [out_dim]
    modules: list[nn.Module] = []
    for i in range(layers):
        modules.append(nn.Linear(widths[i], widths[i + 1]))
        if i < layers - 1:
            modules.append(nn.ReLU(inplace=True))
    return nn.Sequential(*modules)


def unit_outputs(net: nn.Module, features: torch.Tensor) -> torch.Tensor:
    """b = rownorm(tanh(f(x))): the real outputs the losses see."""
    return F.normalize(torch.tanh(net(features)), dim=1)


class MemoryBank:
    """One row per training pair; binary keys are the signs of the rows."""

    def __init__(self, n: int, n_bits: int, generator: torch.Generator, device: torch.device) -> None:
        start = signs(torch.randn(n, n_bits, generator=generator))
        self.values = F.normalize(start, dim=1).to(device)

    @property
    def n(self) -> int:
        return self.values.shape[0]

    def keys(self) -> torch.Tensor:
        return signs(self.values)

    @torch.no_grad()
    def update(self, rows: torch.Tensor, image_out: torch.Tensor, text_out: torch.Tensor, momentum: float) -> None:
        """M_r ← rownorm(γ·M_r + (1 − γ)·rownorm((b^x + b^y)/2)) for the batch rows r."""
        fused = F.normalize((image_out.detach() + text_out.detach()) / 2.0, dim=1)
        mixed = momentum * self.values[rows] + (1.0 - momentum) * fused
        self.values[rows] = F.normalize(mixed, dim=1)


def sample_negatives(rows: torch.Tensor, n: int, k: int, generator: torch.Generator) -> torch.Tensor:
    """Negatives of each row (m × K'): all n − 1 other pairs when n − 1 ≤ k, else k uniform
    draws with replacement from the other n − 1 pairs.  The row's own index never appears.
    They are made on the generator's device, so a GPU fit never copies them per step."""
    device = generator.device
    rows = rows.to(device)
    m = rows.shape[0]
    if n - 1 <= k:
        others = torch.arange(n - 1, device=device).expand(m, n - 1)
    else:
        others = torch.randint(0, n - 1, (m, k), generator=generator, device=device)
    # map 0..n-2 onto 0..n-1 without the row itself: values at or above it move up by one
    return others + (others >= rows[:, None]).long()


def contrastive_logits(outputs: torch.Tensor, keys: torch.Tensor, candidates: torch.Tensor,
                       temperature: float) -> torch.Tensor:
    """cos(k_j, b_i)/τ for each row i and its candidates j (column 0 is the positive).

    ``keys`` holds ±1 rows (n × c); ``candidates`` indexes them (m × (1 + K')).  The
    product is taken against all keys at once and then gathered: O(m·n) memory instead
    of the m·(1 + K')·c of gathering key vectors."""
    scale = 1.0 / (temperature * math.sqrt(keys.shape[1]))
    return (outputs @ keys.T * scale).gather(1, candidates)


def contrastive_loss(logits: torch.Tensor) -> torch.Tensor:
    """−mean_i log softmax(logits_i)[0]: cross-entropy with the positive in column 0."""
    target = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits, target)


def ranking_loss(image_out: torch.Tensor, text_out: torch.Tensor, margin: float) -> torch.Tensor:
    """The ``ranking="hinge"`` alternative: a hinge over all in-batch negatives, both
    directions, averaged over negatives and queries."""
    scores = image_out @ text_out.T
    m = scores.shape[0]
    if m < 2:
        return scores.sum() * 0.0
    positive = torch.diagonal(scores)
    off = ~torch.eye(m, dtype=torch.bool, device=scores.device)
    image_queries = (margin - positive[:, None] + scores).clamp(min=0)   # row i: image i vs texts j
    text_queries = (margin - positive[None, :] + scores).clamp(min=0)    # column j: text j vs images i
    return image_queries[off].mean() + text_queries[off].mean()


def smooth_ranking_loss(image_out: torch.Tensor, text_out: torch.Tensor, margin: float,
                        shift: float) -> torch.Tensor:
    """UCCH's ranking loss (item 6): log-sum-exp over each row (image queries) and column
    (text queries) of the scores, those further than the margin below the positive lowered
    by ``shift``, minus the positive, plus the margin."""
    scores = image_out @ text_out.T
    positive = torch.diagonal(scores)

    def one_direction(s: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        near = (s >= pos[:, None] - margin).detach()
        adjusted = torch.where(near, s, s - shift)
        return (torch.logsumexp(adjusted, dim=1) - pos + margin).mean()

    return one_direction(scores, positive) + one_direction(scores.T, positive)


@register(
    name="ucch",
    title="Unsupervised Contrastive Cross-Modal Hashing",
    authors="Hu, Zhu, Lin, Peng, Zhao & Peng",
    venue="IEEE TPAMI",
    year=2023,
    kind="deep",
    fidelity="paper",
    deterministic=False,
    memory="O(n·(d_x+d_y)) features + O(n·c) memory bank + O(m·n) logits per batch + networks",
    presets={"quick": {"epochs": 10, "hidden": 256, "lr": 1e-3}},
    url="https://github.com/penghu-cs/UCCH",
)
class UCCH(DeepHasher):
    param_domains = {
        "beta": Real(0.0, 1.0, search=(0.1, 0.9), default=0.7),
        "negatives": Int(1, default=4096),
        "temperature": Real(0.0, low_open=True, search=(0.1, 1.0), log=True, default=0.9),
        "bank_momentum": Real(0.0, 1.0, high_open=True, default=0.4),
        "margin": Real(0.0, search=(0.05, 0.5), default=0.2),
        "ranking": Choice(RANKING_FORMS, default="smooth"),
        "shift": Real(0.0, default=0.1),
        "warmup_epochs": Int(0, 10_000, default=1),
        "clip_norm": POSITIVE.with_default(1.0),
        "epochs": EPOCHS.with_default(20),
        "batch_size": BATCH.with_default(256),
        "hidden": HIDDEN.with_default(8192),
        "image_layers": Int(1, 100, default=3),
        "text_layers": Int(1, 100, default=2),
        "lr": learning_rate(1e-5, 1e-2).with_default(1e-4),
        "weight_decay": WEIGHT_DECAY.with_default(1e-6),
    }

    def _check_params(self) -> None:
        if self.ranking not in RANKING_FORMS:
            raise ValueError(f"ucch.ranking must be one of {RANKING_FORMS}, got {self.ranking!r}")
        if self.negatives < 1:
            raise ValueError(f"ucch.negatives must be at least 1, got {self.negatives}")
        if not 0.0 <= self.bank_momentum < 1.0:
            raise ValueError(f"ucch.bank_momentum must lie in [0, 1), got {self.bank_momentum}")
        if self.temperature <= 0:
            raise ValueError(f"ucch.temperature must be positive, got {self.temperature}")

    # --- losses of one batch ------------------------------------------------------------------
    def _batch_loss(self, epoch: int, rows: torch.Tensor, image: torch.Tensor, text: torch.Tensor,
                    bank: MemoryBank, generator: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        b_img = unit_outputs(self.image_net_, image)
        b_txt = unit_outputs(self.text_net_, text)
        if epoch < self.warmup_epochs:
            keys = signs((b_img + b_txt).detach() / 2.0)            # the batch's own fused signs
            m = rows.shape[0]
            local = torch.arange(m, device=generator.device)
            candidates = torch.cat([local[:, None], sample_negatives(local, m, m, generator)], dim=1)
            momentum = 0.0
        else:
            keys = bank.keys()
            negatives = sample_negatives(rows, bank.n, self.negatives, generator)
            candidates = torch.cat([rows.to(negatives.device)[:, None], negatives], dim=1)
            momentum = self.bank_momentum
        candidates = candidates.to(b_img.device)
        l_img = contrastive_loss(contrastive_logits(b_img, keys, candidates, self.temperature))
        l_txt = contrastive_loss(contrastive_logits(b_txt, keys, candidates, self.temperature))
        bank.update(rows, b_img, b_txt, momentum)
        contrast = l_img + l_txt
        if self.ranking == "smooth":
            rank = smooth_ranking_loss(b_img, b_txt, self.margin, self.shift)
        else:
            rank = ranking_loss(b_img, b_txt, self.margin)
        loss = self.beta * contrast + (1.0 - self.beta) * rank
        return loss, {"contrastive": contrast, "ranking": rank}

    # --- UCCH's own networks, one Adam over both, the bank and clipping (the core's loop) -------
    def _networks(self, image_dim, text_dim, n_bits):
        return (hash_network(image_dim, self.hidden, self.image_layers, n_bits),
                hash_network(text_dim, self.hidden, self.text_layers, n_bits))

    def _prepare(self, run, train):
        run.state["bank"] = MemoryBank(train.n, self.n_bits_, run.generator, run.device)
        # negatives: the CPU fit draws them from the batch-order generator, a GPU fit on the GPU
        # from its own generator seeded from ``seed`` (no per-step copy to the device)
        run.state["negatives"] = (run.generator if run.device.type == "cpu"
                                  else torch.Generator(device=run.device).manual_seed(int(self.seed)))
        self.negatives_used_ = min(self.negatives, train.n - 1)
        self.negative_rule_ = "all other pairs" if train.n - 1 <= self.negatives else "sampled with replacement"

    def _optimizers(self):
        params = [*self.image_net_.parameters(), *self.text_net_.parameters()]
        return [torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)]

    def _step(self, epoch, rows, image, text, run):
        loss, terms = self._batch_loss(epoch, rows, image, text, run.state["bank"], run.state["negatives"])
        optimizer, = run.optimizers
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.clip_norm > 0:
            torch.nn.utils.clip_grad_norm_([p for group in optimizer.param_groups for p in group["params"]],
                                           self.clip_norm)
        optimizer.step()
        return {"loss": loss, **terms}

    def fit_report(self) -> dict[str, Any]:
        return {**super().fit_report(), "negatives": self.negatives_used_, "negative_rule": self.negative_rule_,
                "warmup_epochs": min(self.warmup_epochs, self.epochs)}
