"""The vocabulary of the declarative feature table: :class:`FeatureDef` and its builders.

The families (:mod:`tickml.features.families`, :mod:`tickml.features.families_ext`) write the
table with these; :mod:`tickml.features.catalog` assembles it for a configuration.

A definition names an op (a statistic the compiled snapshot kernel knows), the input series
it reads, a window and a scale. Both engines run the same compiled program built from these
definitions, so there is exactly one definition of every feature.

Inputs of the **event ring** (one value per tick that has a reference price; reference price
= mid of the last known two-sided book, else the last trade price):
``lm`` log price, ``r`` log return since the previous tick, ``vol`` trade size (0 on quotes),
``svt``/``svq`` size signed by the tick rule / by the quote rule (Lee-Ready: against the mid of
the book before the trade, tick rule at the mid or without a book), ``spread`` (bps of mid),
``imb`` book imbalance (bid_size - ask_size) / (bid_size + ask_size), ``mdev`` microprice - mid
(bps), ``ofi`` order-flow imbalance (Cont-Kukanov-Stoikov, shares), ``depth`` bid_size +
ask_size, ``bacc``/``aacc`` size change at an unchanged bid / ask price (+ accumulation,
- vanishing), ``qflag`` 1 if the book changed, ``pchg`` number of sides whose price changed,
``flick`` number of side price changes back to the price before that side's previous change,
``widen`` sign of the spread change, ``qdrift`` (sign(d bid) + sign(d ask)) / 2, ``lvol`` size
of a large trade. **Trade ring** (one value per trade): ``size``, ``ssv`` quote-rule signed
size, ``buy`` 1 if buyer-initiated, ``lvol``/``lsv`` size / signed size if large. **One-second
buckets**: ``nev`` ticks, ``ntr`` trades, ``nq`` book changes, ``vol``, ``svq``, ``ofi``,
``r2`` squared returns.
"""

from __future__ import annotations

from dataclasses import dataclass

BPS = 1e4


@dataclass(frozen=True)
class FeatureDef:
    """One feature: ``name -> op(inputs over window) * scale`` with a one-line description."""

    name: str
    family: str
    description: str
    op: str
    ring: str = ""  # "event", "trade" or "" (clock-based ops)
    a: str = ""
    b: str = ""
    c: str = ""
    d: str = ""
    start: int = 0
    end: int = 0
    scale: float = 1.0
    refs: tuple[str, ...] = ()
    nan_when: str = ""  # when the value is NaN ("" = never)


def _ev_warm(n: int) -> str:
    return f"fewer than {n} priced ticks today"


_NO_BOOK = "no two-sided book seen today (trades-only symbols)"


def ring_def(
    name: str,
    family: str,
    description: str,
    op: str,
    a: str,
    window: tuple[int, int],
    *,
    b: str = "",
    c: str = "",
    d: str = "",
    scale: float = 1.0,
    book: bool = False,
) -> FeatureDef:
    """A statistic over ages [start, end) of the event ring (NaN until end + 1 ticks)."""
    s, e = window
    nan = _ev_warm(e + 1) + (f"; {_NO_BOOK}" if book else "")
    return FeatureDef(name, family, description, op, "event", a, b, c, d, s, e, scale, (), nan)


def trade_def(
    name: str,
    family: str,
    description: str,
    op: str,
    a: str,
    n: int,
    *,
    b: str = "",
    c: str = "",
    d: str = "",
) -> FeatureDef:
    """A statistic over the last n trades (NaN until n trades today)."""
    return FeatureDef(
        name,
        family,
        description,
        op,
        "trade",
        a,
        b,
        c,
        d,
        0,
        n,
        1.0,
        (),
        f"fewer than {n} trades today",
    )


def clock_def(
    name: str,
    family: str,
    description: str,
    op: str,
    *,
    a: str = "",
    b: str = "",
    start: int = 0,
    end: int = 0,
    scale: float = 1.0,
    nan_when: str = "",
) -> FeatureDef:
    """A feature on the state scalars, one-second buckets, bars, session or leader."""
    return FeatureDef(
        name, family, description, op, "", a, b, "", "", start, end, scale, (), nan_when
    )


def ref_def(
    name: str, family: str, description: str, op: str, refs: tuple[str, ...], nan_when: str
) -> FeatureDef:
    """A combination of earlier features of the same family."""
    return FeatureDef(name, family, description, op, refs=refs, nan_when=nan_when)
