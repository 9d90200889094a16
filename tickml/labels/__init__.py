"""Triple-barrier labels on the mid price: 5-class short horizon, 3-class long horizon.

Inputs
    ``ticks``: canonical ticks (:mod:`tickml.schema`) of any symbols and days. ``events``: the
    event grid, a frame with ``symbol`` and ``event_timestamp`` (datetime64[ns, UTC]), the
    feature rows' timestamps (interval closes).

Price
    The reference price after each tick is the mid of the last two-sided book seen that
    symbol-day; a tick with a null book (a trade during a crossed quote) keeps the last mid.
    Before the first two-sided book of the day, and all day for trades-only symbols such as
    SPY, it is the last trade price. Every local day (midnight, midnight] of ``config.market``
    starts afresh, like the features.

Reference and path of an event at t
    Reference price P0 = the price of the last tick with ``ts <= t``. Path = the ticks with
    ``t < ts <= end``, ``end = min(t + horizon, limit)``; ``limit`` is the session close
    (``session_only``, default) or the symbol's last tick of that day (otherwise). Nothing
    before t other than P0 (and, in vol mode, the volatility known at t) and nothing after
    ``end`` can change a label.

Barriers
    ``points``: up = P0 + profit_take x point_value, down = P0 - stop_loss x point_value.
    ``vol``: up = P0 exp(profit_take x sigma), down = P0 exp(-stop_loss x sigma), sigma = the
    EWMA (half-life ``vol_halflife``) volatility of ``vol_sample`` log returns of the price
    sampled on a grid anchored at the open (or midnight), at the last grid point <= t, times
    sqrt(horizon / vol_sample): only prices at or before t enter it; each distance is at least
    ``min_barrier_points`` x point_value (default one cent). A barrier is touched when
    the price reaches it (comparisons within a relative 1e-9, so exact hits on a price grid
    count). Trap level up = P0 + trap_share (up - P0), down = P0 - trap_share (P0 - down).
    ``label_end`` = time of the first touching tick, else ``end`` (the vertical barrier).

Precedence (first matching row wins; "adverse" is measured before the touch)

    ======================  =====================================================  =========
    decided by              condition                                              label
    ======================  =====================================================  =========
    upper barrier touched   (5-class) the trap level down was reached before       TRAP_DOWN
    upper barrier touched   path_quality and P0 - min >= max_adverse_share         FLAT
                            x (P0 - down)
    upper barrier touched   otherwise                                              UP
    lower barrier touched   (5-class) the trap level up was reached before         TRAP_UP
    lower barrier touched   path_quality and max - P0 >= max_adverse_share         FLAT
                            x (up - P0)
    lower barrier touched   otherwise                                              DOWN
    vertical (no touch)     (5-class) trap level up reached and close < P0         TRAP_UP
    vertical (no touch)     (5-class) trap level down reached and close > P0       TRAP_DOWN
    vertical (no touch)     not path_quality, min_return set, r > 0, r >= min_r    UP
    vertical (no touch)     not path_quality, min_return set, r < 0, r <= -min_r   DOWN
    vertical (no touch)     otherwise (a target never reached is FLAT)             FLAT
    ======================  =====================================================  =========

    (r = log(close / P0); the 3-class label skips the trap rows. Both trap rows of the
    vertical cannot hold at once: one needs a close below P0, the other above.)

No label (``label`` None, ``touch`` says why, ``label_end`` = t + horizon, barriers NaN)
    ``outside_session``: ``session_only`` and t before the open or at/after the close (or,
    without a session, at/after the symbol's last tick of the day); ``no_price``: no price
    known at or before t that day; ``no_vol``: vol mode without enough sampled returns
    (``vol_min_samples``; the first minutes after the open) or zero volatility;
    ``dropped_at_close``: ``at_close='drop'`` and the horizon crosses the close.

Close of the session
    The vertical barrier never crosses the close. An event whose horizon does
    (``t + horizon > close``) has ``truncated=True``, ``fwd_return`` NaN, and by default
    (``at_close='truncate'``) the label of its truncated path, which stays a valid
    "what happened until the close" label and keeps one row per event for the live model's
    last minutes; ``at_close='drop'`` leaves it unlabelled instead. Training may filter on
    ``truncated`` either way. Half-days are not known: the configured close is used.

Columns of :func:`triple_barrier` (one row per event, events' order and index)
    ``symbol``, ``event_timestamp``, ``label`` (str or None), ``label_end``, ``fwd_return``
    (log(price at t + horizon / P0), NaN if truncated, unlabelable for lack of a price, or
    outside the session; also given for ``no_vol`` events), ``touch`` (up / down / vertical or
    the no-label reason), ``mfe`` / ``mae`` (max favourable / adverse log excursion from P0
    until ``label_end``, relative to the decided direction: up for an upper touch or a close
    >= P0, down otherwise), ``barrier_up``, ``barrier_down``, ``ref_price``, ``sigma`` (vol
    mode, log-return sd over the horizon), ``truncated``.

:func:`make_labels` labels both horizons (columns suffixed ``_short`` / ``_long``, plus
``label_end`` = the later of the two, for purging); :func:`consensus_filter` keeps the rows
whose horizons agree.
"""

from __future__ import annotations

from tickml.labels._prices import PreparedPrices, prepare_prices
from tickml.labels.config import CLASSES_3, CLASSES_5, TOUCH_VALUES, LabelConfig
from tickml.labels.core import (
    LABEL_COLUMNS,
    consensus_filter,
    estimate_volatility,
    label_events,
    make_labels,
    triple_barrier,
)

__all__ = [
    "CLASSES_3",
    "CLASSES_5",
    "LABEL_COLUMNS",
    "TOUCH_VALUES",
    "LabelConfig",
    "PreparedPrices",
    "consensus_filter",
    "estimate_volatility",
    "label_events",
    "make_labels",
    "prepare_prices",
    "triple_barrier",
]
