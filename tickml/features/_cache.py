"""Keep numba's on-disk kernel cache consistent with the kernel sources.

Numba keys a cached function on its own source file's timestamp only: a kernel that inlines a
function or reads a constant from another module would be loaded stale after that module
changed. Before any kernel runs, this drops the package's cached kernels whenever the hash of
all kernel modules differs from the one recorded at the last compilation.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

log = logging.getLogger(__name__)

KERNEL_MODULES = (
    "_layout",
    "_update",
    "_tick",
    "_ops_ring",
    "_ops_time",
    "_ops_clock",
    "_snapshot",
    "_loop",
)
_HERE = Path(__file__).resolve().parent


def kernel_hash() -> str:
    h = hashlib.sha256()
    for name in KERNEL_MODULES:
        h.update((_HERE / f"{name}.py").read_bytes())
    return h.hexdigest()


def ensure_fresh_cache() -> None:
    """Delete stale numba cache files of the kernel modules (best effort, never raises)."""
    try:
        import numba

        configured = getattr(numba.config, "CACHE_DIR", "")
        cache_dir = Path(configured) if configured else None
        pycache = _HERE / "__pycache__"
        stamp = pycache / "tickml_features_kernels.sha256"
        current = kernel_hash()
        if stamp.is_file() and stamp.read_text().strip() == current:
            return
        for d in (pycache, cache_dir):
            if d is None or not d.is_dir():
                continue
            for f in d.rglob("*"):
                if f.suffix in (".nbi", ".nbc") and f.name.split(".")[0] in KERNEL_MODULES:
                    f.unlink(missing_ok=True)
        pycache.mkdir(exist_ok=True)
        stamp.write_text(current)
    except OSError as exc:  # read-only install: numba then recompiles in memory
        log.debug("numba cache check skipped: %s", exc)
