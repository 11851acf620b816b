"""Shared settings for the reference tests."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The reference tests use tiny tensors: intra-op threads gain nothing, and on a busy
    2-core machine OpenMP threads waiting on each other made some modules ~10x slower.
    Restored afterwards. torch is imported here, not at collection of torch-free tests."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
