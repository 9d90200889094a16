"""Symbol -> slot index of per-symbol state arrays (the position book, recent volatility)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class SymbolSlots:
    """Stable slots in order of first appearance; a repeated universe is answered from a cache
    (the live workers call with the same symbols every boundary)."""

    def __init__(self, symbols: Sequence[str] = ()) -> None:
        self.symbols: list[str] = [str(s) for s in symbols]
        self._index = {s: i for i, s in enumerate(self.symbols)}
        if len(self._index) != len(self.symbols):
            raise ValueError("duplicate symbols in state")
        self._key: list[str] | None = None
        self._key_idx = np.zeros(0, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.symbols)

    def resolve(self, symbols: Sequence[str] | np.ndarray) -> tuple[np.ndarray, int]:
        """Slots of ``symbols`` (unknown ones appended) and how many were added."""
        if self._key is not None and isinstance(symbols, list) and symbols == self._key:
            return self._key_idx, 0  # the same universe again (no per-symbol conversion)
        names = [str(s) for s in symbols]
        if self._key is not None and names == self._key:
            return self._key_idx, 0
        if len(set(names)) != len(names):
            raise ValueError("duplicate symbols in one cross-section")
        new = [s for s in names if s not in self._index]
        base = len(self.symbols)
        self.symbols.extend(new)
        self._index.update({s: base + i for i, s in enumerate(new)})
        idx = np.fromiter((self._index[s] for s in names), dtype=np.int64, count=len(names))
        self._key, self._key_idx = names, idx
        return idx, len(new)
