"""The execution model: ONE position book for the backtest and the live shadow ledger.

:func:`tickml.decision.decide` says LONG / SHORT / NONE per symbol; :class:`PositionBook` turns
those decisions into positions, fills and P&L. The backtest (:mod:`tickml.backtest`) calls
:meth:`PositionBook.step` once per timestamp with that timestamp's rows; the live ledger
(``live/ledger.py``) calls it once per boundary with the same columns, so the same rows give the
same fills (tested end to end on a real day). Vectorised over the cross-section; the state is
numeric arrays (``to_bytes``/``from_bytes``, an ``.npz``, no pickle).

Per cross-section (one timestamp), in this order:

1. **returns window** (only with a risk limit): the rows' last interval returns join the
   rolling window (returns are known at the row's time; a symbol without a row counts 0);
2. **mark to market** every held symbol with an executable row (finite mid > 0, finite spread
   >= 0) at its mid; the P&L of the move is the row's;
3. **exits** of held symbols with an executable row, checked on the row's mid, the first that
   applies names the exit, all at that mid: **stop-loss** (mid at or beyond entry -/+ the stop
   distance), **take-profit** (at or beyond entry +/- the take distance), **time exit** (the row
   is at or after entry + ``horizon``: the first row of that symbol stamped at or after it).
   Distances are price points (``exit_unit: points``, e.g. a 20-point stop) or multiples of
   the volatility known at entry (``volatility``: k x recent_vol x returns_unit x entry mid;
   no stop when that volatility was unknown). Rows are interval closes, so a stop fills at the
   first close beyond its level, not at the level: gaps are paid in full;
4. **signals** (``traded`` / ``fallback`` decisions on executable rows): same direction as the
   position -> **extend** the holding period to this row + horizon (size, stops and cost
   unchanged); opposite -> **reverse**: close, then open the other side; flat -> **open**;
   a signal on a row that is not executable is not executed (gate ``not_executable``);
5. **end of day**: a position never stays overnight: it is closed at the symbol's last
   executable row of the local day. The backtest knows that row from its data; the live ledger
   cannot know a symbol will stop printing, so at the session's last boundary it closes the
   rest at their last mark (the time, mid, spread and depth of their last executable row, i.e.
   the row the backtest closes them at). A position is opened at most once per row; an exit and
   a new entry can share a row (both pay costs).

**Sizing** of a new position (value at entry; quantity = value / mid): ``unit``: ``notional``
each; ``volatility``: ``risk_per_trade / (recent_vol x returns_unit)`` (a one-sigma interval
move costs ``risk_per_trade``), times ``|score|`` with ``strength_scaled``; no volatility known
-> refused (``refused_no_vol``). Capped per symbol at ``max_position_value``. Then the book's
limits, all measured with the open positions at their marks after this row's exits: the
**gross** (sum |value|) and **net** (|sum of signed values|) exposure caps and the portfolio
**risk limit**: the book's value at risk, ``z(var_confidence) x sqrt(var_horizon_bars) x`` the
standard deviation of its interval P&L over the last ``var_window`` intervals (the sample
covariance of the symbols' returns known at the time, applied without forming the matrix; the
window restarts each local day, the ``day`` the caller passes); fewer than ``var_min_obs``
intervals -> the risk is unknown and new positions are refused. When any of
them would be breached, every new position of the row is scaled by the same largest factor that
fits (``risk_action: scale``) or refused (``refuse``); a position scaled to at most
``min_position_value`` is refused. Each row's outcome is recorded as a gate (:data:`RISK_GATES`:
opened, extended, capped_symbol, scaled_gross/net/risk, refused_gross/net/risk, refused_no_vol,
not_executable), counted like the decision gates.

**Costs** per fill: ``qty x (spread / 2 + mid x fee_bps / 1e4)``, plus with ``slippage_bps``
``qty x mid x slippage_bps / 1e4 x qty / depth`` (depth: the displayed size on the side taken,
bid for a sale, ask for a purchase; unknown depth counts as qty = depth). P&L is in units of
``notional``; costs hit equity when paid.
"""

from tickml.execution.book import PositionBook
from tickml.execution.config import ExecutionConfig, sized_preset
from tickml.execution.records import (
    EOD,
    EXIT_REASONS,
    FILL_FIELDS,
    OPEN,
    TRADE_FIELDS,
    Position,
    Step,
)
from tickml.execution.sizing import RISK_GATES

__all__ = [
    "EOD",
    "EXIT_REASONS",
    "FILL_FIELDS",
    "OPEN",
    "RISK_GATES",
    "TRADE_FIELDS",
    "ExecutionConfig",
    "Position",
    "PositionBook",
    "Step",
    "sized_preset",
]
