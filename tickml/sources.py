"""The kinds of tick source, and the market a run on each one takes its days from.

A run has one market (:class:`tickml.market.Market`): the trading day every tick is stored
under (lake, Postgres tick store, quarantine) is the day the features, labels, folds and
backtest give it. Which market, written once here (:func:`source_market`):

* the run configuration's ``market`` section, when it has one: it is the truth, for every
  source;
* otherwise the source's own market: Binance trades 24/7, so its days are UTC days and it has
  no session (``Market.all_day("UTC")``); equity files, the simulator and canonical files
  follow the default market (New York, 09:30-16:00).

A configured market that cannot hold a source's days is an error, not a silent misalignment:
the equity files and the simulator deliver one day per call, and a tick of that delivery
outside the market's day (a ``market.tz`` in which the New York session falls on another date)
stops the ingest with one line (:func:`tickml.ingest.load_day`).
"""

from __future__ import annotations

from typing import Literal

from tickml.market import Market

SourceKind = Literal["simulator", "equity-ticks", "binance", "canonical"]
SOURCE_KINDS: tuple[str, ...] = ("simulator", "equity-ticks", "binance", "canonical")

#: sources read whole and split by day (tickml.days); the others are read one day at a time
WHOLE_SOURCE_KINDS: tuple[str, ...] = ("binance", "canonical")

#: out-of-order tolerance per source when none is given: Binance's bookTicker and trade streams
#: interleave up to ~30 ms out of exchange-time order; files and the simulator are sorted.
DEFAULT_TOLERANCE: dict[str, str] = {
    "simulator": "0s", "equity-ticks": "0s", "binance": "1s", "canonical": "0s",
}

#: the market of a source when the run configuration sets none (absent: the default market)
SOURCE_MARKETS: dict[str, Market] = {"binance": Market.all_day("UTC")}


def check_kind(kind: str) -> str:
    if kind not in SOURCE_KINDS:
        raise ValueError(f"unknown source {kind!r}; choose one of {SOURCE_KINDS}")
    return kind


def source_market(kind: str, configured: Market | None = None) -> Market:
    """The market of a run on source ``kind``: ``configured`` (the run configuration's market
    section) when given, else the source's own (:data:`SOURCE_MARKETS`, else the default)."""
    check_kind(kind)
    if configured is not None:
        return configured
    return SOURCE_MARKETS.get(kind) or Market()
