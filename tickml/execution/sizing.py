"""Position sizing, exposure caps and the portfolio risk limit (vectorised over symbols).

Every function is pure arithmetic on arrays in a fixed order, so the backtest and the live
ledger, handing it the same arrays, get the same bits.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

from tickml.execution.config import ExecutionConfig

#: outcome of a row for the book (like the decision gates): index into this tuple
RISK_GATES: tuple[str, ...] = (
    "none",  # no position wanted (or the decision only closed one)
    "opened",  # opened at the target size
    "extended",  # same-direction signal: holding period extended, size unchanged
    "capped_symbol",  # opened at the per-symbol cap
    "scaled_gross",  # opened, scaled down to fit the gross exposure cap
    "scaled_net",  # opened, scaled down to fit the net exposure cap
    "scaled_risk",  # opened, scaled down to fit the portfolio risk limit
    "refused_gross",
    "refused_net",
    "refused_risk",  # includes: too few intervals in the window to know the risk
    "refused_no_vol",  # volatility sizing without a volatility known at entry
    "not_executable",  # a signal on a row without a usable mid / spread
)
(
    G_NONE,
    G_OPENED,
    G_EXTENDED,
    G_CAPPED,
    G_SCALED_GROSS,
    G_SCALED_NET,
    G_SCALED_RISK,
    G_REFUSED_GROSS,
    G_REFUSED_NET,
    G_REFUSED_RISK,
    G_REFUSED_NO_VOL,
    G_NOT_EXECUTABLE,
) = range(len(RISK_GATES))


def target_values(
    cfg: ExecutionConfig, vol: np.ndarray | None, strength: np.ndarray | None, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Value each new position wants before the book-level limits, and its gate
    (``opened``, ``capped_symbol`` or ``refused_no_vol``)."""
    gate = np.full(n, G_OPENED, dtype=np.int8)
    if cfg.sizing == "unit":
        value = np.full(n, cfg.notional)
    else:
        v = np.full(n, np.nan) if vol is None else np.asarray(vol, dtype=np.float64)
        ok = np.isfinite(v) & (v > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            value = np.where(ok, cfg.risk_per_trade / (v * cfg.returns_unit), 0.0)
        if cfg.strength_scaled and strength is not None:
            s = np.asarray(strength, dtype=np.float64)
            k = np.minimum(np.abs(s), cfg.max_strength)
            value = value * np.where(np.isfinite(s), k, 1.0)
        gate[~ok] = G_REFUSED_NO_VOL
    if cfg.max_position_value is not None:
        over = (value > cfg.max_position_value) & (gate == G_OPENED)
        value = np.where(over, cfg.max_position_value, value)
        gate[over] = G_CAPPED
    return value, gate


def exposure_scales(cfg: ExecutionConfig, held: np.ndarray, new: np.ndarray) -> tuple[float, float]:
    """Largest uniform scales in [0, 1] of the new signed values that keep the gross and the
    net exposure within their caps (held: signed values of the open positions at the marks)."""
    k_gross = k_net = 1.0
    if cfg.max_gross is not None:
        want = float(np.abs(new).sum())
        room = cfg.max_gross - float(np.abs(held).sum())
        if want > room:
            k_gross = min(1.0, max(0.0, room / want))
    if cfg.max_net is not None:
        now, add = float(held.sum()), float(new.sum())
        if abs(now + add) > cfg.max_net and add != 0.0:
            bound = cfg.max_net if add > 0 else -cfg.max_net
            k_net = min(1.0, max(0.0, (bound - now) / add))
    return k_gross, k_net


def risk_scale(
    cfg: ExecutionConfig, window: np.ndarray, held: np.ndarray, new: np.ndarray
) -> float:
    """Largest scale k in [0, 1] of the new positions keeping the book's VaR within the limit.

    ``window``: (m, n) past interval returns (fractions, 0 where unknown) of the n symbols,
    ``held``/``new``: signed values. The book's P&L per interval is ``window @ values``; its
    sample variance var(a + k b) = va + 2k cab + k^2 vb (the rolling covariance, without
    forming the n x n matrix); VaR = z(confidence) x sqrt(var_horizon_bars) x its square root.
    """
    if cfg.var_limit is None:
        return 1.0
    m = window.shape[0]
    if m < cfg.var_min_obs:
        return 0.0
    a = (window * held).sum(axis=1)
    b = (window * new).sum(axis=1)
    da, db = a - a.mean(), b - b.mean()
    va = float((da * da).sum()) / (m - 1)
    vb = float((db * db).sum()) / (m - 1)
    cab = float((da * db).sum()) / (m - 1)
    z = NormalDist().inv_cdf(cfg.var_confidence) * float(np.sqrt(cfg.var_horizon_bars))
    cap = (cfg.var_limit / z) ** 2
    if va + 2 * cab + vb <= cap:
        return 1.0
    if va >= cap or vb <= 0.0:
        return 0.0
    disc = cab * cab - vb * (va - cap)
    return min(1.0, max(0.0, (-cab + float(np.sqrt(max(disc, 0.0)))) / vb))


def book_var(cfg: ExecutionConfig, window: np.ndarray, held: np.ndarray) -> float | None:
    """The open book's VaR (as :func:`risk_scale` measures it); None when not measurable."""
    m = window.shape[0]
    if m < 2:
        return None
    a = (window * held).sum(axis=1)
    da = a - a.mean()
    z = NormalDist().inv_cdf(cfg.var_confidence) * float(np.sqrt(cfg.var_horizon_bars))
    return z * float(np.sqrt(float((da * da).sum()) / (m - 1)))


class ReturnWindow:
    """The last ``size`` intervals' returns of every symbol of the book (a ring of rows)."""

    def __init__(self, size: int, n: int = 0) -> None:
        self.buf = np.zeros((size, n))
        self.count = 0
        self.pos = 0

    def reset(self) -> None:
        self.buf[:] = 0.0
        self.count = self.pos = 0

    def grow(self, n: int) -> None:
        if n > self.buf.shape[1]:
            self.buf = np.hstack([self.buf, np.zeros((self.buf.shape[0], n - self.buf.shape[1]))])

    def push(self, slots: np.ndarray, returns: np.ndarray) -> None:
        row = np.zeros(self.buf.shape[1])
        row[slots] = np.where(np.isfinite(returns), returns, 0.0)
        self.buf[self.pos] = row
        self.pos = (self.pos + 1) % self.buf.shape[0]
        self.count = min(self.count + 1, self.buf.shape[0])

    def rows(self) -> np.ndarray:
        return self.buf[: self.count]

    def arrays(self) -> dict[str, np.ndarray]:
        """The filled rows only (none without a risk limit), the shape and the ring position."""
        size, n = self.buf.shape
        meta = np.array([self.count, self.pos, size, n], np.int64)
        return {"win_buf": self.buf[: self.count], "win_meta": meta}

    @classmethod
    def from_arrays(cls, z: dict[str, np.ndarray] | np.lib.npyio.NpzFile) -> ReturnWindow:
        count, pos, size, n = (int(v) for v in z["win_meta"])
        out = cls(size, n)
        out.buf[:count] = np.asarray(z["win_buf"], dtype=np.float64).reshape(count, n)
        out.count, out.pos = count, pos
        return out
