"""Native thread pools (BLAS, OpenMP, faiss, torch, numba) capped at a number of threads.

BLAS, OpenMP (faiss, implicit), torch and numba read their thread counts from the
environment when first imported; pools already loaded are capped through
threadpoolctl (and faiss's and torch's own calls). The API processes and the batch
jobs share a small machine with the rest of the system, so both cap them.
"""

from __future__ import annotations

import os
import sys
from typing import Any

THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMBA_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)


def limit_env(n: int = 1) -> None:
    """Ask native pools not loaded yet for ``n`` threads (unless the environment says)."""
    for name in THREAD_VARS:
        os.environ.setdefault(name, str(n))


def limit_loaded(n: int = 1) -> Any:
    """Cap the pools already loaded in this process at ``n`` threads, for good; returns
    threadpoolctl's limiter (``restore_original_limits()`` undoes the BLAS/OpenMP part)."""
    from threadpoolctl import threadpool_limits

    limiter = threadpool_limits(n)
    if "faiss" in sys.modules:
        sys.modules["faiss"].omp_set_num_threads(n)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
    return limiter
