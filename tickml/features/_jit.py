"""The one set of numba options every feature kernel is compiled with.

``cache=True``: compiled once per machine (see :mod:`tickml.features._cache`). ``_nrt=False``:
no numba reference counting. With it each call between kernel functions paid ~35 ns of atomic
refcount updates for its array arguments, which made a row cost ~10x more; without it kernels
must not allocate arrays (the callers pass scratch space) nor return them.
"""

from __future__ import annotations

from typing import Any

from numba import njit

_OPTIONS: dict[str, Any] = {"cache": True, "_nrt": False}

kernel = njit(**_OPTIONS)
inline_kernel = njit(inline="always", **_OPTIONS)
