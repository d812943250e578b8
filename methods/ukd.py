"""``ukd``: Unsupervised Knowledge Distillation for cross-modal hashing (UGACH teacher).

Paper: H. Hu, L. Xie, R. Hong, Q. Tian, "Creating Something from Nothing: Unsupervised
Knowledge Distillation for Cross-Modal Hashing", CVPR 2020, pp. 3123–3132 (arXiv 2004.00280).
Authors' code (TensorFlow 1): https://github.com/huhengtong/UKD_CVPR2020, last commit a96a9f7;
file references below are to it: ``teacher_model/teacher_train.py``,
``teacher_model/pretrain/teacher_pretrain.py``, ``teacher_model/calcu_sim.py``,
``student_model/setting.py``, ``student_model/student_train.py``, ``student_model/tnet.py``,
``student_model/vgg19.py`` and ``student_model/ops.py``.  The student is SSAH's code with the
label network removed, i.e. DCMH's alternating scheme.

Equations as implemented.  Over the n training pairs:

1. Teacher: UGACH (:mod:`cmhbench.methods.ugach`) trained on the training pairs at 128 bits
   (teacher_train.py:14) with the UKD teacher's settings where they differ from UGACH's:
   discriminator batch 512 and learning rates 0.01 for both networks
   (teacher_train.py:30-33), pre-training 200 passes of batch 256 (teacher_pretrain.py:18-29);
   everything else is ugach's default.  Each is a ``teacher_*`` hyper-parameter.
2. Teacher outputs (calcu_sim.py:35-52, 101-102): the discriminator's continuous outputs
   u_i = σ(D_I(x_i)), v_i = σ(D_T(y_i)) ∈ (0, 1)^128 on the training set.
3. Similarity (calcu_sim.py:63-89; setting.py:64-72): kNN_I(i) = the K items nearest to i by
   ‖u_i − u_j‖, kNN_T(i) likewise by ‖v_i − v_j‖ (each list holds i itself), and
   S_ij = 0.999 (``similarity``) if j ∈ kNN_I(i) ∪ kNN_T(i), else 0.  S need not be
   symmetric.  K = 10,000 of the authors' 18,015 items (calcu_sim.py:64-65); on other
   training-set sizes K = min(``knn``, round(``knn_share``·n)) with ``knn_share`` =
   10000/18015 (see deviations).
4. Student (student_train.py:70-99): F = f_I(X), G = f_T(Y) ∈ (−1, 1)^c (tanh outputs), kept
   in n × c buffers started from N(0, 1) draws (student_train.py:119-120).  A step of the
   image network on a batch of m rows, with its outputs H (m × c):
   θ_ij = ½·H_iᵀG_j over the batch rows i and all n items j,
   pair = ½·Σ_ij (S_ij·θ_ij − log(1 + e^θ_ij))²   (``pair_loss="squared"``, the code:
   ops.py:55-56 makes ``mse_criterion`` tf.nn.l2_loss, ½ of a sum of squares), or
   pair = Σ_ij (log(1 + e^θ_ij) − S_ij·θ_ij)      (``pair_loss="nll"``, DCMH's negative
   log-likelihood, the form the paper writes),
   quant = ½·Σ (sgn(H) − H)²  (the batch's own signs, student_train.py:210),
   J = γ·pair + β·quant, γ = β = 1 (setting.py:80-82; ``gamma``, ``beta``).
   The batch's rows of F are replaced by H before the step (student_train.py:196-204); the
   text network's step is the same with F and G swapped (student_train.py:219-248).
5. Schedule (student_train.py:125-137, 179-186): 30 epochs, each two rounds of (an image
   pass, then a text pass); a pass is ⌊n/m⌋ steps, each on m = 256 rows drawn afresh
   (a new permutation per step).  Adam, learning rate 10⁻⁴ for both networks, constant.
6. Codes: sgn(f_I(x)) for an image, sgn(f_T(y)) for a text (student_train.py:250-275).

Networks (feature-level protocol).  Image: Linear(d_x → 4096)–ReLU–Dropout(0.5)–
Linear(4096 → c)–tanh, standing in for VGG-19's fine-tuned fc7 and hash layer (dropout 0.5 in
training, vgg19.py:73-88 with keep_prob 0.5 at student_train.py:216), the hash layer's weights
and biases from a normal truncated at 2σ, σ = 0.001 (vgg19.py:128-132).  Text:
Linear(d_y → 4096)–ReLU–Linear(4096 → c)–tanh, weights and biases from N(0, 0.01²)
(tnet.py:9-10, 20-21), no dropout (keep_prob 1.0, student_train.py:247).

Defaults, all the authors' (their code sets MIRFlickr-25K's only, used here for every
dataset): S = 0.999, K = 0.555·n, squared pair term, γ = β = 1, 30 epochs of 2 rounds,
batch 256, Adam 10⁻⁴, hidden 4096, image dropout 0.5; teacher as in item 1.  The ``quick``
preset (tests, default tour): 3 student epochs, hidden 256, and ugach's quick preset for the
teacher (at 128 bits).

Fidelity table (ours vs theirs; "=" where identical):

| item | authors (file:line) | ours |
| --- | --- | --- |
| teacher | UGACH, 128 bits, D batch 512, lr 0.01/0.01 (teacher_train.py:14-35) | ugach with those values |
| teacher pre-training | 200 passes, batch 256, lr 0.01, best test mAP kept (teacher_pretrain.py:18-29) | 200 passes, final model |
| teacher outputs | σ outputs of D (calcu_sim.py:46-48) | = |
| similarity | kNN (Euclidean) per modality, K = 10000 of 18015, union, 0.999 (calcu_sim.py:64-84; setting.py:64-72) | =, K as a share of n |
| pair loss | ½Σ(Sθ − log(1+e^θ))², θ = ½GHᵀ (student_train.py:84-85; ops.py:55-56) | = (``"squared"``); ``"nll"`` offered |
| quantisation | ½Σ(sgn(H) − H)², weight 1 (student_train.py:86, 89) | = |
| image net | VGG-19, fc_hash + tanh, dropout 0.5 (vgg19.py:73-88) | MLP on the given features |
| text net | multi-scale pooling + 4096 conv + LRN + tanh (tnet.py:6-56) | Linear–ReLU–Linear–tanh |
| optimiser | Adam 10⁻⁴, one optimiser for both nets (student_train.py:105-111, 128-129) | Adam 10⁻⁴ per net |
| batch | 256, drawn afresh per step (setting.py:25; student_train.py:184-186) | = |
| schedule | 30 epochs × 2 rounds (setting.py:75; student_train.py:126-133) | = |
| model selection | test mAP printed every epoch (student_train.py:148-149) | none: final model |

The released code does not run as published; what we did where it is broken:
- ``setting.py:71`` reads ``teacher_knn_txt``, but line 61 loads the text neighbours as
  ``teacher_knn_text``: the undefined name is plainly the text kNN list, so S marks the union
  of the image and the text neighbours (the code's evident intent; the paper describes S
  from the teacher's outputs of both modalities).  Lines 31-43 and 62 also use names never
  defined (``list_dir``, ``get_dict_values``, ``train_label``; the last only for an unused
  label similarity), and ``student_train.py:37`` reads ``dimTxt`` for ``dimText``.
- ``calcu_sim.py`` ranks 18,015 items while ``setting.py:45-53`` trains on the first 15,000,
  so indices ≥ 15,000 would fall outside S; we rank the training set itself.
- ``calcu_sim.py:93`` loads an undefined ``DIS_MODEL_BEST_I2I_FILE``: the teacher's best
  discriminator, i.e. the one teacher_train.py saves; we use the final discriminator.

Other deviations, and why:
- K on other training sets: 10,000 neighbours per modality is a share of 0.555 of the
  authors' 18,015 items; a fixed 10,000 exceeds our training sets, so we keep the share.
- Feature-level protocol: no VGG-19 on pixels (the image network stands in for its trainable
  fully connected layers, as for every deep method here).  SSAH's multi-scale text network
  pools windows up to 50 words wide, which does not exist on 10-d Wikipedia topics; we use
  the core's text MLP with the authors' initialisation.
- log(1 + e^θ) is computed as softplus(θ) (the authors' form overflows for θ > 88 in
  float32); equal elsewhere.
- The authors compute each batch's outputs twice, once to fill F (and sgn(H)) and once in
  the update, each with its own dropout mask; we use one forward pass for both.
- No model selection and no teacher checkpoint chosen on test mAP (see the table).

Caching.  With a ``cache`` (a joblib.Memory) the teacher's outputs are cached, keyed by the
training data's content key, the seed, the teacher's complete parameter set (bits included),
ugach's version and the device kind (cpu or cuda: a GPU teacher is not bit-identical to a
CPU one), so a grid of bit lengths trains one teacher per dataset, seed and device kind.

Memory: the training features, the teacher outputs (2 × n × 128), F and G (n × c), and
O(m·n) per batch (the batch's rows of S and θ); nothing n × n.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cmhbench.methods.base import PairedFeatures, Progress, ProgressCallback, resolve_device
from cmhbench.methods.deep import DeepHasher, cached_setup, mlp, signs
from cmhbench.methods.domains import Choice, Int, POSITIVE, Real, WEIGHT_DECAY, learning_rate, weight
from cmhbench.methods.registry import register
from cmhbench.methods.ugach import UGACH

PAIR_LOSSES = ("squared", "nll")
#: The authors' neighbour count over their ranked items (calcu_sim.py:64-65).
AUTHORS_K, AUTHORS_N = 10_000, 18_015
#: Rows per block when computing the kNN thresholds (memory bound only).
THRESHOLD_BLOCK = 1024

#: The UKD teacher's values where they differ from ugach's defaults (teacher_train.py:14, 30-33;
#: teacher_pretrain.py:19, 27, 29).
TEACHER_OVERRIDES = {"batch_size": 512, "lr_discriminator": 0.01, "lr_generator": 0.01, "pretrain_epochs": 200,
                     "pretrain_batch_size": 256}
TEACHER = {**UGACH.default_params(), **TEACHER_OVERRIDES}
#: The teacher's parameters exposed as ``teacher_<name>``.
TEACHER_FIELDS = tuple(TEACHER)


def as_teacher_values(table: dict[str, Any]) -> dict[str, Any]:
    """ugach values (a preset) as ukd's ``teacher_*`` values."""
    return {f"teacher_{name}": value for name, value in table.items() if name in TEACHER_FIELDS}


# --- teacher ---------------------------------------------------------------------------------
def device_kind(device: str) -> str:
    """'cuda' or 'cpu': the part of a device that changes a teacher's floats."""
    return "cuda" if str(device).startswith("cuda") else "cpu"


def train_teacher(train: PairedFeatures, params: dict[str, Any], seed: int, device: str,
                  progress: ProgressCallback | None = None) -> dict[str, Any]:
    """Fit UGACH (``params`` complete, ``bits`` included) and return its discriminator's
    sigmoid outputs on ``train`` (float32)."""
    params = dict(params)
    bits = params.pop("bits")
    teacher = UGACH(**params, seed=seed, device=device, cache=None).fit(train, bits, progress)
    image = 1.0 / (1.0 + np.exp(-teacher._encode_image(train.image)))
    text = 1.0 / (1.0 + np.exp(-teacher._encode_text(train.text)))
    return {"image": image.astype(np.float32), "text": text.astype(np.float32), "n": train.n,
            "report": teacher.fit_report()}


def _cached_teacher(data_key: str, seed: int, params: dict[str, Any], version: int, kind: str,
                    train: PairedFeatures, device: str, progress: ProgressCallback | None = None) -> dict[str, Any]:
    """What joblib caches: keyed by data key, seed, parameters, version and device kind
    (``train``, ``device`` and ``progress`` are ignored)."""
    return train_teacher(train, params, seed, device, progress)


# --- the distilled similarity -------------------------------------------------------------------
def knn_count(n: int, knn: int, share: float) -> int:
    """K = min(knn, n, round(share·n)), at least 1."""
    return max(1, min(knn, n, int(round(share * n))))


def squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """‖a_i − b_j‖², each entry computed from its own two rows (no matrix-product shortcut), so a
    pair's distance is the same bits whichever block it is computed in: the radius of the K-th
    neighbour then always admits that neighbour."""
    return torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist").pow(2)


@torch.no_grad()
def knn_radii(out: torch.Tensor, k: int, block: int = THRESHOLD_BLOCK) -> torch.Tensor:
    """τ_i = the K-th smallest ‖out_i − out_j‖² over all j (the item itself included, at 0)."""
    return torch.cat([squared_distances(out[s:s + block], out).topk(k, dim=1, largest=False).values[:, -1]
                      for s in range(0, out.shape[0], block)])


@torch.no_grad()
def similarity_rows(image_out: torch.Tensor, text_out: torch.Tensor, radii: tuple[torch.Tensor, torch.Tensor],
                    rows: torch.Tensor, value: float) -> torch.Tensor:
    """Rows ``rows`` of S (m × n): ``value`` where j is within i's image or text kNN radius."""
    near = (squared_distances(image_out[rows], image_out) <= radii[0][rows, None]) | \
           (squared_distances(text_out[rows], text_out) <= radii[1][rows, None])
    return near.to(image_out.dtype) * value


# --- the student's objective ----------------------------------------------------------------------
def student_loss(out: torch.Tensor, other: torch.Tensor, S: torch.Tensor, *, gamma: float, beta: float,
                 pair_loss: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """J = γ·pair + β·quant for a batch's outputs ``out`` (m × c) against the other modality's
    buffer ``other`` (n × c) and the batch's rows of S (m × n); see the module docstring."""
    theta = 0.5 * out @ other.T
    if pair_loss == "squared":
        pair = 0.5 * (S * theta - F.softplus(theta)).pow(2).sum()
    elif pair_loss == "nll":
        pair = (F.softplus(theta) - S * theta).sum()
    else:
        raise ValueError(f"pair_loss must be one of {PAIR_LOSSES}, got {pair_loss!r}")
    quant = 0.5 * (torch.sign(out.detach()) - out).pow(2).sum()
    return gamma * pair + beta * quant, {"pair": pair.detach(), "quantization": quant.detach()}


def image_network(in_dim: int, hidden: int, out_dim: int, dropout: float) -> nn.Sequential:
    """Linear–ReLU–Dropout–Linear–tanh; the hash layer from a truncated N(0, 0.001²)."""
    net = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
                        nn.Linear(hidden, out_dim), nn.Tanh())
    for tensor in (net[3].weight, net[3].bias):
        nn.init.trunc_normal_(tensor, mean=0.0, std=0.001, a=-0.002, b=0.002)
    return net


def text_network(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    """Linear–ReLU–Linear–tanh, every weight and bias from N(0, 0.01²)."""
    net = nn.Sequential(*mlp(in_dim, hidden, out_dim), nn.Tanh())
    for p in net.parameters():
        nn.init.normal_(p, mean=0.0, std=0.01)
    return net


def prior_similarity(model: "UKD", train: PairedFeatures) -> torch.Tensor:
    """S of item 3 over every pair of ``train`` (n × n), the teacher trained on ``train`` (cached
    through ``model.cache``): what ``cmhbench priors`` scores for ukd's neighbourhood share."""
    model.device_ = device = resolve_device(model.device)
    teacher = model._teacher_outputs(train)
    image, text = torch.from_numpy(teacher["image"]).to(device), torch.from_numpy(teacher["text"]).to(device)
    k = knn_count(train.n, model.knn, model.knn_share)
    return similarity_rows(image, text, (knn_radii(image, k), knn_radii(text, k)),
                           torch.arange(train.n, device=device), model.similarity)


@register(
    name="ukd",
    title="Creating Something from Nothing: Unsupervised Knowledge Distillation for Cross-Modal Hashing",
    authors="Hu, Xie, Hong & Tian",
    venue="CVPR",
    year=2020,
    kind="deep",
    fidelity="paper",
    uses=("ugach",),
    deterministic=False,
    memory="O(n·(d_x+d_y)) features + O(n·(c+128)) buffers and teacher outputs + O(m·n) per batch",
    presets={"quick": {"epochs": 3, "hidden": 256, **as_teacher_values(UGACH.info.presets["quick"])}},
    url="https://github.com/huhengtong/UKD_CVPR2020",
    prior_params=("knn_share",),
    prior=prior_similarity,
)
class UKD(DeepHasher):
    param_domains = {
        "similarity": Real(0.0, 1.0, low_open=True, default=0.999),
        "knn": Int(1, default=AUTHORS_K),
        "knn_share": Real(0.0, 1.0, low_open=True, search=(0.01, 0.8), log=True, default=AUTHORS_K / AUTHORS_N),
        "pair_loss": Choice(PAIR_LOSSES, default="squared"),
        "gamma": weight(0.1, 10.0).with_default(1.0),
        "beta": weight(0.1, 10.0).with_default(1.0),
        "epochs": Int(1, 10_000, default=30),
        "rounds": Int(1, 100, default=2),
        "batch_size": Int(2, 100_000, default=256),
        "hidden": Int(1, 65_536, default=4096),
        "dropout": Real(0.0, 1.0, high_open=True, default=0.5),
        "lr_image": learning_rate(1e-5, 1e-2).with_default(1e-4),
        "lr_text": learning_rate(1e-5, 1e-2).with_default(1e-4),
        "weight_decay": WEIGHT_DECAY.with_default(0.0),
        "teacher_bits": Int(1, 4096, default=128),
        # the teacher's domains are ugach's, its defaults ugach's with the authors' teacher changes
        **{f"teacher_{name}": domain.with_default(TEACHER[name]) for name, domain in UGACH.param_domains.items()},
    }

    # --- teacher ------------------------------------------------------------------------------
    def teacher_params(self) -> dict[str, Any]:
        """The teacher's complete UGACH parameter set, ``bits`` included."""
        return {**{name: getattr(self, f"teacher_{name}") for name in TEACHER_FIELDS}, "bits": self.teacher_bits}

    def _teacher_outputs(self, train: PairedFeatures) -> dict[str, Any]:
        out, from_cache = cached_setup(self.cache, _cached_teacher, train.key, int(self.seed), self.teacher_params(),
                                       UGACH.info.version, device_kind(self.device_), train, self.device_,
                                       progress=self._teacher_progress)
        if out["n"] != train.n or out["image"].shape[0] != train.n:
            raise RuntimeError(f"cached teacher outputs have {out['image'].shape[0]} rows for {train.n} training pairs")
        self.teacher_report_ = {"bits": self.teacher_bits, "from_cache": from_cache, "fit": out["report"]}
        return out

    def _teacher_progress(self, report: Progress) -> None:
        """The teacher's epochs as this fit's progress, its values prefixed ``teacher_``."""
        self.report_progress(report.done, report.total, f"teacher {report.stage}",
                             **{f"teacher_{k}": v for k, v in report.values.items()})

    # --- the core's loop: DCMH's alternating passes ----------------------------------------------
    def _check_params(self) -> None:
        if self.pair_loss not in PAIR_LOSSES:
            raise ValueError(f"ukd.pair_loss must be one of {', '.join(PAIR_LOSSES)}, got {self.pair_loss!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"ukd.dropout must lie in [0, 1), got {self.dropout}")

    def _networks(self, image_dim, text_dim, n_bits):
        return (image_network(image_dim, self.hidden, n_bits, self.dropout),
                text_network(text_dim, self.hidden, n_bits))

    def _prepare(self, run, train):
        teacher = self._teacher_outputs(train)  # its own seeded fit: our RNG is untouched
        image_out = torch.from_numpy(teacher["image"]).to(run.device)
        text_out = torch.from_numpy(teacher["text"]).to(run.device)
        self.k_ = knn_count(train.n, self.knn, self.knn_share)
        radii = (knn_radii(image_out, self.k_), knn_radii(text_out, self.k_))
        F_buf = torch.randn(train.n, self.n_bits_, generator=run.generator).to(run.device)
        G_buf = torch.randn(train.n, self.n_bits_, generator=run.generator).to(run.device)
        run.state.update(teacher=(image_out, text_out), radii=radii, F=F_buf, G=G_buf)

    def _optimizers(self):
        return [torch.optim.Adam(self.image_net_.parameters(), lr=self.lr_image, weight_decay=self.weight_decay),
                torch.optim.Adam(self.text_net_.parameters(), lr=self.lr_text, weight_decay=self.weight_decay)]

    def _student_step(self, modality: str, rows: torch.Tensor, run) -> dict[str, torch.Tensor]:
        state = run.state
        if modality == "image":
            net, opt, own, other, features = self.image_net_, run.optimizers[0], state["F"], state["G"], run.image
        else:
            net, opt, own, other, features = self.text_net_, run.optimizers[1], state["G"], state["F"], run.text
        S = similarity_rows(*state["teacher"], state["radii"], rows, self.similarity)
        out = net(features[rows])
        own[rows] = out.detach()
        loss, terms = student_loss(out, other, S, gamma=self.gamma, beta=self.beta, pair_loss=self.pair_loss)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss": loss.detach(), f"loss_{modality}": loss.detach(), **terms}

    def _batches(self, run):
        """⌊n/m⌋ batches, each m rows of a fresh permutation (the authors' sampling)."""
        m = min(self.batch_size, run.n)
        return [torch.randperm(run.n, generator=run.generator)[:m].to(run.device) for _ in range(run.n // m)]

    def _epoch(self, epoch, run):
        for _ in range(self.rounds):
            for modality in ("image", "text"):
                for rows in self._batches(run):
                    yield self._student_step(modality, rows, run)

    setup_epochs = ("teacher_pretrain_epochs", "teacher_epochs")  # the teacher trains before the student

    @classmethod
    def setup_minimum(cls):
        return {**super().setup_minimum(), "teacher_hidden": 64, "teacher_bits": 16}

    def fit_report(self) -> dict[str, Any]:
        return {**super().fit_report(), "k": self.k_, "pair_loss": self.pair_loss, "teacher": self.teacher_report_}
