"""The machine shared by the deep methods: two networks, relaxed codes, one training loop.

Most unsupervised deep CMH methods differ only in the similarity target they build for a
batch and the loss that pulls code similarities toward it.  :class:`DeepHasher` holds
everything else, once:

- **Networks** (feature-level protocol): the text network is Linear(d_y→4096)–ReLU–
  Linear(4096→c), as in DJSRH, JDSH and their successors; the image network mirrors it on
  the given image features, Linear(d_x→4096)–ReLU–Linear(4096→c), standing in for the
  trainable fully connected layers those papers fine-tune on top of a CNN.  The hidden
  width is the ``hidden`` hyper-parameter (4096 by default).  A method whose authors
  train other layers on the features we are given overrides :meth:`DeepHasher._networks`
  (JDSH offers one linear image layer as an option).
- **Relaxed codes**: B = tanh(α·h) with α = √(epoch + 1) (DJSRH's and JDSH's schedule,
  which sharpens the tanh as training proceeds); codes are sgn(h).
- **Training loop**: shuffled batches (``batch_size``; the last incomplete batch is dropped
  when there is more than one batch, as the authors' data loaders do), one optimiser per
  network (SGD with momentum and weight decay unless a method says otherwise), a fixed
  number of epochs — the paper's — with no model selection on any query score.  The mean
  of each loss term per epoch is kept in ``loss_history_`` and stored with the cell, and
  progress is reported once per epoch (:meth:`Hasher.report_progress`).  One function,
  :func:`train_epochs`, is this loop for every deep training here (the core's, kdcmh's
  student, uchm's generator); a method changes a step (:meth:`DeepHasher._step`) or an
  epoch (:meth:`DeepHasher._epoch`), never the loop.
- **No per-step waits**: the training features stay on the device for the whole fit, each
  epoch's order is copied there once, and loss terms stay on the device until the epoch
  ends (one read per epoch instead of a device synchronisation per step).
- **Device rule**: ``device="auto"`` trains on the first GPU when torch sees one, else on
  the CPU; the same code runs on both.  All randomness (initialisation, shuffling) comes
  from ``seed`` inside a forked torch RNG, so fitting never disturbs the global state.
  No mixed precision: it would change results between devices for little gain at
  these sizes.
- **Encoding** runs the trained networks in float64 on the training device.  In float32,
  matrix products of different batch shapes may take different BLAS paths, so a code bit
  whose pre-activation is within rounding of 0 could depend on the batch it was coded in;
  float64 makes each row's code a function of that row alone, to within 1e-15.  (On the
  device, not the CPU: at MIRFlickr-25K's sizes float64 coding of 20,015 pairs is about
  900 GFLOP, a minute of one CPU core but well under a second on a GPU.)

A method subclasses :class:`DeepHasher` and implements :meth:`DeepHasher._batch_loss`
(and optionally :meth:`DeepHasher._networks`, :meth:`DeepHasher._prepare`,
:meth:`DeepHasher._optimizers`, :meth:`DeepHasher._batches`, :meth:`DeepHasher._step`,
:meth:`DeepHasher._epoch`).  The harness asks a deep method about itself, never by name:
its GPU memory (:meth:`DeepHasher.gpu_memory_bytes`, counted here from its own networks), its
steps per epoch (:meth:`DeepHasher.epoch_steps`) and any set-up training before its epochs
(:attr:`Hasher.setup_epochs`, :meth:`Hasher.setup_minimum`); a method overrides what differs.
"""

from __future__ import annotations

import copy
import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cmhbench.methods.base import Hasher, PairedFeatures, resolve_device

#: Rows per forward pass when encoding (memory bound only; results do not depend on it).
ENCODE_BATCH = 4096
#: Copies of the weights a training holds: weights, gradients and two optimiser moments (Adam's;
#: SGD with momentum holds one fewer, so the estimate errs on the safe side).
WEIGHT_COPIES = 4


def mlp(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    """Linear–ReLU–Linear, the papers' text network (and our image network)."""
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_dim))


def cosine_matrix(a: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """Cosine similarities between the rows of ``a`` and of ``b`` (default ``a``)."""
    a = F.normalize(a, dim=1)
    return a @ (a if b is None else F.normalize(b, dim=1)).T


def scaled_cosine(features: torch.Tensor) -> torch.Tensor:
    """S = 2·cos − 1, the intra-modal similarity of DJSRH and JDSH (in [−3, 1]; ≥ −1 for
    non-negative features, where cos ≥ 0)."""
    return 2.0 * cosine_matrix(features) - 1.0


def relaxation(epoch: int) -> float:
    """α = √(epoch + 1): the tanh slope of epoch ``epoch`` (0-based)."""
    return math.sqrt(epoch + 1.0)


def signs(values: torch.Tensor) -> torch.Tensor:
    """±1 in the input's dtype, 0 ↦ +1: how the harness binarises codes, for the methods
    that need sign codes inside training (binary keys, unified codes, the B-update)."""
    return torch.where(values >= 0, 1.0, -1.0).to(values.dtype)


def batch_order(n: int, batch_size: int, generator: torch.Generator,
                device: torch.device | str | None = None) -> list[torch.Tensor]:
    """One epoch's shuffled batches; the incomplete last batch is dropped if others exist.

    The order is drawn on the CPU (so it is the same on every device) and copied to
    ``device`` once per epoch, not once per batch."""
    order = torch.randperm(n, generator=generator)
    if device is not None:
        order = order.to(device)
    batches = list(order.split(batch_size))
    if len(batches) > 1 and len(batches[-1]) < batch_size:
        batches.pop()
    return batches


#: What one training step returns: named loss terms, as 0-d tensors (read once per epoch,
#: so a step never waits for the device) or floats.
Terms = Mapping[str, "torch.Tensor | float"]


@contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[torch.Generator]:
    """A forked torch RNG (the CPU's and ``device``'s) seeded from ``seed``, and a CPU
    generator for batch orders: training is reproducible and leaves the caller's RNG alone."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield torch.Generator().manual_seed(seed)


class StepMean:
    """The mean of step values (0-d tensors or floats) over an epoch, summed in step order in
    float64 as reading each value when it was made would, with one device read at the end.

    It keeps a running sum, not the steps' own 0-d tensors: a small tensor kept alive from every
    step sits in the CPU heap between the steps' large temporaries, so glibc can neither reuse
    nor return that memory.  Measured on kdcmh (12,000 training pairs, one epoch): the list of
    steps held 1.4 GB of resident memory above the set-up's 0.2 GB, growing as n²."""

    def __init__(self) -> None:
        self.total: torch.Tensor | float = 0.0
        self.count = 0

    def add(self, value: torch.Tensor | float) -> None:
        if isinstance(value, torch.Tensor):
            if isinstance(self.total, torch.Tensor):
                self.total += value.detach()
            else:  # the first tensor: a float64 copy of it (never the step's own tensor)
                self.total = value.detach().to(torch.float64, copy=True) + self.total
        else:
            self.total += float(value)
        self.count += 1

    def value(self) -> float:
        return float(self.total) / self.count if self.count else 0.0


def cached_setup(cache: Any, job: Callable[..., dict[str, Any]], *args: Any,
                 progress: Callable[..., None] | None = None) -> tuple[dict[str, Any], bool]:
    """A set-up stage that is the same for every bit length (a teacher): ``job(*args, progress)``
    through the harness's ``joblib.Memory`` when there is one, and whether the result came from
    it.  ``job``'s ``train``, ``device`` and ``progress`` parameters are left out of the key (its
    data key and device kind stand for the first two)."""
    if cache is None:
        return job(*args, progress), False
    cached = cache.cache(job, ignore=["train", "device", "progress"])
    from_cache = bool(cached.check_call_in_cache(*args))
    return cached(*args, progress), from_cache


def train_epochs(epochs: int, run_epoch: Callable[[int], Iterable[Terms]],
                 report: Callable[..., None] | None = None) -> dict[str, np.ndarray]:
    """The epoch loop every deep training shares: ``run_epoch(epoch)`` performs that epoch's
    steps and yields each step's terms; the loop keeps each term's mean per epoch (over the
    steps that gave it) and calls ``report(epoch + 1, epochs, loss=...)`` once per epoch."""
    history: dict[str, list[float]] = {}
    for epoch in range(epochs):
        steps: dict[str, StepMean] = {}
        for terms in run_epoch(epoch):
            for name, value in terms.items():
                steps.setdefault(name, StepMean()).add(value)
        means = {name: mean.value() for name, mean in steps.items()}
        for name, value in means.items():
            history.setdefault(name, []).append(value)
        if report is not None:
            report(epoch + 1, epochs, **({"loss": means["loss"]} if "loss" in means else {}))
    return {name: np.asarray(values) for name, values in history.items()}


@dataclass
class TrainingRun:
    """What one fit trains with: the device, the batch-order generator, the training
    features on the device, the optimisers and training-only state (dropped after fit)."""

    device: torch.device
    generator: torch.Generator
    image: torch.Tensor
    text: torch.Tensor
    optimizers: list[torch.optim.Optimizer] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return self.image.shape[0]


class DeepHasher(Hasher):
    """Base class of deep methods.  A subclass declares (in ``param_domains``, with defaults) at
    least ``epochs``, ``batch_size`` and ``hidden``, and the optimiser settings its
    ``_optimizers`` reads (the default reads ``lr_image``, ``lr_text``, ``momentum`` and
    ``weight_decay``).  Checks that span several parameters (ugach's ``knn`` against
    ``select``) go in ``_check_params``, which ``fit`` calls before any work."""

    epochs: int
    batch_size: int
    hidden: int
    lr_image: float
    lr_text: float
    momentum: float
    weight_decay: float

    # --- hooks ------------------------------------------------------------------------------
    def _check_params(self) -> None:
        """Refuse bad hyper-parameters before any work (ValueError naming the parameter)."""

    def _prepare(self, run: TrainingRun, train: PairedFeatures) -> None:
        """Work before the first epoch (e.g. estimating constants from the training data;
        training-only objects go in ``run.state``)."""

    def _networks(self, image_dim: int, text_dim: int, n_bits: int) -> tuple[nn.Module, nn.Module]:
        """The image and text networks: the core's Linear–ReLU–Linear pair unless a method's
        authors train something else on top of the features we are given."""
        return mlp(image_dim, self.hidden, n_bits), mlp(text_dim, self.hidden, n_bits)

    def _batch_loss(self, epoch: int, rows: torch.Tensor, image: torch.Tensor,
                    text: torch.Tensor) -> tuple[torch.Tensor, Terms]:
        """Loss of one batch (rows of the training set, their features) and its named terms."""
        raise NotImplementedError

    def _optimizers(self) -> list[torch.optim.Optimizer]:
        """One SGD optimiser per network (the papers' setting)."""
        return [
            torch.optim.SGD(self.image_net_.parameters(), lr=self.lr_image, momentum=self.momentum,
                            weight_decay=self.weight_decay),
            torch.optim.SGD(self.text_net_.parameters(), lr=self.lr_text, momentum=self.momentum,
                            weight_decay=self.weight_decay),
        ]

    def _batches(self, run: TrainingRun) -> list[torch.Tensor]:
        """One epoch's batches of training rows, on the device."""
        return batch_order(run.n, self.batch_size, run.generator, run.device)

    def _step(self, epoch: int, rows: torch.Tensor, image: torch.Tensor, text: torch.Tensor,
              run: TrainingRun) -> Terms:
        """One training step on a batch: the loss, its gradient, every optimiser's update."""
        loss, terms = self._batch_loss(epoch, rows, image, text)
        for opt in run.optimizers:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        for opt in run.optimizers:
            opt.step()
        return {"loss": loss, **terms}

    def _epoch(self, epoch: int, run: TrainingRun) -> Iterator[Terms]:
        """One epoch: a step per batch, each yielding its terms."""
        for rows in self._batches(run):
            yield self._step(epoch, rows, run.image[rows], run.text[rows], run)

    # --- what the harness asks (see Hasher) -------------------------------------------------
    def gpu_memory_bytes(self, n_train: int, image_dim: int, text_dim: int, n_bits: int) -> int:
        """The training features and :data:`WEIGHT_COPIES` copies of both networks' weights.  The
        weights are counted on the networks :meth:`_networks` builds, made on torch's meta device
        (no memory, no random numbers drawn), so a method with its own networks is counted as it
        trains them.  Per-batch buffers are small at the papers' batch sizes, and a teacher or
        generator trains before the networks and is smaller; a method that keeps large
        training-only state on the device (a neighbour graph) adds it."""
        with torch.device("meta"):
            image_net, text_net = self._networks(image_dim, text_dim, n_bits)
        weights = sum(p.numel() for net in (image_net, text_net) for p in net.parameters())
        return super().gpu_memory_bytes(n_train, image_dim, text_dim, n_bits) + 4 * WEIGHT_COPIES * weights

    def epoch_steps(self, n_train: int) -> int:
        """Training steps of one epoch over ``n_train`` pairs: whole batches, at least one (the
        rule of :func:`batch_order`).  A method whose epoch keeps the last incomplete batch or
        passes over the batches more than once says so here; ``perf train`` counts with it."""
        return max(1, n_train // self.batch_size)

    # --- the loop -------------------------------------------------------------------------
    @contextmanager
    def _seeded_training(self, train: PairedFeatures) -> Iterator[TrainingRun]:
        """The device, a batch-order generator and the training features on the device (kept
        there for the whole fit), inside a forked RNG seeded from ``seed``."""
        self.device_ = resolve_device(self.device)
        device = torch.device(self.device_)
        with seeded(self.seed, device) as generator:
            yield TrainingRun(device, generator, torch.from_numpy(train.image).to(device),
                              torch.from_numpy(train.text).to(device))

    def _fit(self, train: PairedFeatures, n_bits: int) -> None:
        self._check_params()
        with self._seeded_training(train) as run:
            self.loss_history_ = self._train_networks(run, train, n_bits, self.report_progress)
        self._freeze_for_encoding()

    def _train_networks(self, run: TrainingRun, train: PairedFeatures, n_bits: int,
                        report: Callable[..., None]) -> dict[str, np.ndarray]:
        """Fresh networks, set-up, optimisers and ``epochs`` epochs of training: one student
        (a method that trains several in turn, like kdcmh's rounds, calls this per student)."""
        image_net, text_net = self._networks(train.image_dim, train.text_dim, n_bits)
        self.image_net_, self.text_net_ = image_net.to(run.device), text_net.to(run.device)
        self._prepare(run, train)
        run.optimizers = self._optimizers()
        self.image_net_.train()
        self.text_net_.train()
        return train_epochs(self.epochs, lambda epoch: self._epoch(epoch, run), report)

    def fit_report(self) -> dict[str, Any]:
        report = {
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "device": self.device_,
            "selection": "fixed number of epochs; no model selection on query scores",
        }
        if "loss" in self.loss_history_ and len(self.loss_history_["loss"]):
            report["final_loss"] = float(self.loss_history_["loss"][-1])
        return report

    def _freeze_for_encoding(self) -> None:
        self.image_net_ = self.image_net_.eval()
        self.text_net_ = self.text_net_.eval()
        self._image_net64 = copy.deepcopy(self.image_net_).to(self.device_, torch.float64).eval()
        self._text_net64 = copy.deepcopy(self.text_net_).to(self.device_, torch.float64).eval()

    # --- encoding -------------------------------------------------------------------------
    @staticmethod
    def _run(net: nn.Module, features: np.ndarray) -> np.ndarray:
        """The network's float64 outputs for ``features``, in blocks, on the network's device."""
        device = next(net.parameters()).device
        out = []
        with torch.no_grad():
            for start in range(0, features.shape[0], ENCODE_BATCH):
                block = torch.from_numpy(features[start:start + ENCODE_BATCH].astype(np.float64)).to(device)
                out.append(net(block).cpu().numpy())
        return np.concatenate(out)

    def _encode_image(self, image: np.ndarray) -> np.ndarray:
        return self._run(self._image_net64, image)

    def _encode_text(self, text: np.ndarray) -> np.ndarray:
        return self._run(self._text_net64, text)


def relaxed_codes(net: nn.Module, features: torch.Tensor, epoch: int) -> torch.Tensor:
    """B = tanh(α·h), row-normalised as the similarity losses use it."""
    return F.normalize(torch.tanh(relaxation(epoch) * net(features)), dim=1)

