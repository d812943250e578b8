"""Worker processes that run cells so that no method can end the run or charge another cell.

joblib/loky cannot do this job: when one of its workers dies it takes down the whole pool
(siblings included, so their cells look killed too), and it cannot stop one task at a
deadline.  A small pool of our own can: each worker is a persistent process (datasets and
torch are loaded once per process, not per cell) that runs one cell at a time through
:func:`cmhbench.harness.runner.run_and_store` and answers over its own pipe.  So the parent knows
which cell every worker holds:

- a worker that dies (signal, out-of-memory kill, ``os._exit``) is charged with its own
  cell only; that cell is retried once in a fresh worker, then stored as failed;
- a worker still busy ``KILL_GRACE_S`` after ``--timeout`` (stuck in native code, where
  the in-process alarm cannot reach) is killed and its cell stored as failed.

Workers are forked where that is safe (fast, and in-process plugin registrations carry
over); where CUDA is already initialised in this process, they are spawned.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections import Counter, deque
from multiprocessing.connection import wait
from typing import Any, Iterator, Mapping

from cmhbench import store
from cmhbench.datasets import DatasetSource
from cmhbench.harness.grid import Cell
from cmhbench.harness.runner import CellOutcome, RunContext, failed_record, run_and_store

WORKER_DIED = "the worker process running this cell died twice"
KILL_GRACE_S = 3.0  # after --timeout, time for the in-process alarm before the worker is killed

logger = logging.getLogger(__name__)


def _context() -> Any:
    torch = sys.modules.get("torch")
    cuda_live = torch is not None and getattr(torch.cuda, "is_initialized", lambda: False)()
    if cuda_live or "fork" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    return mp.get_context("fork")


def _die_with_parent(parent: int) -> None:
    """Ask Linux to kill this worker when the run that started it dies (``kill -9`` of the
    run stops its cells, as it would stop a run without workers)."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


class _PipeHandler(logging.Handler):
    """Sends a worker's log records to the parent, which prints them through its own
    handlers: a warning from inside a cell reads the same as one from the run itself."""

    def __init__(self, conn: Any) -> None:
        super().__init__()
        self.conn = conn

    def emit(self, record: logging.LogRecord) -> None:
        try:
            record.msg = record.getMessage()
            record.args = None
            if record.exc_info:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
                record.exc_info = None
            with _send_lock:
                self.conn.send(record)
        except Exception:  # never let logging break a cell
            pass


_send_lock = threading.Lock()


def _log_to_parent(conn: Any) -> None:
    handler = _PipeHandler(conn)
    for name in (None, "cmhbench"):
        logger = logging.getLogger(name)
        for old in list(logger.handlers):
            logger.removeHandler(old)
    logging.getLogger().addHandler(handler)
    logging.getLogger("cmhbench").propagate = True


def _serve(conn: Any, sources: Mapping[str, DatasetSource], ctx: RunContext, parent: int) -> None:
    """A worker's life: run the cells the parent sends until it sends None or goes away."""
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the run's to handle: it stops the workers
    _log_to_parent(conn)
    while True:
        try:
            cell = conn.recv()
        except (EOFError, OSError):
            return
        if cell is None:
            return
        try:
            outcome = run_and_store(cell, sources[cell.dataset_name], ctx)
        except Exception as exc:  # the cell could not be stored (a full disk): say why, and live on
            outcome = CellOutcome(cell.key, cell.label, "failed", f"{type(exc).__name__}: {exc}")
        with _send_lock:
            conn.send(outcome)


def describe_exit(code: int | None) -> str:
    """How a worker ended, in words."""
    if code is None:
        return "it stopped answering"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (killed, or out of memory)" if -code == signal.SIGKILL else ""
        return f"it was killed by {name}{hint}"
    return f"it exited with code {code}"


class _Worker:
    def __init__(self, context: Any, sources: Mapping[str, DatasetSource], ctx: RunContext) -> None:
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, sources, ctx, os.getpid()), daemon=True)
        self.process.start()
        child.close()
        self.cell: Cell | None = None
        self.deadline = float("inf")

    def submit(self, cell: Cell, timeout: float | None) -> None:
        self.cell = cell
        self.deadline = time.monotonic() + timeout + KILL_GRACE_S if timeout else float("inf")
        self.conn.send(cell)

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        self.conn.close()

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.process.join(timeout=5)
        self.kill()


def _release_claim(ctx: RunContext, key: str, worker: _Worker) -> None:
    """Remove the claim a dead or killed worker left on its cell (only its own: the worker
    may have died before claiming, while another run holds the cell)."""
    store.drop_claim(ctx.out, key, worker.process.pid)


def _store_failure(cell: Cell, ctx: RunContext, error: str) -> CellOutcome:
    try:
        store.write_cell(ctx.out, cell.key, failed_record(cell, ctx, error).to_json(), None)
    except store.StoreError as exc:  # a full disk: the failure is reported, not stored
        error = f"{error}; its failure could not be stored either: {exc}"
    return CellOutcome(cell.key, cell.label, "failed", error)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _stop(signum: int, previous: Mapping[int, Any]) -> None:
    """Act on a noted stop signal: hand it to the handler that was there before the pool (the
    command's own, which raises its exception and prints its line), else stop as Ctrl-C does;
    the caller's ``finally`` then kills every worker and releases their claims."""
    handler = previous.get(signum)
    if callable(handler):
        handler(signum, None)
    raise KeyboardInterrupt


def run_in_workers(cells: list[Cell], sources: Mapping[str, DatasetSource], ctx: RunContext,
                   workers: int = 1) -> Iterator[CellOutcome]:
    """Run ``cells`` on ``workers`` processes, yielding each outcome as it arrives."""
    context = _context()
    pending = deque(cells)
    deaths: Counter = Counter()
    idle: list[_Worker] = []
    busy: list[_Worker] = []
    interrupted: list[int] = []
    # Ctrl-C and SIGTERM are noted and acted on here, between two waits: raised anywhere (inside
    # a fork, inside logging) they can be swallowed as an "exception ignored" and the run goes on
    main = threading.current_thread() is threading.main_thread()
    previous = {signum: signal.signal(signum, lambda signum, frame: interrupted.append(signum))
                for signum in STOP_SIGNALS} if main else {}
    try:
        while pending or busy:
            if interrupted:
                _stop(interrupted[0], previous)
            while pending and len(busy) < workers:
                cell = pending.popleft()
                worker = idle.pop() if idle else None
                try:
                    worker = worker if worker is not None and worker.process.is_alive() else _Worker(context, sources,
                                                                                                     ctx)
                    worker.submit(cell, ctx.timeout)
                except OSError:  # an idle worker that died meanwhile: a fresh one takes the cell
                    worker = _Worker(context, sources, ctx)
                    worker.submit(cell, ctx.timeout)
                busy.append(worker)
            now = time.monotonic()
            timeout = max(0.0, min(w.deadline for w in busy) - now)
            ready = set(wait([w.conn for w in busy] + [w.process.sentinel for w in busy],
                             timeout=min(timeout, 0.5)))
            if interrupted:
                _stop(interrupted[0], previous)
            for worker in list(busy):
                cell = worker.cell
                if worker.conn in ready:
                    try:
                        outcome = worker.conn.recv()
                    except (EOFError, OSError):
                        outcome = None
                    if isinstance(outcome, logging.LogRecord):
                        logging.getLogger(outcome.name).handle(outcome)
                        continue
                    if outcome is not None:
                        busy.remove(worker)
                        worker.cell = None
                        idle.append(worker)
                        yield outcome
                        continue
                if worker.process.sentinel in ready or worker.conn in ready:
                    busy.remove(worker)
                    worker.kill()
                    _release_claim(ctx, cell.key, worker)
                    yield from _after_death(cell, ctx, describe_exit(worker.process.exitcode), deaths, pending)
                elif time.monotonic() > worker.deadline:
                    busy.remove(worker)
                    worker.kill()
                    _release_claim(ctx, cell.key, worker)
                    yield _store_failure(cell, ctx, f"the cell ran longer than --timeout {ctx.timeout:g} s and its "
                                                    f"worker was killed ({KILL_GRACE_S:g} s later)")
    finally:  # normal end, Ctrl-C or an error of ours: no worker outlives the run
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        for worker in busy:
            worker.kill()
            _release_claim(ctx, worker.cell.key, worker)
        for worker in idle:
            worker.stop()


def _after_death(cell: Cell, ctx: RunContext, how: str, deaths: Counter,
                 pending: deque) -> Iterator[CellOutcome]:
    if not ctx.force and store.is_done(ctx.out, cell.key):  # it died after storing its cell
        record = store.read_record(ctx.out, cell.key)
        yield CellOutcome(cell.key, cell.label, record["status"], record.get("error"))
        return
    deaths[cell.key] += 1
    if deaths[cell.key] >= 2:
        yield _store_failure(cell, ctx, f"{WORKER_DIED}: {how}")
    else:
        logger.warning("the worker running %s died (%s); retrying it once in a fresh process", cell.label, how)
        pending.appendleft(cell)
