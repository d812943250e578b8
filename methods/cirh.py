"""``cirh``: Correlation-Identity Reconstruction Hashing (graph fusion, then hash functions).

Paper: L. Zhu, X. Wu, J. Li, Z. Zhang, W. Guan, H. T. Shen, "Work Together: Correlation-Identity
Reconstruction Hashing for Unsupervised Cross-Modal Retrieval", IEEE TKDE (online 2022),
doi 10.1109/TKDE.2022.3218656.  Authors' code (PyTorch): https://github.com/XizeWu/CIRH, last
commit 0f6439d (its code files as uploaded in b6d16f3); file references below are to it:
``models.py``, ``my_opt.py``, ``main_mir.py`` (MIRFlickr-25K), ``main_nus.py``, ``main_coco.py``,
``load_data.py`` and ``utils.py``.  The paper's full text was not available to us (only its
abstract); where the code is broken we follow its evident intent.

CIRH trains two things in every epoch: a fusion network that turns a batch's image and text
features and their similarity graph into codes B, reconstructing (neighbour-mixed) features from
them; then two hash networks, one per modality, that regress B and keep the similarity.  Only
the hash networks code queries and the database.

Equations as implemented.  Over the n training pairs (x_i, y_i); m rows per batch; c bits;
``mse`` is the mean of squared differences over all entries (torch's ``F.mse_loss``); cos(A, B)
is the matrix of cosine similarities between rows.

1. Collaborated similarity (my_opt.py:33-35, 189-208), once, on all n pairs:
   S₁ = a₁·cos(X, X) + (1 − a₁)·cos(Y, Y); in each row of S₁ the K smallest entries are set to 0;
   S₂ = ½(T + Tᵀ) with T = 2σ(S₁) − 1 + I;  S = a₂·S₁ + (1 − a₂)·S₂  (S₁ itself is not
   symmetrised).  a₁ = a₂ = 0.6, K = 3,000 of the authors' 5,000 training pairs
   (main_mir.py:68-70; ``a1``, ``a2``, ``knn``); S_B is S restricted to a batch's rows and columns.
2. Neighbour mixing (my_opt.py:60-68, 181-187): rank each row of S_B in decreasing order (the item
   itself first, rank 0); x̃_i = 0.7·x_i + 0.2·x_{r₂(i)} + 0.1·x_{r₃(i)} with r_k(i) the item of
   rank k, and ỹ_i likewise with the same neighbours (the code takes ranks 2 and 3, skipping the
   nearest neighbour at rank 1; we keep that).  Raw features, not normalised.
3. Fusion network (models.py:8-116), width w = 512 (``fusion_width``), every "BN" a BatchNorm1d
   in training mode:
   v_x = normalize(ReLU(BN(W_x x̃))), v_y likewise (models.py:14-18, 34-38, 74-84);
   g_x = ReLU(BN(S_B·G_x v_x)), g_y likewise (intra-modal graph layers, models.py:20-22, 77-89);
   [u₁; u₂] = BN([S_B, I; I, S_B]·[J v_x; J v_y]) over the 2m rows, v_j = ReLU(u₁ + u₂)
   (cross-modal graph layer, models.py:54-56, 92-101);
   h_j = BN(P_j v_j), h_x = BN(P_x [g_x, v_j]), h_y = BN(P_y [v_j, g_y]),
   h = tanh(BN(P [h_x, h_j, h_y])), B = sgn(h) (models.py:58-67, 103-111);
   decoders x̂ = BN(D₂ ReLU(BN(D₁ (h + tanh h_x)))), ŷ likewise (models.py:24-31, 44-51, 113-114).
4. Fusion loss per batch (my_opt.py:77-80, 210-224):
   L₁ = λ₁·[mse(x̂, x̃) + mse(ŷ, ỹ)]
        + λ₂·[mse(S_B, cos(h_x, h_x)) + mse(S_B, cos(h_y, h_y)) + mse(S_B, cos(h, h))]
        + mse(h, sgn h),  λ₁ = 10, λ₂ = 1 (main_mir.py:61-62; ``lambda1``, ``lambda2``).
   Adam, lr 10⁻³ (main_mir.py:67; ``lr_fusion``).  B of each batch is kept for step 6.
5. Hash networks (models.py:119-155), on L2-normalised features (my_opt.py:109-110, utils.py:114,
   121): f_x(x) = tanh(W₂ Dropout₀.₃(ReLU(W₁ x/‖x‖))) with W₁: d_x → 4096 (``hidden``), and
   f_y(y) = tanh(V₂ Dropout₀.₃(ReLU(V₁ y/‖y‖))) with V₁: d_y → d_y; the output layers' weights
   from N(0, 1) (models.py:129, 148), everything else torch's default initialisation.
6. Hash loss per batch (my_opt.py:128-147), with F = f_x(X_B), G = f_y(Y_B) and the batch's B:
   L₂ = mse(F, B) + mse(G, B) + mse(F, G)
        + β·[mse(cos(F, G), S_B) + mse(cos(F, F), S_B) + mse(cos(G, G), S_B)],  β = 0.01
   (main_mir.py:63; ``beta``).  Adam, lr 10⁻⁴ per network (main_mir.py:65-66).
7. Schedule (main_mir.py:36-38, 72, 77): 60 epochs; each is one pass of step 4 over shuffled
   batches of 512 covering every pair (the last batch may be smaller), then one pass of step 6
   over the same batches in the same order.
8. Codes: sgn(f_x(x)) for an image, sgn(f_y(y)) for a text (utils.py:107-143).

Defaults are main_mir.py's (MIRFlickr-25K; also used for every dataset without its own values).
Per dataset, from the authors' scripts: NUS-WIDE K = 3,300, a₁ = a₂ = 0.5, fusion lr 10⁻⁴, 120
epochs (main_nus.py:68-71, 78); MS-COCO a₁ = 0.1, a₂ = 0.3, hash-network lr 5·10⁻⁴, 100 epochs
(main_coco.py:64-69, 77).  The ``quick`` preset (tests, default tour): 5 epochs, image hash width
256, fusion width 64.

Fidelity table (ours vs theirs; "=" where identical):

| item | authors (file:line) | ours |
| --- | --- | --- |
| similarity S | a₁, a₂ = 0.6, K = 3000 of 5000 (my_opt.py:189-208; main_mir.py:68-70) | =, K as a share of n |
| neighbour mixing | 0.7/0.2/0.1 of ranks 0/2/3 in S_B, same ranks for text (my_opt.py:62-68, 181-187) | = |
| fusion network | width 512, GCN layers on S_B, BN everywhere (models.py:8-116) | = (``fusion_width``) |
| fusion loss | λ₁ = 10, λ₂ = 1 (my_opt.py:77-78, 210-224; main_mir.py:61-62) | = |
| image hash net | d_x→4096→c, dropout 0.3, N(0, 1) output weights (models.py:119-136) | = (``hidden``, ``dropout``) |
| text hash net | d_y→d_y→c, dropout 0.3, N(0, 1) output weights (models.py:138-155) | = |
| hash loss | β = 0.01 (my_opt.py:134-141; main_mir.py:63) | =, S_B of the batch's own pairs (see below) |
| optimisers | Adam: fusion 10⁻³, image 10⁻⁴, text 10⁻⁴ (my_opt.py:41-43; main_mir.py:65-67) | = |
| batch | 512, shuffled, last batch kept (main_mir.py:72; load_data.py:63-64) | =, a last batch of 1 row dropped |
| schedule | 60 epochs × (fusion pass, hash pass) (main_mir.py:36-38, 77) | = |
| model selection | test mAP@50 every 10 epochs, best checkpoint kept (main_mir.py:40-47) | none: final model |

Where the code is broken or ambiguous, what we did:
- The hash pass takes each batch's images, texts and codes in the fusion pass's shuffled order
  but its similarity block from S's rows and columns kk·512 … (kk+1)·512 in the original order
  (my_opt.py:106-107, 120-121, 126): the target belongs to other pairs than the batch's.  The
  evident intent (and what the fusion pass does, my_opt.py:60) is the batch's own S_B; we use it.
- ``main_mir.py:58`` declares ``--TRAIN`` with ``type=bool`` and default False, so the README's
  ``python main_mir.py`` only evaluates a saved checkpoint and any value given on the command line
  (even "False") trains; we train, as main_nus.py and main_coco.py do by default.
- The training-set size behind K is not in the repository (the .mat files are downloads); we
  take 5,000, the size of the DJSRH-protocol training sets the paper's baselines use, so K is a
  share of 0.6 of n (0.66 on NUS-WIDE); on other sizes K = min(``knn``, round(``knn_share``·n)).

Other deviations, and why:
- No model selection on test queries (see the table): the final hash networks code.
- Sign codes inside training map 0 to +1 (``signs``); torch.sign would give 0, which tanh
  outputs never reach in practice.
- A last fusion batch of one row is dropped (batch normalisation cannot train on one row, where
  the authors' loader would crash); the hash pass then skips that row too.
- The cross-modal graph layer multiplies by [S_B, I; I, S_B] blockwise (S_B·a + b, a + S_B·b)
  instead of building the 2m × 2m matrix: the same numbers, less memory.

Memory: the training features, S (n × n, on the device for the whole fit), B (n × c), and the
fusion network's weights beside the two hash networks'.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cmhbench.methods.base import PairedFeatures, check_memory
from cmhbench.methods.deep import WEIGHT_COPIES, DeepHasher, TrainingRun, cosine_matrix, signs
from cmhbench.methods.domains import BATCH, EPOCHS, HIDDEN, Int, Real, UNIT, learning_rate, weight
from cmhbench.methods.registry import register
from cmhbench.methods.ukd import knn_count

#: K of the authors' MIRFlickr-25K script over the training-set size it assumes (main_mir.py:68).
AUTHORS_K, AUTHORS_N = 3000, 5000
#: Weights of an item, its neighbour of rank 2 and of rank 3 in the mixed features (my_opt.py:67-68).
MIX = (0.7, 0.2, 0.1)
#: The ranks those neighbours hold in a row of S_B sorted in decreasing order (my_opt.py:184-185).
MIX_RANKS = (2, 3)


# --- similarity and neighbour mixing ------------------------------------------------------------
def collaborated_similarity(image: torch.Tensor, text: torch.Tensor, *, a1: float, a2: float,
                            k: int) -> torch.Tensor:
    """S (n × n) of equation 1: fused cosines with each row's K smallest entries zeroed, blended
    with their symmetrised sigmoid transform."""
    s1 = a1 * cosine_matrix(image) + (1.0 - a1) * cosine_matrix(text)
    if k > 0:
        s1.scatter_(1, s1.topk(k, dim=1, largest=False).indices, 0.0)
    t = 2.0 * torch.sigmoid(s1) - 1.0 + torch.eye(s1.shape[0], dtype=s1.dtype, device=s1.device)
    return a2 * s1 + (1.0 - a2) * 0.5 * (t + t.T)


def block(S: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """S_B: the rows and columns of ``rows``."""
    return S[rows[:, None], rows]


def neighbour_mix(features: torch.Tensor, S_batch: torch.Tensor) -> torch.Tensor:
    """0.7·x_i + 0.2·x of i's rank-2 item + 0.1·x of its rank-3 item in S_B (ranks clipped to the
    batch on batches of fewer than 4 rows)."""
    ascending = S_batch.sort(dim=1).indices
    m = S_batch.shape[1]
    second, third = (ascending[:, max(m - 1 - rank, 0)] for rank in MIX_RANKS)
    return MIX[0] * features + MIX[1] * features[second] + MIX[2] * features[third]


# --- networks -----------------------------------------------------------------------------------
def _encoder(in_dim: int, width: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, width), nn.BatchNorm1d(width), nn.ReLU(inplace=True))


def _decoder(n_bits: int, width: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_bits, width), nn.BatchNorm1d(width), nn.ReLU(inplace=True),
                         nn.Linear(width, out_dim), nn.BatchNorm1d(out_dim))


@dataclass
class FusionOutput:
    """What the fusion network gives for a batch: h_x, h_y, h and the two reconstructions."""

    image_hash: torch.Tensor
    text_hash: torch.Tensor
    joint: torch.Tensor
    image_recon: torch.Tensor
    text_recon: torch.Tensor


class FusionNet(nn.Module):
    """Equation 3: intra-modal and cross-modal graph layers on S_B, a fused code h, decoders."""

    def __init__(self, image_dim: int, text_dim: int, width: int, n_bits: int) -> None:
        super().__init__()
        self.image_encoder, self.text_encoder = _encoder(image_dim, width), _encoder(text_dim, width)
        self.image_graph, self.text_graph, self.joint_graph = (nn.Linear(width, width) for _ in range(3))
        self.image_graph_bn, self.text_graph_bn, self.joint_graph_bn = (nn.BatchNorm1d(width) for _ in range(3))
        self.joint_head = nn.Linear(width, n_bits)
        self.image_head, self.text_head = nn.Linear(2 * width, n_bits), nn.Linear(2 * width, n_bits)
        self.fuse = nn.Linear(3 * n_bits, n_bits)
        self.image_head_bn, self.text_head_bn, self.joint_head_bn, self.fuse_bn = (
            nn.BatchNorm1d(n_bits) for _ in range(4))
        self.image_decoder, self.text_decoder = _decoder(n_bits, width, image_dim), _decoder(n_bits, width, text_dim)

    def forward(self, image: torch.Tensor, text: torch.Tensor, S_batch: torch.Tensor) -> FusionOutput:
        vx = F.normalize(self.image_encoder(image), dim=1)
        vy = F.normalize(self.text_encoder(text), dim=1)
        gx = F.relu(self.image_graph_bn(S_batch @ self.image_graph(vx)))
        gy = F.relu(self.text_graph_bn(S_batch @ self.text_graph(vy)))
        jx, jy = self.joint_graph(vx), self.joint_graph(vy)
        u = self.joint_graph_bn(torch.cat([S_batch @ jx + jy, jx + S_batch @ jy]))
        m = image.shape[0]
        vj = F.relu(u[:m] + u[m:])
        hj = self.joint_head_bn(self.joint_head(vj))
        hx = self.image_head_bn(self.image_head(torch.cat([gx, vj], dim=1)))
        hy = self.text_head_bn(self.text_head(torch.cat([vj, gy], dim=1)))
        h = torch.tanh(self.fuse_bn(self.fuse(torch.cat([hx, hj, hy], dim=1))))
        return FusionOutput(hx, hy, h, self.image_decoder(h + torch.tanh(hx)), self.text_decoder(h + torch.tanh(hy)))


class RowNormalize(nn.Module):
    """x/‖x‖ per row: the hash networks read L2-normalised features, in training and coding."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=1)


def hash_network(in_dim: int, hidden: int, n_bits: int, dropout: float) -> nn.Sequential:
    """normalize–Linear–ReLU–Dropout–Linear–tanh, the output layer's weights from N(0, 1)."""
    net = nn.Sequential(RowNormalize(), nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
                        nn.Linear(hidden, n_bits), nn.Tanh())
    nn.init.normal_(net[4].weight, mean=0.0, std=1.0)
    return net


# --- losses -------------------------------------------------------------------------------------
def fusion_loss(out: FusionOutput, image_mix: torch.Tensor, text_mix: torch.Tensor, S_batch: torch.Tensor, *,
                lambda1: float, lambda2: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """L₁ of equation 4 and its terms (reconstruction, correlation, quantisation; unweighted)."""
    recon = F.mse_loss(out.image_recon, image_mix) + F.mse_loss(out.text_recon, text_mix)
    corr = sum(F.mse_loss(S_batch, cosine_matrix(h)) for h in (out.image_hash, out.text_hash, out.joint))
    quant = F.mse_loss(out.joint, signs(out.joint.detach()))
    terms = {"reconstruction": recon.detach(), "correlation": corr.detach(), "quantization": quant.detach()}
    return lambda1 * recon + lambda2 * corr + quant, terms


def hash_loss(image_out: torch.Tensor, text_out: torch.Tensor, codes: torch.Tensor, S_batch: torch.Tensor, *,
              beta: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """L₂ of equation 6 and its terms (code regression, similarity; unweighted)."""
    fit = F.mse_loss(image_out, codes) + F.mse_loss(text_out, codes) + F.mse_loss(image_out, text_out)
    sim = (F.mse_loss(cosine_matrix(image_out, text_out), S_batch) + F.mse_loss(cosine_matrix(image_out), S_batch)
           + F.mse_loss(cosine_matrix(text_out), S_batch))
    return fit + beta * sim, {"code_fit": fit.detach(), "similarity": sim.detach()}


def epoch_batches(n: int, batch_size: int, generator: torch.Generator, device: torch.device) -> list[torch.Tensor]:
    """Every row once in shuffled batches of ``batch_size``; a last batch of one row is dropped
    (batch normalisation cannot train on it) when there are others."""
    batches = list(torch.randperm(n, generator=generator).to(device).split(batch_size))
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches.pop()
    return batches


@register(
    name="cirh",
    title="Work Together: Correlation-Identity Reconstruction Hashing for Unsupervised Cross-Modal Retrieval",
    authors="Zhu, Wu, Li, Zhang, Guan & Shen",
    venue="TKDE",
    year=2022,
    kind="deep",
    fidelity="paper",
    deterministic=False,
    memory="O(n²) similarity + O(n·(d_x+d_y+c)) features and codes + fusion and hash networks",
    presets={"quick": {"epochs": 5, "hidden": 256, "fusion_width": 64}},
    dataset_overrides={
        "nuswide": {"knn": 3300, "knn_share": 3300 / AUTHORS_N, "a1": 0.5, "a2": 0.5, "lr_fusion": 1e-4,
                    "epochs": 120},
        "mscoco": {"a1": 0.1, "a2": 0.3, "lr_image": 5e-4, "lr_text": 5e-4, "epochs": 100},
    },
    override_sources={"nuswide": "authors' code", "mscoco": "authors' code"},  # main_nus.py, main_coco.py
    url="https://github.com/XizeWu/CIRH",
    version=1,
)
class CIRH(DeepHasher):
    param_domains = {
        "a1": UNIT.with_default(0.6),
        "a2": UNIT.with_default(0.6),
        "knn": Int(0, 10_000_000, default=AUTHORS_K),
        "knn_share": Real(0.0, 1.0, low_open=True, high_open=True, search=(0.2, 0.9), default=AUTHORS_K / AUTHORS_N),
        "lambda1": weight(0.1, 100.0).with_default(10.0),
        "lambda2": weight(0.1, 10.0).with_default(1.0),
        "beta": weight(1e-3, 1.0).with_default(0.01),
        "epochs": EPOCHS.with_default(60),
        "batch_size": BATCH.with_default(512),
        "hidden": HIDDEN.with_default(4096),
        "fusion_width": HIDDEN.with_default(512),
        "dropout": Real(0.0, 1.0, high_open=True, default=0.3),
        "lr_fusion": learning_rate(1e-5, 1e-2).with_default(1e-3),
        "lr_image": learning_rate(1e-5, 1e-2).with_default(1e-4),
        "lr_text": learning_rate(1e-5, 1e-2).with_default(1e-4),
    }

    # --- networks and set-up ----------------------------------------------------------------
    def _networks(self, image_dim, text_dim, n_bits):
        return (hash_network(image_dim, self.hidden, n_bits, self.dropout),
                hash_network(text_dim, text_dim, n_bits, self.dropout))

    def _zeroed(self, n: int) -> int:
        """K on ``n`` training pairs: entries zeroed per row of S₁ (never the whole row)."""
        return min(knn_count(n, self.knn, self.knn_share), n - 1) if self.knn > 0 else 0

    def _prepare(self, run: TrainingRun, train: PairedFeatures) -> None:
        check_memory(3 * 4 * train.n ** 2, "cirh's n × n similarity matrix")
        self.k_ = self._zeroed(train.n)
        fusion = FusionNet(train.image_dim, train.text_dim, self.fusion_width, self.n_bits_).to(run.device)
        run.state.update(
            similarity=collaborated_similarity(run.image, run.text, a1=self.a1, a2=self.a2, k=self.k_),
            fusion=fusion.train(),
            fusion_optimizer=torch.optim.Adam(fusion.parameters(), lr=self.lr_fusion),
            codes=torch.ones(train.n, self.n_bits_, device=run.device),
        )

    def _optimizers(self):
        return [torch.optim.Adam(self.image_net_.parameters(), lr=self.lr_image),
                torch.optim.Adam(self.text_net_.parameters(), lr=self.lr_text)]

    def _batches(self, run):
        return epoch_batches(run.n, self.batch_size, run.generator, run.device)

    # --- one epoch: the fusion pass, then the hash pass over the same batches ------------------
    def _fusion_step(self, rows: torch.Tensor, run: TrainingRun) -> dict[str, torch.Tensor]:
        state = run.state
        S_batch = block(state["similarity"], rows)
        image_mix = neighbour_mix(run.image[rows], S_batch)
        text_mix = neighbour_mix(run.text[rows], S_batch)
        out = state["fusion"](image_mix, text_mix, S_batch)
        state["codes"][rows] = signs(out.joint.detach())
        loss, terms = fusion_loss(out, image_mix, text_mix, S_batch, lambda1=self.lambda1, lambda2=self.lambda2)
        state["fusion_optimizer"].zero_grad(set_to_none=True)
        loss.backward()
        state["fusion_optimizer"].step()
        return {"loss_fusion": loss.detach(), **terms}

    def _hash_step(self, rows: torch.Tensor, run: TrainingRun) -> dict[str, torch.Tensor]:
        loss, terms = hash_loss(self.image_net_(run.image[rows]), self.text_net_(run.text[rows]),
                                run.state["codes"][rows], block(run.state["similarity"], rows), beta=self.beta)
        for opt in run.optimizers:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        for opt in run.optimizers:
            opt.step()
        return {"loss": loss.detach(), **terms}

    def _epoch(self, epoch, run):
        """The fusion pass, then the hash pass; the epoch's ``loss`` is the hash networks' (they
        code), the fusion network's is ``loss_fusion``."""
        batches = self._batches(run)
        for rows in batches:
            yield self._fusion_step(rows, run)
        for rows in batches:
            yield self._hash_step(rows, run)

    # --- what the harness asks ---------------------------------------------------------------
    def epoch_steps(self, n_train: int) -> int:
        """Two passes over ⌈n/m⌉ batches (less a last batch of one row)."""
        batches = -(-n_train // self.batch_size)
        if batches > 1 and n_train % self.batch_size == 1:
            batches -= 1
        return 2 * batches

    def gpu_memory_bytes(self, n_train, image_dim, text_dim, n_bits):
        """The core's estimate plus S (with its construction's temporaries), B and the fusion
        network's weights."""
        with torch.device("meta"):
            fusion = FusionNet(image_dim, text_dim, self.fusion_width, n_bits)
        weights = sum(p.numel() for p in fusion.parameters())
        return (super().gpu_memory_bytes(n_train, image_dim, text_dim, n_bits) + 3 * 4 * n_train ** 2
                + 4 * n_train * n_bits + 4 * WEIGHT_COPIES * weights)

    def fit_report(self) -> dict[str, Any]:
        return {**super().fit_report(), "k": self.k_}
