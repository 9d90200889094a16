"""Microstructure features from canonical ticks: one definition, a batch and a streaming engine.

Definitions are declarative (:data:`FEATURES`, :func:`feature_defs`): each
:class:`FeatureDef` names an op applied to an input series over a window, grouped in families
(price, order_flow, microstructure, blocks, session, stationarity, cross_asset, regime) that
:class:`FeatureConfig` switches on. They compile to one program run by one set of numba
kernels: a per-tick O(1) state update (rings of recent values, day-cumulative sums,
one-second buckets, bars, session accumulators) and a row writer that derives every window
statistic from them (O(1) per feature after one pass over the recent values of the few inputs
that need order statistics; no running window sums, so nothing drifts). Batch
mode (:func:`compute_features`) and streaming mode (:class:`StreamingFeatureEngine`) call the
same compiled update and writer in the same order, so their rows are bit-identical.

Rows
    Interval mode (default, ``interval="1min"``): one row per symbol at each grid time ``b``
    (grid aligned to local midnight of ``config.market``), ``event_timestamp = b``, computed
    from the ticks with ``ts <= b`` (a tick stamped exactly at ``b`` belongs to the interval that
    closes at ``b``). Rows start at the first grid time at or after the symbol's first tick of
    the day; with ``session_only`` (default) only times in (open, close] get rows, up to the
    close even after the symbol's last tick; otherwise batch rows run to the grid time at or
    after the last tick. Intervals without ticks still get a row (``seconds_since_last_tick``
    and ``ticks_in_interval`` show staleness). Every-n mode (``every_n_ticks=n``): a row after
    every n-th tick of the day, stamped with that tick's ts, holding all ticks with that ts.
    ``last_tick_ts`` is the newest input tick of the row (never after ``event_timestamp``).

Days
    Each local day (midnight, midnight] starts from an empty state: rows never depend on an
    earlier day, so daily partitions are independent. Tick windows therefore warm up after the
    first ticks of the day (pre-market ticks count).

Missing values
    A feature is NaN only in the case its ``FeatureDef.nan_when`` states (tick windows before
    they fill, book features of a symbol without a book, session values before the first
    session tick, the cross-asset family without leader data), and every price-based feature
    is NaN while the symbol has no reference price yet (no two-sided book and no trade today).
    Book fields that are null on a tick (trades-only symbols, trades during a crossed quote)
    leave the last known book in place. Ratios with a zero denominator are 0; no feature is
    ever infinite.
"""

from __future__ import annotations

from tickml.features._cache import ensure_fresh_cache

ensure_fresh_cache()

from tickml.features.batch import compute_features  # noqa: E402
from tickml.features.catalog import feature_defs, feature_names  # noqa: E402
from tickml.features.config import ALL_FAMILIES, FeatureConfig  # noqa: E402
from tickml.features.defs import FeatureDef  # noqa: E402
from tickml.features.fracdiff import choose_fracdiff_d, fracdiff, fracdiff_weights  # noqa: E402
from tickml.features.pit import PIT_COLUMNS, pit_violations, with_pit_columns  # noqa: E402
from tickml.features.stream import StreamingFeatureEngine  # noqa: E402

#: The definitions of the default configuration.
FEATURES: list[FeatureDef] = feature_defs(FeatureConfig())

__all__ = [
    "ALL_FAMILIES",
    "FEATURES",
    "PIT_COLUMNS",
    "FeatureConfig",
    "FeatureDef",
    "StreamingFeatureEngine",
    "choose_fracdiff_d",
    "compute_features",
    "feature_defs",
    "feature_names",
    "fracdiff",
    "fracdiff_weights",
    "pit_violations",
    "with_pit_columns",
]
