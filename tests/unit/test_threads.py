"""Native thread pools capped for the API processes."""

from __future__ import annotations

import os

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from models.threads import THREAD_VARS, limit_env, limit_loaded


def test_loaded_pools_are_capped_and_can_be_restored() -> None:
    assert np.ones((4, 4)) @ np.ones(4) is not None  # BLAS loaded
    before = {p["filepath"]: p["num_threads"] for p in threadpool_info()}
    if not before:
        pytest.skip("no native thread pool loaded in this interpreter")
    limiter = limit_loaded(1)
    try:
        assert all(p["num_threads"] == 1 for p in threadpool_info())
    finally:
        limiter.restore_original_limits()
    assert {p["filepath"]: p["num_threads"] for p in threadpool_info()} == before


def test_env_for_pools_loaded_later_keeps_what_the_operator_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in THREAD_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    limit_env(1)
    assert os.environ["OMP_NUM_THREADS"] == "3"
    assert all(os.environ[name] == "1" for name in THREAD_VARS if name != "OMP_NUM_THREADS")
