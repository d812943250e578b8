"""``ugach``: Unsupervised Generative Adversarial Cross-modal Hashing.

Paper: J. Zhang, Y. Peng, M. Yuan, "Unsupervised Generative Adversarial Cross-Modal
Hashing", AAAI 2018, pp. 539–546 (arXiv 1712.00358).  Authors' code (TensorFlow 1, Python 2):
https://github.com/PKU-ICST-MIPL/UGACH_AAAI2018.  File references below are to that repository
at its last commit (98c163f): ``KNN/knn_mir_cross5.py`` (the correlation graph),
``unsuper-pretrain-mir-D-beta/train_16.py`` (pre-training), ``UGACH-mir/dis_model_nn.py``,
``UGACH-mir/gen_model_nn.py``, ``UGACH-mir/train.py`` and ``UGACH-mir/utils.py``.  Its
``train_{16,32,64,128}.py`` differ from ``train.py`` only in the bit length (and GPU id), and
the NUS-WIDE folders only in feature widths and paths, so one set of defaults serves every
dataset.  This module is a rebuild in torch on the given features.

Equations as implemented.  Over the n training pairs (x_i, y_i):

1. Correlation graph (knn_mir_cross5.py:54-87; utils.py:25-43).  N(i) = the K/2 nearest
   items to i by Euclidean distance between image features together with the K/2 nearest
   by distance between text features, K = 10 (``knn``), i itself first in both lists.  For
   an image query i the positive texts are {y_j : j ∈ N(i)} (the paired text y_i among
   them), for a text query likewise the images; every other item is a non-neighbour.
2. Two networks of the same form, the discriminator D and the generator G, each with an
   image and a text pathway (dis_model_nn.py:56-64, gen_model_nn.py:58-66):
   φ(v) = σ(W₂·tanh(W₁v + b₁) + b₂) ∈ (0, 1)^c, hidden width 8192 (``hidden``), weights
   from a normal truncated at 2σ with σ = 0.1 (``init_std``), biases 0
   (dis_model_nn.py:21-33).  d(a, b) = ‖φ(a) − φ(b)‖² between an image and a text.
3. Discriminator loss, a triplet hinge (dis_model_nn.py:86-99), for a query q, a positive p
   from N(q) and a negative n of the other modality:
   L_D = mean_batch max(0, m + d(q, p) − d(q, n)) + λ·Σ_W ½‖W‖², margin m = c/8
   (train.py:30, ``margin`` overrides), λ = 0.01 (``weight_decay``, on every weight and bias
   of both pathways, as the authors' l2 terms; applied as SGD weight decay, identical in
   gradient).  Plain SGD, lr 0.001 (train.py:28; ``lr_discriminator``), batch 1
   (train.py:26; ``batch_size``).
4. Generator: for a query q and a candidate set C (a random 1/50 of the training items,
   train.py:57-61/170-172, ``sample_ratio``), p_G(x | q) = softmax_{x∈C}(−d_G(q, x)) where
   d_G uses G's pathways (gen_model_nn.py:68-72).  Hard negatives for D are drawn from
   p_G, two per query (SELECTNUM, train.py:12; ``select``), redrawn when they fall in N(q)
   (train.py:81-86).
5. Reward and policy gradient (dis_model_nn.py:91; gen_model_nn.py:72-78; train.py:190-213):
   r = σ(max(0, m + d_D(q, p) − d_D(q, n))) for each of the two sampled negatives n paired
   with a positive p (two distinct positives drawn from N(q)), and
   L_G = −mean_k r_k·log p̃(n_k | q) + λ·Σ_W ½‖W‖², where p̃ is the softmax of −d_G(q, n_k)
   over the two sampled negatives only (the authors feed just those two to the loss; the
   log carries their +1e-20).  Plain SGD, lr 0.01 (train.py:29; ``lr_generator``), one
   query per step.
6. Schedule (train.py:250-299).  D is first pre-trained alone on triplets with uniformly
   random non-neighbour negatives (pretrain train_16.py:44-57): batch 20, lr 0.01
   (``pretrain_batch_size``, ``pretrain_lr``), ``pretrain_epochs`` passes, each pass a
   fresh triplet per query and direction.  Then 30 epochs (``epochs``), each: (a) G draws
   two negatives per query for image→text and for text→image (4n triplets); (b) D takes
   one pass over the image→text triplets, then over the text→image ones; (c) two passes
   of G (``g_epochs``, train.py:17), each over every image query and then every text query.
7. Codes (test_16.py:43-53): sgn of D's pre-sigmoid outputs, i.e. φ ≥ ½ ↦ +1; G is used in
   training only.

Defaults, all the authors' (MIRFlickr-25K and NUS-WIDE share them): K = 10, 2 negatives per
query from n/50 candidates, margin c/8, λ = 0.01, hidden 8192, initial σ 0.1, SGD with lr
0.001 (D, batch 1) and 0.01 (G, one query), 30 epochs of 1 D pass and 2 G passes;
pre-training batch 20, lr 0.01, and (ours, see below) 30 passes.  The ``quick`` preset
(tests, default tour): 2 epochs, 1 G pass, 2 pre-training passes, hidden 64, D batch 8.

Fidelity table (ours vs theirs; "=" where identical):

| item | authors (file:line) | ours |
| --- | --- | --- |
| graph | K = 10: 5 image + 5 text Euclidean neighbours, self included (knn_mir_cross5.py:7, 71-79) | = (``knn``) |
| networks | d→8192→c, tanh hidden, sigmoid out, trunc-normal σ 0.1, bias 0 (dis_model_nn.py:21-33, 56-64) | = on the given features |
| D loss | hinge, margin c/8, λ = 0.01 on all weights (train.py:27, 30; dis_model_nn.py:86-99) | = |
| reward | σ(max(0, hinge argument)) (dis_model_nn.py:91) | = |
| G loss | −mean r·log softmax over the 2 sampled negatives (gen_model_nn.py:72-78) | = |
| sampling | candidates n/50, 2 negatives per query, positives excluded for D (train.py:12-13, 57-86) | = (``max(1, n // 50)`` candidates on small sets) |
| optimisers | SGD, D 0.001, G 0.01; exponential decay declared but never stepped (dis_model_nn.py:120-126, gen_model_nn.py:80-84) | SGD, constant rates |
| batch | D 1 triplet, G 1 query (train.py:26, 165-230) | = |
| schedule | 30 epochs × (sample, 1 D pass, 2 G passes) (train.py:15-18, 250-299) | = |
| pre-training | D alone, batch 20, lr 0.01, 30 × 1000 passes with the best test-mAP checkpoint kept (pretrain train_16.py:14-25, 123-150) | 30 passes (``pretrain_epochs``), final model |
| model selection | best test mAP after each D pass (train.py:263-277) | none: the final D |

Deviations, and why:
- Feature-level protocol: both pathways read the given features (the authors' inputs are
  VGG-19 fc7 features and bag-of-words, so on MIRFlickr-25K and NUS-WIDE this is their
  setting); the graph uses the same features.
- No model selection.  The authors keep the discriminator with the best mean test mAP,
  both in pre-training and in training; we never look at query scores, so we keep the
  final D.  Their pre-training has no fixed length (up to 30,000 passes, stopped on test
  mAP), so we set ``pretrain_epochs`` = 30, the length of the adversarial stage (our
  choice, made without any score).
- Pre-training triplets are drawn afresh for every pass; the authors draw them once per
  outer epoch and reuse them for its 1,000 passes (GS_EPOCH = D_EPOCH, pretrain
  train_16.py:15-16, 127-131; the UKD teacher's pre-training draws once for all 200).
- The triplet loop of the authors starts at index 1 (train.py:116), skipping one triplet
  per pass; we use them all.
- The query order of a G pass is a fresh random permutation (the authors iterate a
  Python 2 dict, an arbitrary fixed order).
- A query whose candidate set holds only neighbours (the authors' loop would never end)
  draws its negatives from the whole candidate set; possible only on tiny training sets.
- The "log" discriminator loss of dis_model_nn.py:102-118 is never used by the authors'
  scripts and is not offered.

Memory: the training features, the graph (n × K indices), two networks of
(d_x + d_y + 2c)·hidden weights each, and O(n·s) candidate indices per pass.  With s =
n/50 these grow as n²/50: 0.2 GB at MIRFlickr's 18,015 retrieval pairs, 11 GB (joined from
blocks) at NUS-WIDE's 184,577, where a fit on the whole retrieval set refuses up front
(``check_memory``, naming the size) unless that much memory is free.  Candidates are checked
against the graph one block of queries at a time, so nothing n × s × K is held.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from cmhbench.methods.base import check_memory
from cmhbench.methods.deep import DeepHasher, TrainingRun
from cmhbench.methods.domains import Int, POSITIVE, Real, WEIGHT_DECAY, learning_rate
from cmhbench.methods.registry import register

#: Stabiliser inside the generator's log, gen_model_nn.py:72.
PROB_FLOOR = 1e-20
#: Distances per block when searching neighbours or scoring candidates (memory bound only).
BLOCK_FLOATS = 1 << 24
#: Rounds of redrawing a random non-neighbour before giving up (pre-training negatives).
REDRAWS = 64


# --- the correlation graph ----------------------------------------------------------------
@torch.no_grad()
def nearest(features: torch.Tensor, k: int, block_floats: int = BLOCK_FLOATS) -> torch.Tensor:
    """Each item's k nearest items by Euclidean distance (n × k), the item itself first."""
    n = features.shape[0]
    k = min(k, n)
    rows = max(1, block_floats // n)
    squares = (features * features).sum(dim=1)
    out = []
    for start in range(0, n, rows):
        block = features[start:start + rows]
        dist = squares[start:start + rows, None] - 2.0 * block @ features.T + squares[None, :]
        local = torch.arange(block.shape[0], device=features.device)
        dist[local, start + local] = -math.inf  # the item itself ranks first, whatever the ties
        out.append(dist.topk(k, dim=1, largest=False).indices)
    return torch.cat(out)


def cross_knn(image: torch.Tensor, text: torch.Tensor, k: int) -> torch.Tensor:
    """N(i): the k/2 image-nearest then the k/2 text-nearest items (n × k, may repeat)."""
    return torch.cat([nearest(image, k // 2), nearest(text, k // 2)], dim=1)


def is_neighbour(candidates: torch.Tensor, knn: torch.Tensor) -> torch.Tensor:
    """candidates (n × s) → bool (n × s): whether each candidate is in its row's N(i)."""
    return (candidates[:, :, None] == knn[:, None, :]).any(dim=2)


def pick_positives(knn: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` distinct members of each N(i), uniformly (the authors shuffle the
    neighbour list and take its head).  N(i) is read as a set: repeats count once."""
    n, k = knn.shape
    repeat = (knn[:, :, None] == knn[:, None, :]).tril(diagonal=-1).any(dim=2)
    keys = torch.rand(n, k, generator=generator).to(knn.device)
    keys = keys.masked_fill(repeat, math.inf)
    return knn.gather(1, keys.argsort(dim=1)[:, :count])


def random_non_neighbours(knn: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """One uniformly random item outside N(i) per row (pre-training negatives)."""
    rows = knn.shape[0]
    out = torch.randint(n, (rows,), generator=generator).to(knn.device)
    for _ in range(REDRAWS):
        bad = is_neighbour(out[:, None], knn)[:, 0]
        redraw = torch.randint(n, (rows,), generator=generator).to(knn.device)
        out = torch.where(bad, redraw, out)
    return out


def candidate_sets(n: int, size: int, generator: torch.Generator, block_floats: int = BLOCK_FLOATS) -> torch.Tensor:
    """Per query, ``size`` distinct random items (n × size): the authors' shuffled head."""
    rows = max(1, block_floats // n)
    return torch.cat([torch.rand(min(rows, n - start), n, generator=generator).topk(size, dim=1).indices
                      for start in range(0, n, rows)])


# --- networks and losses ---------------------------------------------------------------------
def pathway(in_dim: int, hidden: int, out_dim: int, init_std: float) -> nn.Sequential:
    """Linear–tanh–Linear (outputs before the sigmoid), truncated-normal weights, zero biases."""
    net = nn.Sequential(nn.Linear(in_dim, hidden), nn.Tanh(), nn.Linear(hidden, out_dim))
    for layer in (net[0], net[2]):
        nn.init.trunc_normal_(layer.weight, mean=0.0, std=init_std, a=-2 * init_std, b=2 * init_std)
        nn.init.zeros_(layer.bias)
    return net


def distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """‖a − b‖² per row (rows broadcast)."""
    return (a - b).pow(2).sum(dim=-1)


def hinge(query: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, margin: float) -> torch.Tensor:
    """max(0, m + d(q, p) − d(q, n)) per triplet, on sigmoid outputs."""
    return torch.clamp(margin + distance(query, positive) - distance(query, negative), min=0.0)


def discriminator_loss(query, positive, negative, margin: float) -> torch.Tensor:
    """L_D without the weight decay (applied by the optimiser): the batch's mean hinge."""
    return hinge(query, positive, negative, margin).mean()


def reward(query, positive, negative, margin: float) -> torch.Tensor:
    """r = σ(max(0, m + d(q, p) − d(q, n))): the discriminator's reward per sampled negative."""
    return torch.sigmoid(hinge(query, positive, negative, margin))


def generator_loss(query: torch.Tensor, negatives: torch.Tensor, rewards: torch.Tensor) -> torch.Tensor:
    """L_G = −mean_k r_k·log(softmax_k(−d(q, n_k)) + 1e-20), the softmax over the sampled
    negatives only (``query`` 1 × c, ``negatives`` s × c, sigmoid outputs of G)."""
    prob = torch.softmax(-distance(query, negatives), dim=0) + PROB_FLOOR
    return -(torch.log(prob) * rewards).mean()


@register(
    name="ugach",
    title="Unsupervised Generative Adversarial Cross-Modal Hashing",
    authors="Zhang, Peng & Yuan",
    venue="AAAI",
    year=2018,
    kind="deep",
    fidelity="paper",
    deterministic=False,
    memory="O(n·(d_x+d_y)) features + O(n·K) graph + O(n²/sample_ratio) candidates + 2 networks of "
           "(d_x+d_y+2c)·hidden weights",
    presets={"quick": {"epochs": 2, "g_epochs": 1, "pretrain_epochs": 2, "hidden": 64, "batch_size": 8}},
    url="https://github.com/PKU-ICST-MIPL/UGACH_AAAI2018",
    # the correlation graph: 1 where j is among i's K image-or-text neighbours, else 0
    prior_params=("knn",),
    prior=lambda model, train: torch.zeros(train.n, train.n).scatter_(
        1, cross_knn(torch.from_numpy(train.image), torch.from_numpy(train.text), model.knn), 1.0),
)
class UGACH(DeepHasher):
    param_domains = {
        "knn": Int(2, 1000, search=(4, 40), default=10),
        "select": Int(1, 100, default=2),
        "sample_ratio": Int(1, 10_000, search=(10, 200), log=True, default=50),
        "margin": Real(0.0, low_open=True, optional=True, default=None),
        "epochs": Int(1, 10_000, default=30),
        "g_epochs": Int(0, 100, default=2),
        "pretrain_epochs": Int(0, 10_000, default=30),
        "batch_size": Int(1, 100_000, default=1),
        "pretrain_batch_size": Int(1, 100_000, default=20),
        "hidden": Int(1, 65_536, default=8192),
        "init_std": POSITIVE.with_default(0.1),
        "lr_discriminator": learning_rate(1e-4, 1e-1).with_default(0.001),
        "lr_generator": learning_rate(1e-4, 1e-1).with_default(0.01),
        "pretrain_lr": learning_rate(1e-4, 1e-1).with_default(0.01),
        "weight_decay": WEIGHT_DECAY.with_default(0.01),
    }

    def _check_params(self) -> None:
        if self.knn % 2 or self.knn < 2 * self.select:
            raise ValueError(f"ugach.knn must be even (half image, half text neighbours) and at least "
                             f"2·select = {2 * self.select}, got {self.knn}")

    # --- pieces of one epoch ----------------------------------------------------------------
    def _sgd(self, nets: tuple[nn.Module, nn.Module], lr: float) -> torch.optim.Optimizer:
        """Plain SGD over both pathways; the weight decay is the authors' λ·Σ½‖W‖² term."""
        params = [p for net in nets for p in net.parameters()]
        return torch.optim.SGD(params, lr=lr, weight_decay=self.weight_decay)

    @staticmethod
    def _phi(net: nn.Module, features: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(net(features))

    def _pathways(self, image_query: bool, generator: bool, run: TrainingRun):
        """(query net, query features, item net, item features) for one direction."""
        nets = run.state["gen"] if generator else (self.image_net_, self.text_net_)
        if image_query:
            return nets[0], run.image, nets[1], run.text
        return nets[1], run.text, nets[0], run.image

    def _d_steps(self, triplets: torch.Tensor, image_query: bool, batch_size: int, opt: torch.optim.Optimizer,
                 run: TrainingRun) -> torch.Tensor:
        """One pass of D over (query, positive, negative) index triplets (3 × T, in order); returns
        the mean loss of its steps (a device tensor: no read)."""
        q_net, q_feat, x_net, x_feat = self._pathways(image_query, False, run)
        total = torch.zeros((), device=run.device)
        starts = range(0, triplets.shape[1], batch_size)
        for start in starts:
            q, p, ng = triplets[:, start:start + batch_size]
            items = self._phi(x_net, x_feat[torch.cat([p, ng])])  # one weight read for both
            loss = discriminator_loss(self._phi(q_net, q_feat[q]), items[:p.numel()], items[p.numel():], self.margin_)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach()
        return total / len(starts)

    def _shuffled(self, q: torch.Tensor, p: torch.Tensor, ng: torch.Tensor, run: TrainingRun) -> torch.Tensor:
        order = torch.randperm(q.numel(), generator=run.generator).to(run.device)
        return torch.stack([q.reshape(-1), p.reshape(-1), ng.reshape(-1)])[:, order]

    def _pretrain_triplets(self, run: TrainingRun) -> torch.Tensor:
        """One triplet per query: a random neighbour and a random non-neighbour."""
        knn = run.state["knn"]
        pos = pick_positives(knn, 1, run.generator)[:, 0]
        return self._shuffled(torch.arange(run.n, device=run.device), pos,
                              random_non_neighbours(knn, run.n, run.generator), run)

    @torch.no_grad()
    def _generated_triplets(self, image_query: bool, run: TrainingRun) -> torch.Tensor:
        """G's hard negatives for D: ``select`` triplets per query, shuffled (train.py:50-112)."""
        q_net, q_feat, x_net, x_feat = self._pathways(image_query, True, run)
        q_out, x_out = self._phi(q_net, q_feat), self._phi(x_net, x_feat)
        knn, n = run.state["knn"], run.n
        cand = candidate_sets(n, self.candidates_, run.generator).to(run.device)
        rows = max(1, BLOCK_FLOATS // (self.candidates_ * q_out.shape[1]))
        negatives = []
        for start in range(0, n, rows):  # per block of queries: nothing n × s × K is held
            c = cand[start:start + rows]
            allowed = ~is_neighbour(c, knn[start:start + rows])
            allowed |= ~allowed.any(dim=1, keepdim=True)  # only neighbours among the candidates: any of them
            scores = -distance(q_out[start:start + rows, None, :], x_out[c])
            scores = scores.masked_fill(~allowed, -math.inf)
            picks = torch.multinomial(torch.softmax(scores, dim=1), self.select, replacement=True)
            negatives.append(c.gather(1, picks))
        positives = pick_positives(knn, self.select, run.generator)
        queries = torch.arange(n, device=run.device)[:, None].expand(n, self.select)
        return self._shuffled(queries, positives, torch.cat(negatives), run)

    def _g_steps(self, image_query: bool, run: TrainingRun) -> dict[str, torch.Tensor]:
        """One pass of G, one query per step (train.py:165-230); returns the pass's mean loss
        and mean reward (device tensors)."""
        gq_net, q_feat, gx_net, x_feat = self._pathways(image_query, True, run)
        dq_net, _, dx_net, _ = self._pathways(image_query, False, run)
        knn, n, opt = run.state["knn"], run.n, run.state["g_opt"]
        order = torch.randperm(n, generator=run.generator).to(run.device)
        cand = candidate_sets(n, self.candidates_, run.generator).to(run.device)  # not reordered: one n × s copy less
        positives = pick_positives(knn, self.select, run.generator)[order]
        totals = torch.zeros(2, device=run.device)
        for t in range(n):
            q = order[t:t + 1]
            row = cand[q][0]  # query q's candidates (indexing by a tensor: no read of q on a GPU)
            # one forward of G over the query and its candidates serves the sampling (detached) and
            # the loss (the sampled rows); a weight read per pathway is most of a step's time
            g_query, g_cand = self._phi(gq_net, q_feat[q]), self._phi(gx_net, x_feat[row])
            with torch.no_grad():
                scores = -distance(g_query, g_cand)
                picks = torch.multinomial(torch.softmax(scores, dim=0), self.select, replacement=True)
                d_items = self._phi(dx_net, x_feat[torch.cat([positives[t], row[picks]])])
                rewards = reward(self._phi(dq_net, q_feat[q]), d_items[:self.select], d_items[self.select:],
                                 self.margin_)
            loss = generator_loss(g_query, g_cand[picks], rewards)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            totals[0] += loss.detach()
            totals[1] += rewards.mean()
        totals /= n
        return {"g_loss": totals[0], "reward": totals[1]}

    # --- the core's loop: pre-training, then UGACH's epochs ---------------------------------------
    def _networks(self, image_dim, text_dim, n_bits):
        return (pathway(image_dim, self.hidden, n_bits, self.init_std),
                pathway(text_dim, self.hidden, n_bits, self.init_std))

    def _candidate_bytes(self, n: int) -> int:
        """A pass's candidate sets: n × s int64 indices (s = n/sample_ratio, so n²/50 by default),
        twice while their blocks are joined, plus one block of random keys."""
        return 16 * n * max(1, n // self.sample_ratio) + 4 * BLOCK_FLOATS

    def gpu_memory_bytes(self, n_train, image_dim, text_dim, n_bits):
        """The core's estimate plus what stays on the device for a pass: the candidate sets
        (n²/sample_ratio indices) and the neighbour graph (n × K indices)."""
        return (super().gpu_memory_bytes(n_train, image_dim, text_dim, n_bits) + self._candidate_bytes(n_train)
                + 8 * n_train * self.knn)

    def _prepare(self, run, train):
        self.margin_ = float(self.margin) if self.margin is not None else self.n_bits_ / 8.0
        self.candidates_ = max(1, run.n // self.sample_ratio)
        # the one buffer that grows as n²: refuse, naming its size, before any work
        check_memory(self._candidate_bytes(run.n), f"ugach's candidate sets ({run.n:,} × {self.candidates_:,} "
                                                   "indices per pass)")
        gen = tuple(net.to(run.device).train() for net in self._networks(train.image_dim, train.text_dim,
                                                                         self.n_bits_))
        run.state.update(knn=cross_knn(run.image, run.text, self.knn), gen=gen,
                         d_opt=self._sgd((self.image_net_, self.text_net_), self.lr_discriminator),
                         g_opt=self._sgd(gen, self.lr_generator))
        pre_opt = self._sgd((self.image_net_, self.text_net_), self.pretrain_lr)
        for done in range(1, self.pretrain_epochs + 1):  # D alone on random non-neighbours
            losses = [self._d_steps(self._pretrain_triplets(run), image_query, self.pretrain_batch_size, pre_opt, run)
                      for image_query in (True, False)]
            self.report_progress(done, self.pretrain_epochs, "pre-training pass",
                                 pretrain_loss=float(sum(losses)) / len(losses))

    def _optimizers(self):
        return []  # D's and G's optimisers live in the run's state (made in _prepare)

    def _epoch(self, epoch, run):
        i2t, t2i = self._generated_triplets(True, run), self._generated_triplets(False, run)
        # One set of terms per pass, not per step: each pass's mean is accumulated in place on the
        # device.  (Keeping a 0-d tensor per step, 12n per epoch at batch 1, fragments the CPU heap
        # between the steps' 3 MB temporaries: measured 3 MB of resident memory lost per step.)
        # The two D passes have equal step counts, so the epoch's mean "loss" is the step mean.
        for image_query, name in ((True, "loss_i2t"), (False, "loss_t2i")):
            loss = self._d_steps(i2t if image_query else t2i, image_query, self.batch_size, run.state["d_opt"], run)
            yield {"loss": loss, name: loss}
        for _ in range(self.g_epochs):
            yield self._g_steps(True, run)
            yield self._g_steps(False, run)

    setup_epochs = ("pretrain_epochs",)  # D's pre-training runs before the first adversarial epoch

    def fit_report(self) -> dict[str, Any]:
        return {**super().fit_report(), "knn": self.knn, "margin": self.margin_, "candidates": self.candidates_,
                "pretrain_epochs": self.pretrain_epochs}
