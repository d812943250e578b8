"""``dsah``: Deep Semantic-Alignment Hashing — DJSRH-style similarity alignment plus cross-modal reconstruction.

Paper: D. Yang, D. Wu, W. Zhang, H. Zhang, B. Li, W. Wang, "Deep Semantic-Alignment Hashing
for Unsupervised Cross-Modal Retrieval", ICMR 2020, pp. 44–52 (doi 10.1145/3372278.3390673).
Authors' code (PyTorch): https://github.com/idejie/DSAH, last commit b231976 (the code is the
first commit, da640bc; later commits edit the README only); file references below are to it:
``settings.py``, ``models.py``, ``train.py``, ``metric.py``.  A PaddlePaddle port
(LiuJinyu1229/paddle, ``DSAH/train.py`` at 6d6c606, later renamed ``main.py``) differs from it
in two places, noted in the table; we follow the authors' code.  The paper's full text was not available to us; the equations are the code's.

Equations as implemented, per batch of m training pairs with image features X (m × d_x) and
text features Y (m × d_y), c bits (networks, relaxation and loop: :mod:`cmhbench.methods.deep`):

1. Feature similarities (train.py:98-103): F_I = rownorm(X), F_T = rownorm(Y),
   S_I = 2·F_I F_Iᵀ − 1, S_T = 2·F_T F_Tᵀ − 1; fused (train.py:112-113)
   S = k·(α·S_I + (1 − α)·S_T).  All constant targets (no gradient flows into them).
2. Relaxed codes (models.py:26-27, 49-50; train.py:105-106): H_I = tanh(a·f_I(X)),
   H_T = tanh(a·f_T(Y)), a = √(epoch + 1) (models.py:32-33), and B_I = rownorm(H_I),
   B_T = rownorm(H_T).
3. Cross-modal reconstruction (models.py:28-29, 51-52): each modality's sign codes decode the
   *other* modality's normalised features, R_T = g_I(sgn(H_I)) ≈ F_T (image codes → text) and
   R_I = g_T(sgn(H_T)) ≈ F_I (text codes → image), g_I: Linear(c → d_y), g_T: Linear(c → d_x).
4. Loss (train.py:115-128), MSE the mean over entries:
   L = MSE(B_T B_Tᵀ, S) + MSE(B_I B_Tᵀ, S) + MSE(B_I B_Iᵀ, S)            (alignment)
     + MSE(diag(B_I B_Tᵀ), k·1)                                          (paired codes agree)
     + MSE(R_I, F_I) + MSE(R_T, F_T)                                     (reconstruction)
     + 2·MSE(B_I B_Tᵀ, (B_I B_Tᵀ)ᵀ)                                      (symmetric cross term)
     + η·[MSE(B_I B_Iᵀ, k·S_I) + MSE(B_T B_Tᵀ, k·S_T)]                   (each modality's own)
   The unit weights and the 2 are written in train.py:127 (:data:`LOSS_WEIGHTS`); k, α, η are
   settings (``k``, ``alpha``, ``eta``).  Since rows of B have unit norm, diag(B_I B_Tᵀ) ≤ 1 < k:
   the paired term never vanishes, it keeps pulling paired codes together.
5. Codes: sgn(f_I(x)) for an image, sgn(f_T(y)) for a text (metric.py:6-36: sgn of tanh(a·h),
   the same signs).

The gradient of the reconstruction (the decision we had to make).  The authors decode
``torch.sign(code)``, whose gradient is zero everywhere: in their code the two reconstruction
terms train the decoders g_I, g_T and nothing else, so they cannot change a single code bit
(the decoders are used by no other term and not at coding time).  The README says the
reconstruction is meant "to further bridge the modality gap", which needs a gradient into
the hash networks.  We keep the code's behaviour as the default (``decode_gradient="none"``:
the published numbers come from it, and its cost, the decoders' forward and backward, is
paid as the authors pay it) and offer ``decode_gradient="straight-through"``: the forward
value is still sgn(H), the backward pass treats sgn as the identity, so the reconstruction
error reaches f_I and f_T.  That option is ours, not the authors'.

Defaults, all the authors' (settings.py:12-49 sets the same values for Wikipedia, MIRFlickr-25K
and NUS-WIDE, so there is no per-dataset override): k = 1.5, α = 0.9, η = 0.1; SGD with
Nesterov momentum 0.7, weight decay 5e-4, lr 0.005 for both networks (their decoders
included); batch 32, last incomplete batch dropped; 200 epochs; hidden 4096.  The ``quick``
preset (tests, default tour): 10 epochs, hidden 256.

Fidelity table (ours vs theirs; "=" where identical):

| item | authors (file:line) | ours |
| --- | --- | --- |
| image features for S_I, F_I | fc7 of a frozen ImageNet AlexNet, a second copy in eval mode (train.py:59, 76, 94) | the given image features (constant, as theirs) |
| image net | AlexNet conv + fc6/fc7 fine-tuned (dropout 0.5) + Linear(4096 → c) (models.py:12-14) | Linear(d_x → hidden)–ReLU–Linear(hidden → c) |
| text net | Linear(d_y → 4096)–ReLU–Linear(4096 → c) (models.py:39-41) | = (``hidden``) |
| decoders | Linear(c → d_y) on image codes, Linear(c → 4096) on text codes (models.py:15, 42) | Linear(c → d_y), Linear(c → d_x) |
| decoder input | sgn(tanh(a·h)), no gradient to the encoder (models.py:28-29, 51-52) | = (``"none"``); ``"straight-through"`` offered |
| relaxation | a = √(epoch + 1) (models.py:32-33, 55-56; train.py:81-82) | = |
| similarity | S = k(αS_I + (1−α)S_T), k = 1.5, α = 0.9 (settings.py:42, 44; train.py:112-113) | = |
| loss weights | 1,1,1,1,1,1, 2 (symmetry), η = 0.1 (own-modality terms) (train.py:127-128; settings.py:43) | = |
| paired target | k·1 (train.py:121-123) | = |
| optimiser | SGD, Nesterov, momentum 0.7, wd 5e-4, lr 0.005 / 0.005, one per network (train.py:63-72; settings.py:19-20, 28-29, 38-39, 48-49) | = (Nesterov only when momentum > 0, which torch requires) |
| batch, epochs | 32, drop last, shuffled; 200 epochs (train.py:42-46; settings.py:18, 27, 37, 46) | = |
| model selection | test-set mAP@50 every epoch, best checkpoint kept and reported (settings.py:21; train.py:190-198, 241-244) | none: the final model |
| Paddle port | plain SGD without momentum, frozen feature net left in train mode (DSAH/train.py:51-53, 57) | not followed |

Deviations, and why:
- Feature-level protocol: no AlexNet on pixels.  The image network's hidden layer stands in
  for the fine-tuned fc layers, as in ``djsrh`` and ``jdsh`` (without their dropout: the
  core's stand-in has none).  The frozen AlexNet that gives the authors' image similarity
  and reconstruction target is exactly the role of the given features, so S_I and F_I are
  what the authors compute, on other features.
- The text network's decoder reconstructs the d_x-dimensional given image features instead of
  4,096-d fc7 (the same thing on the authors' features).
- No model selection on test queries (see the table).

Memory: the training features, two networks and two c × d decoders, O(m²) per batch.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cmhbench.methods.deep import WEIGHT_COPIES, DeepHasher, relaxation, scaled_cosine
from cmhbench.methods.domains import (BATCH, EPOCHS, HIDDEN, MOMENTUM, WEIGHT_DECAY, Choice, Real, learning_rate,
                                      weight)
from cmhbench.methods.registry import register

DECODE_GRADIENTS = ("none", "straight-through")
#: The fixed weights of the loss terms (train.py:127; the η terms are weighted by ``eta``).
LOSS_WEIGHTS = {"intra_text": 1.0, "cross": 1.0, "intra_image": 1.0, "paired": 1.0, "recon_image": 1.0,
                "recon_text": 1.0, "symmetry": 2.0}


def decoder_input(codes: torch.Tensor, gradient: str) -> torch.Tensor:
    """sgn(codes) as the decoders read it: no gradient (the authors' ``torch.sign``), or the
    straight-through estimator (forward sgn, backward identity)."""
    if gradient == "none":
        return torch.sign(codes)
    if gradient == "straight-through":
        return codes + (torch.sign(codes) - codes).detach()
    raise ValueError(f"decode_gradient must be one of {', '.join(DECODE_GRADIENTS)}, got {gradient!r}")


def dsah_loss(codes_image: torch.Tensor, codes_text: torch.Tensor, recon_image: torch.Tensor,
              recon_text: torch.Tensor, image: torch.Tensor, text: torch.Tensor, *, k: float, alpha: float,
              eta: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The loss of one batch (module docstring, item 4) and its named terms.

    ``codes_*``: the relaxed codes tanh(a·h) (m × c); ``recon_image``: the text codes' decoding
    of the image features (m × d_x), ``recon_text`` the image codes' of the text (m × d_y);
    ``image``, ``text``: the batch's features, from which the constant targets are made."""
    with torch.no_grad():
        s_image, s_text = scaled_cosine(image), scaled_cosine(text)
        S = k * (alpha * s_image + (1.0 - alpha) * s_text)
        f_image, f_text = F.normalize(image, dim=1), F.normalize(text, dim=1)
    b_image, b_text = F.normalize(codes_image, dim=1), F.normalize(codes_text, dim=1)
    image_image, text_text, cross = b_image @ b_image.T, b_text @ b_text.T, b_image @ b_text.T
    terms = {
        "intra_text": F.mse_loss(text_text, S),
        "cross": F.mse_loss(cross, S),
        "intra_image": F.mse_loss(image_image, S),
        "paired": F.mse_loss(torch.diagonal(cross), torch.full_like(torch.diagonal(cross), k)),
        "recon_image": F.mse_loss(recon_image, f_image),
        "recon_text": F.mse_loss(recon_text, f_text),
        "symmetry": F.mse_loss(cross, cross.T),
        "own_image": F.mse_loss(image_image, k * s_image),
        "own_text": F.mse_loss(text_text, k * s_text),
    }
    loss = sum(LOSS_WEIGHTS[name] * terms[name] for name in LOSS_WEIGHTS) + eta * (terms["own_image"]
                                                                                   + terms["own_text"])
    return loss, {name: value.detach() for name, value in terms.items()}


@register(
    name="dsah",
    title="Deep Semantic-Alignment Hashing for Unsupervised Cross-Modal Retrieval",
    authors="Yang, Wu, Zhang, Zhang, Li & Wang",
    venue="ICMR",
    year=2020,
    kind="deep",
    fidelity="paper",
    version=1,
    deterministic=False,
    memory="O(n·(d_x+d_y)) features + 2 networks + c·(d_x+d_y) decoders + O(m²) per batch",
    presets={"quick": {"epochs": 10, "hidden": 256}},
    url="https://github.com/idejie/DSAH",
)
class DSAH(DeepHasher):
    param_domains = {
        "k": Real(0.0, low_open=True, search=(1.0, 2.0), default=1.5),
        "alpha": Real(0.0, 1.0, search=(0.1, 0.9), default=0.9),
        "eta": weight(0.01, 1.0).with_default(0.1),
        "decode_gradient": Choice(DECODE_GRADIENTS, default="none"),
        "epochs": EPOCHS.with_default(200),
        "batch_size": BATCH.with_default(32),
        "hidden": HIDDEN.with_default(4096),
        "lr_image": learning_rate(1e-4, 1e-1).with_default(0.005),
        "lr_text": learning_rate(1e-4, 1e-1).with_default(0.005),
        "momentum": MOMENTUM.with_default(0.7),
        "weight_decay": WEIGHT_DECAY.with_default(5e-4),
    }

    def _check_params(self) -> None:
        if self.decode_gradient not in DECODE_GRADIENTS:
            raise ValueError(f"dsah.decode_gradient must be one of {', '.join(DECODE_GRADIENTS)}, "
                             f"got {self.decode_gradient!r}")

    def _prepare(self, run, train):
        """The two decoders (learned with their modality's network; unused at coding time)."""
        self.image_decoder_ = nn.Linear(self.n_bits_, train.text_dim).to(run.device)
        self.text_decoder_ = nn.Linear(self.n_bits_, train.image_dim).to(run.device)

    def _optimizers(self):
        """SGD with Nesterov momentum per network, its decoder included (train.py:63-72)."""
        def sgd(*modules: nn.Module, lr: float) -> torch.optim.SGD:
            params = [p for module in modules for p in module.parameters()]
            return torch.optim.SGD(params, lr=lr, momentum=self.momentum, weight_decay=self.weight_decay,
                                   nesterov=self.momentum > 0)
        return [sgd(self.image_net_, self.image_decoder_, lr=self.lr_image),
                sgd(self.text_net_, self.text_decoder_, lr=self.lr_text)]

    def _batch_loss(self, epoch, rows, image, text):
        slope = relaxation(epoch)
        codes_image = torch.tanh(slope * self.image_net_(image))
        codes_text = torch.tanh(slope * self.text_net_(text))
        recon_text = self.image_decoder_(decoder_input(codes_image, self.decode_gradient))
        recon_image = self.text_decoder_(decoder_input(codes_text, self.decode_gradient))
        return dsah_loss(codes_image, codes_text, recon_image, recon_text, image, text, k=self.k, alpha=self.alpha,
                         eta=self.eta)

    def gpu_memory_bytes(self, n_train: int, image_dim: int, text_dim: int, n_bits: int) -> int:
        """The core's count plus the two decoders' weights, held as the networks' are."""
        decoders = (n_bits + 1) * (image_dim + text_dim)
        return super().gpu_memory_bytes(n_train, image_dim, text_dim, n_bits) + 4 * WEIGHT_COPIES * decoders

    def fit_report(self) -> dict[str, Any]:
        return {**super().fit_report(), "decode_gradient": self.decode_gradient}
