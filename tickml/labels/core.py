"""Triple-barrier labels of an event grid, both horizons, and the consensus filter."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd

from tickml.labels._kernels import reference_index, scan_paths
from tickml.labels._prices import (
    EventMap,
    PreparedPrices,
    map_events,
    prepare_prices,
    sampled_volatility,
)
from tickml.labels.config import (
    CLASSES_3,
    CLASSES_5,
    DOWN,
    FLAT,
    TRAP_DOWN,
    TRAP_UP,
    UP,
    LabelConfig,
    to_timedelta,
)

log = logging.getLogger(__name__)

#: Relative tolerance of every price comparison: a price exactly on a barrier / trap level
#: (typical on a tick grid) counts as reaching it despite float rounding.
REL_TOL = 1e-9

#: Per-horizon output columns of :func:`triple_barrier`, after symbol and event_timestamp.
LABEL_COLUMNS: tuple[str, ...] = (
    "label",
    "label_end",
    "fwd_return",
    "touch",
    "mfe",
    "mae",
    "barrier_up",
    "barrier_down",
    "ref_price",
    "sigma",
    "truncated",
)


def _take(values: np.ndarray, idx: np.ndarray, fill: float | int) -> np.ndarray:
    """values[idx] where idx >= 0, else ``fill`` (also when ``values`` is empty)."""
    out = np.full(idx.shape, fill, dtype=values.dtype)
    ok = idx >= 0
    out[ok] = values[idx[ok]]
    return out


def _horizon_ns(horizon: str | pd.Timedelta) -> int:
    return int(to_timedelta(horizon).value)


def estimate_volatility(
    ticks: pd.DataFrame,
    events: pd.DataFrame,
    horizon: str | pd.Timedelta,
    config: LabelConfig | None = None,
) -> np.ndarray:
    """Per event, the vol-mode sigma: sd of the log price change over ``horizon``, from the
    EWMA of ``vol_sample`` returns known at the event, times sqrt(horizon / vol_sample)."""
    config = config or LabelConfig()
    prices = prepare_prices(ticks, config)
    em = map_events(prices, events, config)
    return _sigma(prices, em, _horizon_ns(horizon), config)


def _sigma(prices: PreparedPrices, em: EventMap, h_ns: int, config: LabelConfig) -> np.ndarray:
    step = to_timedelta(config.vol_sample).value
    return sampled_volatility(prices, em, config) * np.sqrt(h_ns / step)


def triple_barrier(
    ticks: pd.DataFrame,
    events: pd.DataFrame,
    horizon: str | pd.Timedelta,
    config: LabelConfig | None = None,
    n_classes: Literal[3, 5] = 5,
    *,
    volatility: np.ndarray | pd.Series | None = None,
) -> pd.DataFrame:
    """Label each event (``symbol``, ``event_timestamp``) from the canonical ``ticks``.

    Returns one row per event, in the events' order and with their index: ``symbol``,
    ``event_timestamp`` and :data:`LABEL_COLUMNS` (see the package docstring).
    ``volatility`` (vol mode only) replaces the estimated per-event sigma over the horizon
    (log-return sd; NaN leaves the event unlabelled).
    """
    config = config or LabelConfig()
    return label_events(
        prepare_prices(ticks, config), events, horizon, config, n_classes, volatility=volatility
    )


def label_events(
    prices: PreparedPrices,
    events: pd.DataFrame,
    horizon: str | pd.Timedelta,
    config: LabelConfig,
    n_classes: Literal[3, 5] = 5,
    *,
    volatility: np.ndarray | pd.Series | None = None,
) -> pd.DataFrame:
    """:func:`triple_barrier` on prices already prepared by :func:`prepare_prices`."""
    if n_classes not in (3, 5):
        raise ValueError(f"n_classes must be 3 or 5, got {n_classes}")
    h = _horizon_ns(horizon)
    em = map_events(prices, events, config)
    t = em.t
    n = t.size
    if config.session_only:
        inside = (t >= em.open) & (t < em.close)
        limit = em.close
    else:
        inside = (em.seg < 0) | (t < em.last_ts)  # no ticks that day: "no_price" below
        limit = np.where(em.seg >= 0, em.last_ts, t)
    truncated = inside & (t + h > limit)
    end = np.minimum(t + h, limit)

    ref_idx = reference_index(prices.ts, em.lo, em.hi, t)
    ref_idx = np.where(inside, ref_idx, -1)
    has_ref = ref_idx >= 0
    ref = _take(prices.p, ref_idx, np.nan)

    reason = np.full(n, "", dtype=object)
    reason[~has_ref] = "no_price"
    reason[~inside] = "outside_session"

    if config.barrier_mode == "vol":
        if volatility is not None:
            sigma = np.asarray(volatility, dtype=np.float64)
            if sigma.shape != (n,):
                raise ValueError(f"volatility must have one value per event ({n})")
        else:
            sigma = _sigma(prices, em, h, config)
        no_vol = has_ref & ~(np.isfinite(sigma) & (sigma > 0))
        reason[no_vol & (reason == "")] = "no_vol"
        with np.errstate(invalid="ignore", over="ignore"):
            floor = config.min_barrier_points * config.point_value
            up = np.maximum(ref * np.exp(config.profit_take * sigma), ref + floor)
            down = np.minimum(ref * np.exp(-config.stop_loss * sigma), ref - floor)
    else:
        sigma = np.full(n, np.nan)
        up = ref + config.profit_take * config.point_value
        down = ref - config.stop_loss * config.point_value
    if config.at_close == "drop":
        reason[truncated & (reason == "")] = "dropped_at_close"
    labelled = reason == ""

    tol = REL_TOL * np.abs(ref)
    scan_up = np.where(labelled, up - tol, np.inf)
    scan_down = np.where(labelled, down + tol, -np.inf)
    touch, stop_idx, close, hi_p, lo_p = scan_paths(
        prices.ts, prices.p, ref_idx, em.hi, end, scan_up, scan_down
    )

    # fwd_return: the price at t + horizon (last point <= t + h) against the reference
    fwd_idx = reference_index(prices.ts, em.lo, em.hi, t + h)
    fwd_ok = has_ref & ~truncated & (fwd_idx >= 0)
    fwd_p = _take(prices.p, np.where(fwd_ok, fwd_idx, -1), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        fwd_return = np.log(fwd_p / ref)

    label = _classify(touch, ref, up, down, close, hi_p, lo_p, tol, labelled, config, n_classes)

    with np.errstate(invalid="ignore", divide="ignore"):
        up_exc = np.log(hi_p / ref)
        down_exc = np.log(ref / lo_p)
    longish = (touch == 1) | ((touch == 0) & (close >= ref))
    mfe = np.where(labelled, np.where(longish, up_exc, down_exc), np.nan)
    mae = np.where(labelled, np.where(longish, down_exc, up_exc), np.nan)

    touched = labelled & (touch != 0)
    end_ns = np.where(touched, _take(prices.ts, stop_idx, 0), end)
    end_ns = np.where(labelled, end_ns, t + h)
    touch_name = np.where(touch == 1, "up", np.where(touch == -1, "down", "vertical"))
    touch_col = np.where(labelled, touch_name.astype(object), reason)

    out = pd.DataFrame(
        {
            "symbol": events["symbol"].to_numpy(),
            "event_timestamp": pd.to_datetime(t, utc=True),
            "label": label,
            "label_end": pd.to_datetime(end_ns, utc=True),
            "fwd_return": fwd_return,
            "touch": touch_col,
            "mfe": mfe,
            "mae": mae,
            "barrier_up": np.where(labelled, up, np.nan),
            "barrier_down": np.where(labelled, down, np.nan),
            "ref_price": ref,
            "sigma": sigma,
            "truncated": truncated,
        },
        index=events.index,
    )
    if log.isEnabledFor(logging.DEBUG):
        log.debug("labelled %d of %d events, horizon %s", int(labelled.sum()), n, horizon)
    return out


def _classify(
    touch: np.ndarray,
    ref: np.ndarray,
    up: np.ndarray,
    down: np.ndarray,
    close: np.ndarray,
    hi_p: np.ndarray,
    lo_p: np.ndarray,
    tol: np.ndarray,
    labelled: np.ndarray,
    config: LabelConfig,
    n_classes: int,
) -> np.ndarray:
    """The class of each event from its scanned path (the precedence table of the package)."""
    n = touch.size
    label = np.full(n, None, dtype=object)
    with np.errstate(invalid="ignore"):
        d_up = up - ref
        d_down = ref - down
        reached_up = hi_p >= ref + config.trap_share * d_up - tol
        reached_down = lo_p <= ref - config.trap_share * d_down + tol
        clean_up = (ref - lo_p) < config.max_adverse_share * d_down - tol
        clean_down = (hi_p - ref) < config.max_adverse_share * d_up - tol
        below = close < ref - tol
        above = close > ref + tol
        ret = np.log(close / ref)
    if not config.path_quality:
        clean_up[:] = True
        clean_down[:] = True
    five = n_classes == 5
    t_up = labelled & (touch == 1)
    t_down = labelled & (touch == -1)
    vert = labelled & (touch == 0)

    res = np.full(n, FLAT, dtype=object)
    # touched the upper barrier
    res[t_up & clean_up] = UP
    if five:
        res[t_up & reached_down] = TRAP_DOWN
    # touched the lower barrier
    res[t_down & clean_down] = DOWN
    if five:
        res[t_down & reached_up] = TRAP_UP
    # vertical barrier
    if not config.path_quality and config.min_return is not None:
        m = config.min_return
        res[vert & (ret > 0) & (ret >= m)] = UP
        res[vert & (ret < 0) & (ret <= -m)] = DOWN
    if five:
        res[vert & reached_up & below] = TRAP_UP
        res[vert & reached_down & above] = TRAP_DOWN
    label[labelled] = res[labelled]
    return label


def make_labels(
    ticks: pd.DataFrame, events: pd.DataFrame, config: LabelConfig | None = None
) -> pd.DataFrame:
    """Both horizons: the 5-class short label and the 3-class long label of each event.

    Columns: ``symbol``, ``event_timestamp``, ``label_end`` (the later of the two label ends:
    the time after which neither label uses data, for purging), then each of
    :data:`LABEL_COLUMNS` suffixed ``_short`` and ``_long`` (``label_short``,
    ``label_end_short``, ``fwd_return_short``, ..., ``label_long``, ...).
    """
    config = config or LabelConfig()
    prices = prepare_prices(ticks, config)
    short = label_events(prices, events, config.short_horizon, config, 5)
    long = label_events(prices, events, config.long_horizon, config, 3)
    out = short[["symbol", "event_timestamp"]].copy()
    ends = np.maximum(
        short["label_end"].to_numpy(dtype="datetime64[ns]"),
        long["label_end"].to_numpy(dtype="datetime64[ns]"),
    )
    out["label_end"] = pd.DatetimeIndex(ends).tz_localize("UTC")
    for name, frame in (("short", short), ("long", long)):
        for col in LABEL_COLUMNS:
            out[f"{col}_{name}"] = frame[col].array
    return out


_DIRECTION = {UP: 1, DOWN: -1, FLAT: 0}
_TRAP_OPPOSITE = {TRAP_UP: -1, TRAP_DOWN: 1}


def consensus_filter(
    short: pd.Series | np.ndarray | Sequence[object],
    long: pd.Series | np.ndarray | Sequence[object],
    traps: Literal["keep", "opposite", "drop"] = "keep",
) -> np.ndarray:
    """Boolean mask of the rows where the two horizons agree (a training-set option).

    UP/UP, DOWN/DOWN and FLAT/FLAT agree; any other pair of UP/DOWN/FLAT does not. A missing
    label (None/NaN) on either side never agrees. Short-horizon traps, by ``traps``:
    ``"keep"`` (default): always kept, since the long label has no trap class and the trap is
    the short model's own information (filtering it on the long label would distort its
    prevalence); ``"opposite"``: a trap agrees with the direction it ended in (TRAP_UP, a failed
    up move, with long DOWN; TRAP_DOWN with long UP); ``"drop"``: traps are removed.
    Use: ``labels[consensus_filter(labels.label_short, labels.label_long)]``.
    """
    s = pd.Series(np.asarray(short, dtype=object))
    lg = pd.Series(np.asarray(long, dtype=object))
    if len(s) != len(lg):
        raise ValueError("short and long must have the same length")
    unknown = (set(s.dropna()) - set(CLASSES_5)) | (set(lg.dropna()) - set(CLASSES_3))
    if unknown:
        raise ValueError(f"unknown labels {sorted(map(str, unknown))}")
    ds = s.map(_DIRECTION).to_numpy(dtype=np.float64, na_value=np.nan)
    dl = lg.map(_DIRECTION).to_numpy(dtype=np.float64, na_value=np.nan)
    mask = np.isfinite(ds) & np.isfinite(dl) & (ds == dl)
    is_trap = s.isin(list(_TRAP_OPPOSITE)).to_numpy() & lg.notna().to_numpy()
    if traps == "keep":
        mask |= is_trap
    elif traps == "opposite":
        dt_ = s.map(_TRAP_OPPOSITE).to_numpy(dtype=np.float64, na_value=np.nan)
        mask |= is_trap & (dt_ == dl)
    elif traps != "drop":
        raise ValueError(f"traps must be keep, opposite or drop, got {traps!r}")
    return np.asarray(mask, dtype=bool)
