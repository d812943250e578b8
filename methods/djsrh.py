"""``djsrh``: Deep Joint-Semantics Reconstructing Hashing.

Paper: S. Su, Z. Zhong, C. Zhang, "Deep Joint-Semantics Reconstructing Hashing for
Large-Scale Unsupervised Cross-Modal Retrieval", ICCV 2019.

Equations as implemented, per batch of m training pairs with image features X and text
features Y (networks, relaxation and loop: :mod:`cmhbench.methods.deep`):

1. Intra-modal similarities S_I = 2·cos(X, X) − 1 and S_T = 2·cos(Y, Y) − 1.
2. Joint semantics: S̃ = β·S_I + (1 − β)·S_T, then the diffusion-like reconstruction
   S = μ·[(1 − η)·S̃ + η·S̃S̃ᵀ/m].  S is a constant target (no gradient flows into it).
3. With B_I = rownorm(tanh(α·f_I(X))), B_T = rownorm(tanh(α·f_T(Y))) and α = √(epoch+1):
   L = λ1·MSE(B_I B_Iᵀ, S) + MSE(B_I B_Tᵀ, S) + λ2·MSE(B_T B_Tᵀ, S).
4. Codes: sgn(f_I(x)) for an image, sgn(f_T(y)) for a text.

Defaults (the authors' MIRFlickr-25K settings, also used for datasets the paper does not
cover): β = 0.9, λ1 = λ2 = 0.1, η = 0.4, μ = 1.5; SGD, momentum 0.9, weight decay 5e-4,
batch 32, lr 0.001 (image) / 0.01 (text), 80 epochs.  Per-dataset overrides: NUS-WIDE
β = 0.6; Wikipedia β = 0.3, λ1 = λ2 = 0.3, 200 epochs, lr 0.01 / 0.01.

Deviations, and why:
- Feature-level protocol: the image network is an MLP on pre-extracted features instead
  of AlexNet/VGG fine-tuned on raw images, and S_I comes from those features (the paper
  uses the CNN's fc7 output).  The Wikipedia overrides were tuned by the authors for a CNN
  on raw images; we apply them to the 128-d SIFT features as given.
- No model selection: the paper's code evaluates during training; we train the stated
  number of epochs and report the final model.

Memory: the training features, plus O(m²) per batch; nothing n × n.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cmhbench.methods.deep import DeepHasher, relaxed_codes, scaled_cosine
from cmhbench.methods.domains import BATCH, EPOCHS, HIDDEN, MOMENTUM, Real, WEIGHT_DECAY, learning_rate, weight
from cmhbench.methods.registry import register


def joint_semantics(image: torch.Tensor, text: torch.Tensor, beta: float, eta: float, mu: float) -> torch.Tensor:
    """S = μ·[(1 − η)·S̃ + η·S̃S̃ᵀ/m] with S̃ = β·S_I + (1 − β)·S_T."""
    fused = beta * scaled_cosine(image) + (1.0 - beta) * scaled_cosine(text)
    m = fused.shape[0]
    return mu * ((1.0 - eta) * fused + eta * (fused @ fused.T) / m)


@register(
    name="djsrh",
    title="Deep Joint-Semantics Reconstructing Hashing for Large-Scale Unsupervised Cross-Modal Retrieval",
    authors="Su, Zhong & Zhang",
    venue="ICCV",
    year=2019,
    kind="deep",
    fidelity="paper",
    deterministic=False,
    memory="O(n·(d_x+d_y)) features + O(m²) per batch",
    presets={"quick": {"epochs": 10, "hidden": 256}},
    dataset_overrides={
        "nuswide": {"beta": 0.6},
        "wikipedia": {"beta": 0.3, "lambda1": 0.3, "lambda2": 0.3, "epochs": 200, "lr_image": 0.01,
                      "lr_text": 0.01},
    },
    override_sources={"nuswide": "authors' code", "wikipedia": "authors' code"},  # settings.py of zs-zhong/DJSRH
    # the target S over the training pairs; μ only scales it, so it is no prior parameter
    prior_params=("beta", "eta"),
    prior=lambda model, train: joint_semantics(torch.from_numpy(train.image), torch.from_numpy(train.text),
                                               model.beta, model.eta, model.mu),
)
class DJSRH(DeepHasher):
    param_domains = {
        "beta": Real(0.0, 1.0, search=(0.1, 0.9), default=0.9),
        "eta": Real(0.0, 1.0, search=(0.1, 0.9), default=0.4),
        "mu": Real(0.0, low_open=True, search=(1.0, 2.0), default=1.5),
        "lambda1": weight(0.01, 1.0).with_default(0.1),
        "lambda2": weight(0.01, 1.0).with_default(0.1),
        "epochs": EPOCHS.with_default(80),
        "batch_size": BATCH.with_default(32),
        "hidden": HIDDEN.with_default(4096),
        "lr_image": learning_rate(1e-4, 1e-1).with_default(0.001),
        "lr_text": learning_rate(1e-4, 1e-1).with_default(0.01),
        "momentum": MOMENTUM.with_default(0.9),
        "weight_decay": WEIGHT_DECAY.with_default(5e-4),
    }

    def _batch_loss(self, epoch, rows, image, text):
        with torch.no_grad():
            S = joint_semantics(image, text, self.beta, self.eta, self.mu)
        b_img = relaxed_codes(self.image_net_, image, epoch)
        b_txt = relaxed_codes(self.text_net_, text, epoch)
        intra_image = F.mse_loss(b_img @ b_img.T, S)
        cross = F.mse_loss(b_img @ b_txt.T, S)
        intra_text = F.mse_loss(b_txt @ b_txt.T, S)
        loss = self.lambda1 * intra_image + cross + self.lambda2 * intra_text
        return loss, {"intra_image": intra_image, "cross": cross, "intra_text": intra_text}
