"""``python -m cmhbench.tools.perf train``: deep training throughput, ours against an authors'-style loop.

For each deep method, at the sizes of a public dataset (synthetic features of that shape,
:data:`cmhbench.datasets.synthetic.SHAPES`; no files needed) and on each device, it times
training steps of the method's paper settings (batch size, widths, optimiser) two ways,
in the same process:

- **ours**: the method's own ``fit``: features on the device for the whole fit, each
  epoch's order copied once, loss terms read once per epoch;
- **reference**: the same method's step fed the way the authors' scripts train — a
  ``DataLoader`` over CPU tensors (shuffled, last incomplete batch dropped) whose batches
  are copied to the device one by one, the similarity target built per batch (as both
  do), and every loss term read back (``.item()``) after every step.

Timing: each fit runs one untimed warm-up epoch and ``--epochs`` timed epochs over a
training set of about ``--rows`` pairs (whole batches, at least one); the clock is read
at the progress report that ends each epoch (after the epoch's device work is read back,
so asynchronous GPU work is included).  A step is one batch of the method's epoch
(kdcmh's epoch passes over the batches once per network, so it has twice as many).  The
seconds per epoch and per paper-preset cell at full size are extrapolated from the
measured time per step (the method's steps per epoch at the shape's training-set size,
:meth:`~cmhbench.methods.deep.DeepHasher.epoch_steps`, times its paper epochs); set-up work
before the first epoch (kdcmh's teacher, uchm's generator, dgcpn's graph) is not timed and
is shrunk to what each method's :meth:`~cmhbench.methods.base.Hasher.setup_minimum` says.
"""

from __future__ import annotations

import argparse
import os
import time
import types
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from cmhbench.datasets.synthetic import SHAPES, generate, sized_config


@dataclass
class Timing:
    """Wall-clock and CPU seconds per step of one way of training."""

    step_s: float
    cpu_step_s: float
    steps: int


def deep_methods() -> list[str]:
    """Every registered deep method, built-in or plugin, oldest paper first: asked of the registry
    (``kind == "deep"``), so a new deep method is timed without an edit here."""
    from cmhbench.methods import registry
    from cmhbench.methods.catalog import ordered

    return [name for name in ordered() if registry.get(name).info.kind == "deep"]


def chosen_methods(text: str | None) -> list[str]:
    """``--methods a,b`` as a list; every deep method without it."""
    return [m.strip() for m in text.split(",") if m.strip()] if text else deep_methods()


def reference_epoch(model: Any, epoch: int, run: Any) -> Iterator[dict[str, float]]:
    """The authors' way: a DataLoader of CPU tensors, each batch copied to the device, every
    term read after every step.  The step itself is the method's own."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from cmhbench.methods.deep import signs

    cpu_image, cpu_text = run.state["cpu_features"]
    loader_rng = run.state.setdefault("loader_rng", torch.Generator().manual_seed(model.seed))
    rows_all = torch.arange(cpu_image.shape[0])

    def loader(*tensors: torch.Tensor) -> DataLoader:
        return DataLoader(TensorDataset(rows_all, *tensors), batch_size=model.batch_size, shuffle=True,
                          drop_last=True, generator=loader_rng)

    if hasattr(model, "_student_step"):  # kdcmh: DCMH's alternation, one loader per network
        for opt, rates in zip(run.optimizers, run.state["schedule"]):
            for group in opt.param_groups:
                group["lr"] = float(rates[epoch])
        for modality, features in (("image", cpu_image), ("text", cpu_text)):
            for rows, x in loader(features):
                terms = model._student_step(modality, epoch, rows.to(run.device), x.to(run.device), run)
                yield {name: _read(value) for name, value in terms.items()}
        run.state["B"] = signs(run.state["F"] + run.state["G"])
        return
    for rows, x, y in loader(cpu_image, cpu_text):
        terms = model._step(epoch, rows.to(run.device), x.to(run.device), y.to(run.device), run)
        yield {name: _read(value) for name, value in terms.items()}


def _read(value: Any) -> float:
    """``.item()``, as the authors' scripts read each loss for their logs."""
    return value.item() if hasattr(value, "item") else float(value)


def steps_for(method: str, shape: str, rows: int) -> int:
    """Batches per epoch for about ``rows`` training pairs (at least one batch)."""
    from cmhbench.methods import create

    return max(1, round(rows / create(method, dataset=shape, device="cpu").batch_size))


def time_fit(method: str, shape: str, device: str, steps: int, epochs: int, bits: int, reference: bool,
             seed: int = 0) -> Timing:
    """Fit the method on ``steps`` batches of shape-sized features, one warm-up epoch plus
    ``epochs`` timed ones; seconds per step from the progress reports."""
    import torch

    from cmhbench.methods import create
    from cmhbench.methods.registry import get

    batch = create(method, dataset=shape, device="cpu").batch_size
    n_train = steps * batch
    config = sized_config(f"shape={shape}+n_items={n_train + 10}+n_query=10+n_train={n_train}")
    data = generate(config)
    train = data.paired(np.arange(n_train))
    cls = get(method)
    params = {**cls.setup_minimum(), "epochs": epochs + 1}  # the method says what shrinks its set-up
    model = create(cls, dataset=shape, params=params, seed=seed, device=device)
    if reference:
        cpu = (torch.from_numpy(train.image), torch.from_numpy(train.text))
        prepare = model._prepare

        def keep_cpu_features(self: Any, run: Any, tr: Any) -> None:
            prepare(run, tr)
            run.state["cpu_features"] = cpu

        model._prepare = types.MethodType(keep_cpu_features, model)
        model._epoch = types.MethodType(reference_epoch, model)
    stamps: list[tuple[float, float]] = []
    model.fit(train, bits, progress=lambda _: stamps.append((time.perf_counter(), time.process_time())))
    timed_steps = epochs * model.epoch_steps(n_train)
    return Timing((stamps[-1][0] - stamps[0][0]) / timed_steps, (stamps[-1][1] - stamps[0][1]) / timed_steps,
                  timed_steps)


def devices_to_time(requested: str) -> list[str]:
    """``auto``: the CPU, and the GPU where torch sees one."""
    if requested != "auto":
        return [d.strip() for d in requested.split(",") if d.strip()]
    import torch

    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


def paper_epochs(method: str, shape: str) -> int:
    from cmhbench.methods.registry import resolve_params

    return int(resolve_params(method, dataset=shape)["epochs"])


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = lambda cells: "| " + " | ".join(c.rjust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def bench_train(args: argparse.Namespace) -> int:
    import torch

    from cmhbench.methods import create

    methods = chosen_methods(args.methods)
    shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    for name in shapes:
        if name not in SHAPES:
            raise SystemExit(f"cmhbench perf train: unknown shape {name!r} (known: {', '.join(SHAPES)})")
    devices = devices_to_time(args.device)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(f"cmhbench perf train: {', '.join(methods)} at {', '.join(shapes)} sizes on {', '.join(devices)}; "
          f"epochs of about {args.rows} training pairs (at least one batch), 1 warm-up + {args.epochs} timed "
          f"epoch(s), {args.bits} bits, "
          f"torch {torch.__version__}, {torch.get_num_threads()} CPU thread(s)")
    if "cuda" in devices:
        print(f"GPU: {torch.cuda.get_device_name(0)}")
    if load:
        print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs "
              "(other processes on the machine slow the CPU timings)")
    rows = []
    failures = 0
    for shape in shapes:
        full_train = SHAPES[shape]["n_train"]
        for method in methods:
            for device in devices:
                cells: dict[str, Timing | None] = {}
                cpu0 = time.process_time()
                steps = steps_for(method, shape, args.rows)
                for way in ("ours", "reference") if args.reference else ("ours",):
                    try:
                        cells[way] = time_fit(method, shape, device, steps, args.epochs, args.bits,
                                              reference=way == "reference")
                    except Exception as exc:  # one failing cell must not lose the table
                        cells[way] = None
                        failures += 1
                        print(f"  {method} {shape} {device} {way}: failed: {type(exc).__name__}: {exc}", flush=True)
                ours, ref = cells.get("ours"), cells.get("reference")
                model = create(method, dataset=shape, device="cpu")
                batch = model.batch_size
                per_epoch = model.epoch_steps(full_train)
                epochs = paper_epochs(method, shape)
                fmt = lambda t, f: "—" if t is None else f(t)  # noqa: E731
                # on the CPU, CPU seconds (what the step costs, whatever else runs on the machine);
                # on a GPU, wall seconds (the CPU mostly waits there)
                cost = (lambda t: t.cpu_step_s) if device == "cpu" else (lambda t: t.step_s)  # noqa: E731
                rows.append([method, shape, device, str(batch), str(model.epoch_steps(steps * batch)),
                             fmt(ours, lambda t: f"{t.step_s * 1000:.1f}"),
                             fmt(ours, lambda t: f"{t.cpu_step_s * 1000:.1f}"),
                             fmt(ours, lambda t: f"{cost(t) * per_epoch:.1f}"),
                             fmt(ours, lambda t: _duration(cost(t) * per_epoch * epochs)) + f" ({epochs} ep)",
                             fmt(ref, lambda t: f"{t.step_s * 1000:.1f}"),
                             fmt(ref, lambda t: f"{t.cpu_step_s * 1000:.1f}"),
                             "—" if ours is None or ref is None else f"{cost(ref) / cost(ours):.2f}x"])
                print(f"  {method} {shape} {device}: ours {fmt(ours, lambda t: f'{cost(t) * 1000:.1f} ms')}/step, "
                      f"reference {fmt(ref, lambda t: f'{cost(t) * 1000:.1f} ms')}/step "
                      f"({time.process_time() - cpu0:.0f} CPU s)", flush=True)
    print(_table(rows, ["method", "shape", "device", "batch", "steps/epoch", "ms/step", "CPU ms/step",
                        "s/epoch (full)", "paper cell (est.)", "ref ms/step", "ref CPU ms/step", "ref ÷ ours"]))
    print("ms/step: wall-clock per batch of the method's own fit; CPU ms/step: processor time of the process per "
          "batch; s/epoch (full): per-step cost (CPU time on the CPU, wall time on a GPU) × the batches of the "
          "shape's training set; paper cell (est.): s/epoch × the paper's epochs (set-up such as a teacher not "
          "included); ref: the authors'-style DataLoader loop; ref ÷ ours: its per-step cost over ours")
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    if load:
        print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return 1 if failures else 0


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def add_parser(sub: Any) -> None:
    """The ``train`` subcommand of ``python -m cmhbench.tools.perf``."""
    tr = sub.add_parser("train", help="time deep training steps, ours against an authors'-style DataLoader loop")
    tr.add_argument("--methods", help="comma-separated deep methods (default: every registered deep method)")
    tr.add_argument("--shapes", default="wikipedia,mirflickr25k",
                    help=f"dataset shapes of the synthetic features (default wikipedia,mirflickr25k; "
                         f"known: {', '.join(SHAPES)})")
    tr.add_argument("--device", default="auto", help="auto (the CPU, and the GPU where present), or a list: cpu,cuda")
    tr.add_argument("--rows", type=int, default=128,
                    help="training pairs per timed epoch, rounded to whole batches, at least one (default 128)")
    tr.add_argument("--epochs", type=int, default=1, help="timed epochs after one warm-up epoch (default 1)")
    tr.add_argument("--bits", type=int, default=64, help="code length (default 64)")
    tr.add_argument("--no-reference", dest="reference", action="store_false",
                    help="time only our loop (no authors'-style reference)")


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    for name in ("rows", "epochs", "bits"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be positive")
    return bench_train(args)


__all__ = ["add_parser", "run", "time_fit", "reference_epoch", "deep_methods"]
