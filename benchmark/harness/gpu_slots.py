"""GPU slots: how many deep cells share one GPU, and waiting for room before a cell starts.

One rule, ``--cells-per-gpu K``: each GPU has K slots and a deep cell that runs on a GPU
holds one for as long as it runs.  Locally (``--jobs N``) the slots are lock files shared
by every cmhbench process on the machine, so at most K cells use a GPU whatever the
number of workers; on Dask each worker that declares ``--resources GPU=1`` runs at most K
deep cells at once, because each asks for ``GPU=1/K`` (and the same lock files hold on
the worker's machine).  A lock is released by the operating system when its process
dies, so a killed worker never keeps a slot.

Before a cell starts on a slot it checks the GPU's free memory against an estimate of
what the cell needs (:func:`estimate_bytes`, which asks the method); a cell that would not
fit gives the slot back and waits while other cells of ours hold slots on that GPU (their
memory comes back when they finish).  When no other cell of ours is on the GPU there is nothing to wait for and
the cell starts anyway: it may then fail with out-of-memory, which is recorded as usual.

Choosing K: a paper-preset deep cell at batch 32 keeps a modern GPU busy only a few per
cent of the time (each step is bound by kernel launches, about 1 ms, not by arithmetic), so
throughput grows with K until the GPU's streaming multiprocessors or the host's CPU cores
(one Python process per cell launches its kernels) run out; use K ≤ the CPU cores and
``--jobs`` ≥ K.  ``python -m cmhbench.tools.perf train`` and the GPU check script measure it.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    from cmhbench.methods.base import Hasher

log = logging.getLogger(__name__)

#: Seconds between two looks for a free slot or free memory.
POLL_S = 0.5
#: Memory a cell needs beyond what its method holds (CUDA context, kernels' workspace).
WORKSPACE_BYTES = 768 * 2**20


def lock_folder() -> str:
    """Where the slot locks live: one folder per machine (per temporary directory)."""
    folder = os.path.join(tempfile.gettempdir(), "cmhbench-gpu-slots")
    os.makedirs(folder, exist_ok=True)
    return folder


def _try_lock(path: str) -> IO[str] | None:
    import fcntl

    handle = open(path, "w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle


def _release(handle: IO[str]) -> None:
    import fcntl

    fcntl.flock(handle, fcntl.LOCK_UN)
    handle.close()


def others_on(gpu: int, cells_per_gpu: int, mine: int) -> int:
    """How many other slots of ``gpu`` are held now (by any process on this machine)."""
    held = 0
    for slot in range(cells_per_gpu):
        if slot == mine:
            continue
        handle = _try_lock(os.path.join(lock_folder(), f"gpu{gpu}-slot{slot}.lock"))
        if handle is None:
            held += 1
        else:
            _release(handle)
    return held


def free_bytes(gpu: int) -> int | None:
    """Free memory of a GPU as the driver reports it (None without CUDA)."""
    try:
        import torch

        return int(torch.cuda.mem_get_info(gpu)[0])
    except Exception:  # no CUDA, or a driver that cannot say
        return None


def estimate_bytes(method: Hasher, n_train: int, image_dim: int, text_dim: int, bits: int) -> int:
    """What a deep cell needs on its GPU: the method's own estimate
    (:meth:`~cmhbench.methods.base.Hasher.gpu_memory_bytes`, asked of the method, never guessed
    from its parameters' names) and the CUDA context's :data:`WORKSPACE_BYTES`."""
    return int(method.gpu_memory_bytes(n_train, image_dim, text_dim, bits)) + WORKSPACE_BYTES


@contextmanager
def gpu_slot(gpus: list[int], cells_per_gpu: int, need_bytes: int, poll_s: float = POLL_S) -> Iterator[str]:
    """Hold a slot on one of ``gpus`` with room for ``need_bytes`` for the duration of the
    block; yields the device (``cuda:I``).  Waits while every slot is taken, or while the
    free slots' GPUs lack the memory and other cells of ours hold slots there."""
    if cells_per_gpu < 1:
        raise ValueError(f"cells per GPU must be at least 1, got {cells_per_gpu}")
    waited_since = None
    while True:
        for gpu in gpus:
            for slot in range(cells_per_gpu):
                handle = _try_lock(os.path.join(lock_folder(), f"gpu{gpu}-slot{slot}.lock"))
                if handle is None:
                    continue
                free = free_bytes(gpu)
                if free is None or free >= need_bytes or others_on(gpu, cells_per_gpu, slot) == 0:
                    if waited_since is not None:
                        log.info("GPU %d slot %d after %.1f s of waiting", gpu, slot, time.monotonic() - waited_since)
                    try:
                        yield f"cuda:{gpu}"
                    finally:
                        _release(handle)
                    return
                _release(handle)
                break  # this GPU lacks the memory now: its other free slots would too
        if waited_since is None:
            waited_since = time.monotonic()
            log.info("waiting for a GPU slot with %.1f GiB free (%d cells per GPU)", need_bytes / 2**30,
                     cells_per_gpu)
        time.sleep(poll_s)
