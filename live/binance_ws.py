"""Binance websocket feed: combined-stream frames -> canonical tick batches and clock markers.

One asyncio task reads the socket (``websockets``): it connects, sends ``SUBSCRIBE`` for
``<symbol>@<stream>`` of every symbol and stream, stamps each frame with its receive time and
decodes it with the project's reader (:class:`tickml.readers.binance.BinanceBookState`, the
same code and the same ``seq`` as :func:`~tickml.readers.binance.read_binance_capture`). Every
``batch_ms`` :meth:`BinanceWebsocketFeed.events` validates what arrived
(:func:`tickml.schema.validate_ticks`) and releases, in ``(ts, seq)`` order, the ticks at or
below the watermark, cut at the grid times of ``feature_config`` with a ``Clock`` after each.

Time. ``ts`` is the exchange event time ``E``. The watermark is ``max(newest ts seen, now +
offset) - grace``, with ``offset`` the largest ``E - receive time`` of the current connection
(the exchange clock as seen with the lowest latency): the exchange time drives it while frames
flow and the wall clock carries it through quiet spells. ``grace_ms`` (default 500 ms) bounds
how late a tick may be: the bookTicker and trade streams interleave up to ~36 ms out of ``E``
order and arrive up to ~57 ms behind the best latency in the captures. A tick at or below a
watermark already released is quarantined ``out_of_order`` (``Clock(t)`` means every tick with
``ts <= t`` was yielded). During an outage the offset is unknown and only exchange time moves
the watermark: no clock marker claims a stretch no connection observed. A tick more than
``max_ahead_s`` ahead of the clock estimate is quarantined (a bogus future time would otherwise
push the watermark ahead and make every later tick late).

Sequence numbers (see the reader's docstring): per symbol, ``max(prev + 1, u << 16)`` for a
bookTicker and ``prev + 1`` for a trade, strictly increasing across both streams in arrival
order. The state (seq, last book, recently seen update / trade ids) lives for the feed, not the
connection, so frames replayed after a reconnect are quarantined as ``duplicate`` and seq goes on
increasing. After an outage the first trades carry the book from before it until a bookTicker
arrives (Binance replays nothing; what happened during the outage is lost). Ticks leave in
``(ts, seq)`` order, as the batch path sorts them; seq follows arrival and ts the exchange clock,
so a symbol's seq steps back in that order now and then (770 of 87,402 BTCUSDT futures ticks):
consumers must de-duplicate on (symbol, seq) as a set, never as a per-symbol high-water mark.

Non-async callers iterate :meth:`BinanceWebsocketFeed.iter_sync` (the feed in a thread).

Reconnects: exponential backoff with jitter (``initial_backoff_s`` doubling up to
``max_backoff_s``, times a random factor in [0.5, 1]); back to the initial delay after a
connection that lasted ``healthy_s``. Every attempt after the first counts in
``live.metrics.FEED_RECONNECTS``. A connection quiet for ``idle_timeout_s`` (up to 1 s more) is
dropped and replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import random
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

from live.feeds import FeedEvent, ReleaseBuffer, Ticks
from live.metrics import DUPLICATES, ERRORS, FEED_RECONNECTS, ticks_processed
from tickml.features.config import FeatureConfig
from tickml.market import Market
from tickml.readers.binance import BinanceBookState, FrameError
from tickml.redact import redact
from tickml.schema import TICK_COLUMNS, make_quarantine, validate_ticks

log = logging.getLogger(__name__)

CRYPTO_FEATURES = FeatureConfig(market=Market.all_day("UTC"), leader=None)


class Backoff:
    """Exponential backoff with jitter: ``initial * 2**k`` capped at ``maximum``, x U(0.5, 1)."""

    def __init__(self, initial: float, maximum: float, rng: random.Random | None = None) -> None:
        self.initial, self.maximum = float(initial), float(maximum)
        self.rng = rng or random.Random()
        self.current = self.initial

    def next(self) -> float:
        delay = self.current * (0.5 + 0.5 * self.rng.random())
        self.current = min(self.maximum, self.current * 2)
        return delay

    def reset(self) -> None:
        self.current = self.initial


class BinanceWebsocketFeed:
    """A live feed of Binance combined streams (``bookTicker`` and ``trade``) for symbols."""

    def __init__(
        self,
        url: str = "wss://fstream.binance.com/stream",
        symbols: Sequence[str] = ("btcusdt",),
        streams: Sequence[str] = ("bookTicker", "trade"),
        feature_config: FeatureConfig | None = None,
        batch_ms: int = 100,
        max_backoff_s: float = 30.0,
        initial_backoff_s: float = 0.5,
        healthy_s: float = 10.0,
        grace_ms: int = 500,
        max_ahead_s: float = 5.0,
        idle_timeout_s: float | None = 60.0,
        batch_ticks: int = 2000,
        on_quarantine: Callable[[pd.DataFrame], None] | None = None,
        name: str = "binance",
        seed: int | None = None,
        compression: str | None = None,
    ) -> None:
        if not symbols or not streams:
            raise ValueError("give at least one symbol and one stream")
        self.url = url
        self.streams = [f"{s.lower()}@{k}" for s in symbols for k in streams]
        self.config = feature_config or CRYPTO_FEATURES
        self.batch_s = batch_ms / 1000.0
        self.grace_ns = int(grace_ms) * 1_000_000
        self.max_ahead_ns = int(max_ahead_s * 1e9)
        self.idle_timeout_s = idle_timeout_s
        self.healthy_s = healthy_s
        self.backoff = Backoff(initial_backoff_s, max_backoff_s, random.Random(seed))
        self.on_quarantine = on_quarantine
        self.name = name
        self.compression = compression  # "deflate" offers permessage-deflate (CPU for bytes)
        #: quarantine batches kept when no callback is given (the most recent 1000)
        self.quarantined: deque[pd.DataFrame] = deque(maxlen=1000)
        self.state = BinanceBookState()
        keys = ("frames", "ticks", "quarantined", "duplicates", "late", "connections")
        self.stats = dict.fromkeys((*keys, "reconnects"), 0)
        self._stop = asyncio.Event()
        self._rows: list[dict[str, Any]] = []
        self._pos: list[int] = []
        self._bad: list[tuple[int, str, str, str | None, int | None]] = []
        self.buffer = ReleaseBuffer(self.config, batch_ticks)
        self._offset: int | None = None  # max(ts - receive ns) of the current connection
        self._newest: int | None = None  # newest exchange ts seen
        self._req_id = 0

    # ---- public -------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask :meth:`events` to finish: it yields what it holds, a final Clock, and returns.
        (Call from the event loop's thread; use ``loop.call_soon_threadsafe`` otherwise.)"""
        self._stop.set()

    async def events(self) -> AsyncIterator[FeedEvent]:
        """Connect (and reconnect) and yield tick batches and clock markers until stopped
        (then the ticks still held and a final Clock). A feed object runs once."""
        reader = asyncio.create_task(self._connections(), name=f"{self.name}-reader")
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.batch_s):
                        await self._stop.wait()
                final = self._stop.is_set()
                if final:
                    reader.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await reader
                for ev in self._flush(final):
                    yield ev
                if final:
                    return
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    def iter_sync(self, stop: threading.Event | None = None) -> Iterator[FeedEvent]:
        """The events for non-async callers: the feed runs in a daemon thread with its own
        event loop; closing the iterator (or leaving the loop) stops it and joins the thread,
        and so does ``stop`` (checked every 0.2 s while no event comes: a worker told to stop
        while the exchange is unreachable ends instead of waiting for the next frame).
        Events queue up unbounded while the caller is busy (the socket keeps being read)."""
        q: queue.SimpleQueue[Any] = queue.SimpleQueue()
        end = object()
        loop: list[asyncio.AbstractEventLoop] = []

        async def pump() -> None:
            loop.append(asyncio.get_running_loop())
            async for ev in self.events():
                q.put(ev)

        def run() -> None:
            try:
                asyncio.run(pump())
            except BaseException as exc:  # handed to the caller's thread
                q.put(exc)
            q.put(end)

        thread = threading.Thread(target=run, name=f"{self.name}-feed", daemon=True)
        thread.start()
        try:
            while stop is None or not stop.is_set():
                try:
                    item = q.get(timeout=0.2)
                except queue.Empty:
                    continue
                if item is end:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            if loop and thread.is_alive():
                with contextlib.suppress(RuntimeError):  # the loop already closed
                    loop[0].call_soon_threadsafe(self.stop)
            thread.join(timeout=10)

    # ---- connection ---------------------------------------------------------------------
    async def _connections(self) -> None:
        first = True
        while not self._stop.is_set():
            if not first:
                self.stats["reconnects"] += 1
                FEED_RECONNECTS.labels(feed=self.name).inc()
            first = False
            started = time.monotonic()
            try:
                async with connect(
                    self.url, open_timeout=10, max_size=1 << 22, compression=self.compression
                ) as ws:
                    self.stats["connections"] += 1
                    self._req_id += 1
                    msg = {"method": "SUBSCRIBE", "params": self.streams, "id": self._req_id}
                    await ws.send(json.dumps(msg))
                    log.info("%s: connected to %s: %s", self.name, redact(self.url), msg)
                    await self._read(ws)
                reason = "closed by the server"
            except (OSError, TimeoutError, WebSocketException) as exc:
                reason = f"{type(exc).__name__}: {exc}"
            except Exception as exc:  # a bug must not kill the feed: log it and reconnect
                log.exception("%s: unexpected error in the reader", self.name)
                ERRORS.labels(worker=self.name, kind="reader").inc()
                reason = f"{type(exc).__name__}: {exc}"
            finally:
                self._offset = None  # no live connection: the wall clock proves nothing
            if time.monotonic() - started >= self.healthy_s:
                self.backoff.reset()
            delay = self.backoff.next()
            log.warning("%s: connection lost (%s), retry in %.2f s", self.name, reason, delay)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stop.wait()

    async def _read(self, ws: Any) -> None:
        loop = asyncio.get_running_loop()
        idle = self.idle_timeout_s
        async with asyncio.timeout(None) as deadline:
            moved = -1e18
            while True:
                if idle is not None and loop.time() - moved > 1.0:  # not a timer per frame
                    moved = loop.time()
                    deadline.reschedule(moved + idle + 1.0)
                msg = await ws.recv()
                self._on_frame(msg, time.time_ns())

    # ---- decoding -----------------------------------------------------------------------
    def _on_frame(self, msg: str | bytes, recv_ns: int) -> None:
        self.stats["frames"] += 1
        pos = self.stats["frames"]
        raw = msg if isinstance(msg, str) else bytes(msg).decode("utf-8", "replace")
        try:
            text = msg.decode("utf-8") if isinstance(msg, bytes | bytearray) else str(msg)
            text = text.strip()
            if not text.startswith("{"):
                raise FrameError("unparseable", "frame is not a JSON object")
            if not text.startswith('{"stream"') and self._is_reply(text):
                return
            ticks = self.state.process(text, recv_ns)
        except UnicodeDecodeError as exc:
            self._bad.append((pos, "unparseable", f"invalid UTF-8 ({exc}): {raw}", None, None))
            return
        except FrameError as exc:
            self._bad.append((pos, exc.reason, f"{exc}: {raw}", None, None))
            if exc.reason == "duplicate":
                self.stats["duplicates"] += 1
                DUPLICATES.labels(worker=self.name).inc()
            return
        except Exception as exc:  # never let one frame stop the feed
            log.exception("%s: frame %d could not be decoded", self.name, pos)
            self._bad.append((pos, "unparseable", f"{type(exc).__name__}: {raw}", None, None))
            return
        for t in ticks:
            ts = t["ts"].value
            off = ts - recv_ns
            if self._offset is not None and off > self._offset + self.max_ahead_ns:
                why = f"ts {ts} more than {self.max_ahead_ns} ns ahead of the exchange clock"
                self._bad.append((pos, "out_of_order", f"{why}: {raw}", t["symbol"], ts))
                continue
            if self._offset is None or off > self._offset:
                self._offset = off
            if self._newest is None or ts > self._newest:
                self._newest = ts
            self._rows.append(t)
            self._pos.append(pos)

    def _is_reply(self, text: str) -> bool:
        """Subscription replies (``{"result": null, "id": n}`` / ``{"error": ...}``)."""
        try:
            obj = json.loads(text)
        except ValueError:
            return False
        if not isinstance(obj, dict) or not ("result" in obj or "error" in obj):
            return False
        if "error" in obj:
            log.error("%s: subscription refused: %s", self.name, str(obj["error"])[:500])
            ERRORS.labels(worker=self.name, kind="subscribe").inc()
        return True

    # ---- batching -----------------------------------------------------------------------
    def _watermark(self, now_ns: int) -> int | None:
        wall = None if self._offset is None else now_ns + self._offset
        cands = [c for c in (self._newest, wall) if c is not None]
        return max(cands) - self.grace_ns if cands else None

    def _take_new(self) -> None:
        """Validate the ticks decoded since the last call into the release buffer."""
        if not self._rows:
            return
        frame = pd.DataFrame.from_records(self._rows, columns=list(TICK_COLUMNS))
        pos = np.asarray(self._pos, dtype=np.int64)
        self._rows, self._pos = [], []
        frame["ts"] = pd.to_datetime(frame["ts"], utc=True).astype("datetime64[ns, UTC]")
        ts = frame["ts"].to_numpy(dtype="datetime64[ns]").view(np.int64)
        late = self.buffer.late(ts)
        for i in np.flatnonzero(late):
            why = f"late: ts <= {self.buffer.released}, a watermark already released"
            sym = str(frame.at[i, "symbol"])
            self._bad.append((int(pos[i]), "out_of_order", why, sym, int(ts[i])))
        self.stats["late"] += int(late.sum())
        frame, pos = frame[~late].reset_index(drop=True), pos[~late]
        tol = pd.Timedelta(self.grace_ns, "ns")
        res = validate_ticks(frame, self.name, positions=pos, out_of_order_tolerance=tol)
        self._quarantine(res.quarantine)
        self.buffer.add(res.ticks)

    def _quarantine(self, q: pd.DataFrame | None = None) -> None:
        parts = [] if q is None or q.empty else [q]
        if self._bad:
            pos, reason, raw, sym, ts = zip(*self._bad, strict=True)
            self._bad = []
            tsv = pd.to_datetime(pd.Series([pd.NaT if t is None else t for t in ts]), utc=True)
            raws = [r[:1000] for r in raw]
            q0 = make_quarantine(self.name, list(pos), list(reason), raws, list(sym), tsv)
            parts.insert(0, q0)
        for part in parts:
            self.stats["quarantined"] += len(part)
            for why, n in part["reason"].value_counts().items():
                ERRORS.labels(worker=self.name, kind=f"quarantine_{why}").inc(int(n))
            (self.on_quarantine or self.quarantined.append)(part)

    def _flush(self, final: bool = False, now_ns: int | None = None) -> list[FeedEvent]:
        """Validate what arrived, release what the watermark passed (final: everything)."""
        now = time.time_ns() if now_ns is None else now_ns
        self._take_new()
        self._quarantine()
        w = self._newest if final else self._watermark(now)
        if w is None:
            return []
        events = self.buffer.release(w, now, final=final)
        n = sum(len(e.frame) for e in events if isinstance(e, Ticks))
        self.stats["ticks"] += n
        ticks_processed(self.name, n)
        return events
