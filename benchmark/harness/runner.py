"""One cell, end to end: load, split, fit, encode, evaluate, record, store.

:func:`run_and_store` is the unit every executor ships to a worker (the calling
process, a joblib worker, a Dask worker): it takes plain picklable inputs, writes the
cell's folder itself, and returns a short summary, so a finished cell is on disk even
if the process that scheduled it dies.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import sys
import threading
import time
import traceback
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cmhbench import store
from cmhbench.harness import gpu_slots
from cmhbench.datasets import Dataset, DatasetSource, Split
from cmhbench.datasets.features import preprocess
from cmhbench.datasets.real import data_files
from cmhbench.datasets.validation import split_for_role
from cmhbench.evaluation import METRIC_DEFINITIONS, RELEVANCE, TIE_RULE
from cmhbench.conventions import DEFAULT_METRICS, DIRECTIONS
from cmhbench.errors import UserError
from cmhbench.evaluation.scoring import score_cell
from cmhbench.methods import registry
from cmhbench.methods.base import Progress
from cmhbench.harness.provenance import PeakMemory, environment
from cmhbench.schema import DEFAULT_FEATURES, Cell, Record, canonical_json

if TYPE_CHECKING:
    from cmhbench.harness.config import RunSettings


@dataclass(frozen=True)
class RunContext:
    """Per-run settings shared by every cell; none of them changes a cell's result."""

    out: Path
    cache_dir: Path | None = None
    device: str = "auto"
    threads: int | None = 1
    timeout: float | None = None
    force: bool = False
    metrics: tuple[str, ...] = DEFAULT_METRICS
    cells_per_gpu: int = 1
    argv: tuple[str, ...] = ()
    config: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: RunSettings, **given: Any) -> RunContext:
        """The context of a run: each field that :class:`~cmhbench.config.RunSettings` has too
        (a run option declared there reaches the cells by adding its field here), plus what
        only the command knows (``argv``, ``force``)."""
        shared = {f.name: getattr(settings, f.name) for f in fields(cls) if hasattr(settings, f.name)}
        shared["metrics"] = tuple(shared["metrics"])
        return cls(**{**shared, **given})


@dataclass(frozen=True)
class CellOutcome:
    key: str
    label: str
    status: str
    error: str | None = None


class CellTimeout(Exception):
    """A cell ran past ``--timeout``."""


log = logging.getLogger(__name__)
_loaded: dict[str, Dataset] = {}
_preprocessed: dict[str, Dataset] = {}
_warned: set[str] = set()


def load_dataset(source: DatasetSource) -> Dataset:
    """Load a dataset once per process (cells of the same dataset reuse it)."""
    ident = canonical_json(source.identity())
    if ident not in _loaded:
        _loaded.clear()  # keep one dataset in memory: grids iterate datasets in the outer loop
        _loaded[ident] = source.load()
    return _loaded[ident]


def prepared_features(dataset: Dataset, source: DatasetSource, cell: Cell, split: Split) -> Dataset:
    """The dataset under the cell's feature preprocessing, statistics from its training rows;
    kept once per process, keyed by dataset, protocol, seed and preprocessing, so the cells
    of one split (bit lengths, methods) reuse it."""
    if cell.features == DEFAULT_FEATURES:
        return dataset
    key = canonical_json([source.identity(), cell.protocol, cell.seed, cell.features, split.digest()])
    if key not in _preprocessed:
        _preprocessed.clear()  # one at a time, like the loaded dataset
        _preprocessed[key] = preprocess(dataset, split.train, cell.features)
    return _preprocessed[key]


def utc_now() -> str:
    """The current UTC time as ISO 8601 (seconds): how records stamp events."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _pack(codes: np.ndarray) -> np.ndarray:
    return np.packbits(codes > 0, axis=1)


CODE_ARRAYS = tuple(f"{d}_{role}" for d in DIRECTIONS for role in ("query", "database"))


def code_statistics(arrays: dict[str, np.ndarray], n_bits: int) -> dict[str, dict[str, int]]:
    """Distinct codes and constant bits of each stored code array.  A collapsed model (every
    item one code, as deep methods can give on badly scaled features) scores exactly the
    chance level; these two numbers say so without a label in sight."""
    out = {}
    for name in CODE_ARRAYS:
        packed = arrays[name]
        bits = np.unpackbits(packed, axis=1)[:, :n_bits]
        constant = int((bits.min(axis=0) == bits.max(axis=0)).sum()) if len(bits) else n_bits
        out[name] = {"distinct": int(len(np.unique(packed, axis=0))), "constant_bits": constant}
    return out


def _limit_threads(threads: int | None) -> AbstractContextManager:
    """Set BLAS/OpenMP and torch thread counts for the cell (None leaves them alone)."""
    if threads is None:
        return nullcontext()
    from threadpoolctl import threadpool_limits

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    return threadpool_limits(limits=threads)


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        log.warning(message)


def cell_device(requested: str, deep: bool) -> tuple[str, str | None]:
    """The device a cell runs on, and a warning when it is not the one asked for.

    Shallow methods run on the CPU.  ``auto`` takes a GPU when torch sees one (``cuda``:
    which one is settled by the GPU slot the cell gets, :mod:`cmhbench.gpu_slots`).  A GPU
    asked for where there is none falls back to the CPU with a warning (and the record
    says so).
    """
    if not deep or requested == "cpu":
        return "cpu", None
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        if requested == "auto":
            return "cpu", None
        return "cpu", f"device {requested} was asked for but torch sees no GPU; the cell ran on the CPU"
    if requested.startswith("cuda:"):
        index = int(requested.split(":", 1)[1])
        if index >= count:
            return "cpu", f"device {requested} does not exist ({count} GPU(s)); the cell ran on the CPU"
        return requested, None
    return "cuda", None


def _slot_for(device: str, cell: Cell, train_rows: int, dataset: Dataset, ctx: RunContext) -> AbstractContextManager:
    """A GPU slot for a deep cell (``device`` is ``cuda`` or ``cuda:K``), with room for it."""
    import torch

    gpus = [int(device.split(":", 1)[1])] if ":" in device else list(range(torch.cuda.device_count()))
    method = registry.get(cell.base)(**cell.params)  # asked for its memory only; the fit gets its own
    need = gpu_slots.estimate_bytes(method, train_rows, dataset.image.shape[1], dataset.text.shape[1], cell.bits)
    return gpu_slots.gpu_slot(gpus, ctx.cells_per_gpu, need)


def _inside_import(frame) -> bool:
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


@contextmanager
def time_limit(seconds: float | None):
    """Raise CellTimeout in this cell after ``seconds`` (POSIX timers, main thread only:
    serial runs and joblib/loky workers; a thread-based worker runs without a limit).

    The alarm waits for a running ``import`` to finish: raising inside one leaves a
    half-initialised package in ``sys.modules`` (torch's first optimizer imports sympy),
    and every later cell in the process would then fail."""
    usable = seconds and hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def expire(signum, frame):
        if _inside_import(frame):  # an import cut short leaves half-built modules for every later cell
            signal.setitimer(signal.ITIMER_REAL, 0.05)
            return
        raise CellTimeout(f"the cell ran longer than --timeout {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def base_record(cell: Cell, ctx: RunContext) -> Record:
    """The part of a record known before the cell runs (status ``failed`` until it succeeds)."""
    record = Record.start(
        cell,
        evaluation={"relevance": RELEVANCE, "tie_rule": TIE_RULE, "metrics": METRIC_DEFINITIONS},
        environment=environment(),
        reproduce={"command": cell.command(), "argv": list(ctx.argv), "config": ctx.config},
        started_at=utc_now(),
    )
    record.param_sources = param_sources(cell) or None
    return record


def param_sources(cell: Cell) -> dict[str, dict[str, str]]:
    """Where the cell's resolved values came from: the values its method registered with a
    provenance (:func:`cmhbench.methods.registry.param_sources`), and a tuned variant's searched
    values, which ``cmhbench tune`` chose on a validation split.  Leaderboards mark a row whose
    cells hold any ``validation`` value."""
    try:
        sources = registry.param_sources(cell.base, cell.dataset_name, cell.params)
    except UserError:  # an unknown method: its cell fails with that error, without provenance
        sources = {}
    for name in (cell.tuned or {}).get("searched", []):
        if name in cell.params:
            sources[name] = {"from": "cmhbench tune", "provenance": "validation"}
    return sources


def failed_record(cell: Cell, ctx: RunContext, error: str) -> Record:
    """A record for a cell that failed outside the method (e.g. its worker process died)."""
    record = base_record(cell, ctx)
    record.error, record.finished_at = error, utc_now()
    return record


def compute_cell(cell: Cell, source: DatasetSource, ctx: RunContext) -> tuple[Record, dict[str, np.ndarray] | None]:
    """Compute one cell; never raises for a method's failure (it is recorded instead)."""
    record = base_record(cell, ctx)
    arrays = None
    start = time.perf_counter()
    try:
        cls = registry.get(cell.base)
        info = cls.info
        record.method_info = {"title": info.title, "citation": info.citation, "kind": info.kind,
                              "fidelity": info.fidelity, "pair_encoder": info.pair_encoder}
        record.device, warning = cell_device(ctx.device, info.kind == "deep")
        if warning:
            record.warnings = [warning]
            _warn_once(warning)
        if cell.database_coding == "unified" and not info.pair_encoder:
            record.status = "not-applicable"
            record.error = f"{cell.base} has no pair encoder, which unified database coding needs"
            return record, None
        with _limit_threads(ctx.threads), time_limit(ctx.timeout):
            arrays = _compute(cell, cls, source, ctx, record)
    except (Exception, SystemExit) as exc:  # a method calling sys.exit fails its cell, not the run
        record.status = "failed"
        if isinstance(exc, SystemExit):
            record.error = f"SystemExit: the method tried to end the process (exit code {exc.code!r})"
        else:
            record.error = f"{type(exc).__name__}: {exc}"
        record.traceback = traceback.format_exc()
    finally:
        record.timings = {**(record.timings or {}), "total_s": round(time.perf_counter() - start, 4)}
        record.finished_at = utc_now()
    return record, arrays


def _compute(cell: Cell, cls: type, source: DatasetSource, ctx: RunContext, record: Record) -> dict[str, np.ndarray]:
    """Fill ``record`` as the cell runs (what is known survives an exception) and return its arrays."""
    dataset = load_dataset(source)
    split = split_for_role(source.split(dataset, cell.protocol, cell.seed), dataset.labels, cell.seed, cell.split)
    record.split = {"role": cell.split, "hash": split.digest(), "sizes": split.sizes(), "notes": list(split.notes)}
    record.data_files = data_files(source)  # file name -> verified / differs / unknown (release file)
    dataset = prepared_features(dataset, source, cell, split)
    memory = None
    if ctx.cache_dir is not None:
        import joblib

        memory = joblib.Memory(str(ctx.cache_dir), verbose=0)
    gpu = record.device.startswith("cuda")
    q, db = split.query, split.database
    with ExitStack() as on_gpu, PeakMemory() as peak:
        if gpu:  # a GPU slot, held until the codes are made (scoring needs no GPU)
            import torch

            record.device = on_gpu.enter_context(_slot_for(record.device, cell, len(split.train), dataset, ctx))
            torch.cuda.reset_peak_memory_stats(record.device)
        model = cls(**cell.params, seed=cell.seed, device=record.device, cache=memory)
        t0 = time.perf_counter()
        model.fit(dataset.paired(split.train), cell.bits, progress=ProgressFile(ctx.out, cell.key))
        t1 = time.perf_counter()
        record.fit = model.fit_report()
        query_image = model.encode_image(dataset.image[q])
        query_text = model.encode_text(dataset.text[q])
        if cell.database_coding == "unified":
            db_for_i2t = db_for_t2i = model.encode_pair(dataset.image[db], dataset.text[db])
        else:
            db_for_i2t = model.encode_text(dataset.text[db])
            db_for_t2i = model.encode_image(dataset.image[db])
        t2 = time.perf_counter()
        if gpu:
            peak_gpu_mb = round(torch.cuda.max_memory_allocated(record.device) / 2**20, 1)
    ql, dl = dataset.labels[q], dataset.labels[db]
    arrays = {
        "i2t_query": _pack(query_image),
        "i2t_database": _pack(db_for_i2t),
        "t2i_query": _pack(query_text),
        "t2i_database": _pack(db_for_t2i),
        "query_idx": q,
        "database_idx": db,
        "query_labels": np.packbits(ql > 0, axis=1),
        "database_labels": np.packbits(dl > 0, axis=1),
        "n_bits": np.array(cell.bits),
        "n_labels": np.array(dataset.labels.shape[1]),
    }
    record.codes = code_statistics(arrays, cell.bits)
    record.metrics, curves = score_cell(arrays, ctx.metrics, workers=ctx.threads or 1)
    arrays.update(curves)
    t3 = time.perf_counter()
    record.timings = {"fit_s": round(t1 - t0, 4), "encode_s": round(t2 - t1, 4), "eval_s": round(t3 - t2, 4)}
    record.memory = {"peak_rss_mb": peak.peak_mb}
    if gpu:
        record.memory["peak_gpu_mb"] = peak_gpu_mb
    record.status = "ok"
    for name, values in getattr(model, "loss_history_", {}).items():
        arrays[f"loss_{name}"] = np.asarray(values, dtype=np.float64)
    return arrays


class ProgressFile:
    """The progress callback a cell hands to ``fit``: it writes the latest report to the
    cell's progress file beside its claim (:func:`cmhbench.store.write_progress`), which the
    scheduling process polls for its bar.  A file rather than a queue, so that it works
    the same from the calling process, a joblib worker, a Dask worker or a child process.
    Throttled to one write per ``interval`` seconds; the last step is always written."""

    def __init__(self, out: Path, key: str, interval: float = 0.5) -> None:
        self.out, self.key, self.interval = out, key, interval
        self._last = -float("inf")

    def __call__(self, progress: Progress) -> None:
        now = time.monotonic()
        if now - self._last < self.interval and progress.done < progress.total:
            return
        self._last = now
        store.write_progress(self.out, self.key, {"done": progress.done, "total": progress.total,
                                                  "stage": progress.stage, "values": progress.values,
                                                  "at": time.time()})


def run_and_store(cell: Cell, source: DatasetSource, ctx: RunContext) -> CellOutcome:
    """Claim a cell, run it, write its folder: the unit of work every executor schedules.

    Returns status ``running-elsewhere`` when another live process holds the cell's claim,
    and ``skipped`` when the cell was stored by another process since the run was planned.
    """
    claim = store.claim(ctx.out, cell.key)
    if claim is None:
        return CellOutcome(cell.key, cell.label, "running-elsewhere")
    with claim:
        if not ctx.force and store.is_done(ctx.out, cell.key):
            return CellOutcome(cell.key, cell.label, "skipped")
        try:
            record, arrays = compute_cell(cell, source, ctx)
        finally:
            store.clear_progress(ctx.out, cell.key)
        store.write_cell(ctx.out, cell.key, record.to_json(), arrays)
    return CellOutcome(cell.key, cell.label, record.status, record.error)
