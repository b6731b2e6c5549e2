"""One thread everywhere: the batch jobs share a small machine with the live system.

BLAS, OpenMP (faiss, implicit) and numba (librosa) read their thread counts
from the environment when first imported, so :func:`limit_env` must run before
those imports (the ``encore train``/``eval`` commands call it first);
:func:`one_thread` additionally caps already-loaded pools for a block, and
:func:`worker_init` does both for good at the start of a worker process.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from models.threads import THREAD_VARS, limit_loaded
from models.threads import limit_env as _limit_native_env

__all__ = ["THREAD_VARS", "limit_env", "one_thread", "worker_init"]


def limit_env() -> None:
    """Ask every native thread pool for one thread (effective for libraries not yet loaded)."""
    _limit_native_env(1)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@contextmanager
def one_thread() -> Iterator[None]:
    """Cap BLAS/OpenMP pools (and torch and faiss, if loaded) at one thread inside the block
    (the BLAS/OpenMP limits are restored after it)."""
    limiter = limit_loaded(1)
    try:
        yield
    finally:
        limiter.restore_original_limits()


def worker_init() -> None:
    """Start of a batch worker process: one thread for every native pool, whether its
    library is loaded already (a forkserver preloads them) or not yet."""
    limit_env()
    limit_loaded(1)
