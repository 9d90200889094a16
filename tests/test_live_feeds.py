"""Live feeds: replay of real equity ticks, the simulator, and the Binance websocket client end to
end against a local websocket server that serves the real captured frames."""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import json
import random
import re
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from prometheus_client import REGISTRY
from websockets.asyncio.server import serve

from live.binance_ws import Backoff, BinanceWebsocketFeed
from live.feeds import (
    Clock,
    ReplayFeed,
    SimulatorFeed,
    Ticks,
    boundaries,
    closing_boundary,
    plan_batches,
)
from tickml.features.config import FeatureConfig
from tickml.ingest import SourceSpec, load_day
from tickml.readers.binance import read_binance_lines
from tickml.simulator import SimConfig, simulate_day

DAY = dt.date(2013, 10, 8)
SORT = ["symbol", "ts", "seq"]


def _ns(s: pd.Series) -> np.ndarray:
    return s.to_numpy(dtype="datetime64[ns]").view(np.int64)


def _collect(events: list) -> tuple[pd.DataFrame, list[int], list[pd.DataFrame]]:
    frames = [e.frame for e in events if isinstance(e, Ticks)]
    clocks = [e.t_ns for e in events if isinstance(e, Clock)]
    return pd.concat(frames, ignore_index=True), clocks, frames


def _check_stream(events: list, config: FeatureConfig) -> None:
    """No batch straddles a clock, clocks cover every grid time from the first tick to the one
    closing the last tick, each symbol's ticks come in (ts, seq) order."""
    ticks, clocks, _ = _collect(events)
    assert clocks == sorted(set(clocks))
    last_clock = None
    pending: list[np.ndarray] = []
    for ev in events:
        if isinstance(ev, Ticks):
            ts = _ns(ev.frame["ts"])
            if last_clock is not None:
                assert ts.min() > last_clock, "a tick at or before a clock already yielded"
            pending.append(ts)
        else:
            for ts in pending:
                assert ts.max() <= ev.t_ns, "a batch straddles a boundary"
            pending, last_clock = [], ev.t_ns
    assert not pending, "ticks after the final clock"
    ts = _ns(ticks["ts"])
    expect = boundaries(config, int(ts.min()) - 1, closing_boundary(config, int(ts.max())))
    np.testing.assert_array_equal(np.array(clocks), expect)
    for _, g in ticks.groupby("symbol", sort=False):
        t, s = _ns(g["ts"]), g["seq"].to_numpy()
        assert np.all((t[1:] > t[:-1]) | ((t[1:] == t[:-1]) & (s[1:] > s[:-1])))


# ------------------------------------------------------------------------ grid and planning


@pytest.mark.unit
def test_boundaries_follow_the_local_grid() -> None:
    cfg = FeatureConfig(interval="15min")
    t0 = pd.Timestamp("2013-11-02 23:50", tz="America/New_York").value
    t1 = pd.Timestamp("2013-11-04 00:20", tz="America/New_York").value
    b = boundaries(cfg, t0, t1)
    assert np.all(np.diff(b) > 0) and b[0] > t0 and b[-1] <= t1
    # 2013-11-03 has 25 hours in New York: 100 quarter hours, aligned to local midnight
    local = pd.to_datetime(b, utc=True).tz_convert("America/New_York")
    assert ((local.minute % 15 == 0) & (local.second == 0)).all()
    assert len(b) == 1 + 100 + 1 and len(boundaries(cfg, t1, t0)) == 0
    assert closing_boundary(cfg, int(b[3])) == b[3] and closing_boundary(cfg, int(b[3]) + 1) == b[4]


@pytest.mark.unit
def test_plan_batches_never_straddles_and_covers() -> None:
    rng = np.random.default_rng(3)
    ts = np.sort(rng.integers(0, 10_000, 5_000))
    bounds = np.arange(100, 10_100, 700)
    starts, ends, pos = plan_batches(ts, bounds, batch_ticks=97, pace_ns=250)
    np.testing.assert_array_equal(starts[1:], ends[:-1])
    assert starts[0] == 0 and ends[-1] == len(ts) and np.all(ends - starts <= 97)
    for k, b in enumerate(bounds):  # the ticks before Clock(b) are exactly those <= b
        before = ends[pos[k] - 1] if pos[k] else 0
        assert before == np.searchsorted(ts, b, side="right")
    bucket = (ts - ts[0]) // 250  # pace buckets from the first tick
    for s, e in zip(starts, ends, strict=True):
        assert bucket[s] == bucket[e - 1]


# ------------------------------------------------------------------------ replay / simulator


@pytest.fixture(scope="module")
def equity_day(equity_root: Path) -> pd.DataFrame:
    return load_day(SourceSpec(kind="equity-ticks", path=equity_root), DAY).ticks


@pytest.mark.slow
def test_replay_real_equity_day(equity_day: pd.DataFrame) -> None:
    cfg = FeatureConfig()
    feed = ReplayFeed(equity_day, feature_config=cfg, batch_ticks=2000)
    events = list(feed)  # throughput is a benchmark's business, not a test's
    _check_stream(events, cfg)
    ticks, clocks, frames = _collect(events)
    assert max(len(f) for f in frames) == 2000 and len(clocks) > 900
    ts = _ns(ticks["ts"])
    assert np.all(np.diff(ts) >= 0)  # merged across symbols in time order
    got = ticks.sort_values(SORT, kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, equity_day.reset_index(drop=True))  # each tick once
    sub = list(ReplayFeed(equity_day, cfg, symbols=["IBM", "SPY"], max_seconds=600))
    t, _, _ = _collect(sub)
    assert set(t["symbol"]) == {"IBM", "SPY"}
    assert _ns(t["ts"]).max() < _ns(equity_day["ts"]).min() + 600 * 10**9


@pytest.mark.slow
def test_replay_speed_honors_market_time(equity_root: Path) -> None:
    ticks = load_day(SourceSpec(kind="equity-ticks", path=equity_root, symbols=("IBM",)), DAY)
    t = ticks.ticks
    open_ns = pd.Timestamp("2013-10-08 09:30", tz="America/New_York").value
    window = t[(_ns(t["ts"]) > open_ns) & (_ns(t["ts"]) <= open_ns + 12 * 10**9)]
    cfg = FeatureConfig(interval="5s")
    market_s = (_ns(window["ts"]).max() - _ns(window["ts"]).min()) / 1e9
    speed = 10.0
    feed = ReplayFeed(window, cfg, speed=speed)
    start, t_ref = time.perf_counter(), int(_ns(window["ts"]).min())
    events = []
    for ev in feed:
        due = (ev.t_ns if isinstance(ev, Clock) else int(_ns(ev.frame["ts"]).max())) - t_ref
        assert time.perf_counter() - start >= due / 1e9 / speed - 0.005, "yielded early"
        events.append(ev)
    elapsed = time.perf_counter() - start
    expected = (events[-1].t_ns - t_ref) / 1e9 / speed  # the final clock is due last
    # never early (exact); the upper bound only catches a pacing bug, not a slow machine
    assert market_s > 10 and expected <= elapsed <= expected + 5.0, (elapsed, expected)
    _check_stream(events, cfg)
    assert len(_collect(events)[0]) == len(window)


def test_replay_close_real_s_plays_each_close_at_real_time(equity_root: Path) -> None:
    """With ``close_real_s`` the seconds on each side of every close run at 1x, the rest at
    ``speed``: never early against that schedule (computed here independently), on time at the
    end, and the batches inside those seconds span at most one pace step (50 ms)."""
    ticks = load_day(SourceSpec(kind="equity-ticks", path=equity_root, symbols=("IBM",)), DAY)
    t = ticks.ticks
    open_ns = pd.Timestamp("2013-10-08 09:30", tz="America/New_York").value
    window = t[(_ns(t["ts"]) > open_ns) & (_ns(t["ts"]) <= open_ns + 12 * 10**9)]
    cfg = FeatureConfig(interval="5s")
    speed, real_s = 10.0, 0.5
    t_ref = int(_ns(window["ts"]).min())
    grid = boundaries(cfg, t_ref - 1, closing_boundary(cfg, int(_ns(window["ts"]).max())))

    def due_s(t_ns: int) -> float:
        slow, prev_end, r = 0, t_ref, int(real_s * 1e9)
        for b in grid.tolist():
            lo = max(b - r, prev_end, t_ref)
            slow += max(0, min(t_ns, b + r) - lo)
            prev_end = b + r
        return ((t_ns - t_ref - slow) / speed + slow) / 1e9

    feed = ReplayFeed(window, cfg, speed=speed, close_real_s=real_s)
    start = time.perf_counter()
    events = []
    for ev in feed:
        t_ns = ev.t_ns if isinstance(ev, Clock) else int(_ns(ev.frame["ts"]).max())
        assert time.perf_counter() - start >= due_s(t_ns) - 0.005, "yielded early"
        events.append(ev)
    elapsed = time.perf_counter() - start
    expected = due_s(events[-1].t_ns)
    assert len(grid) >= 3 and expected > 12 / speed + 3 * real_s * 0.9
    # the stretch after the final close is played too (the feed does not end at a close)
    assert expected + real_s <= elapsed <= expected + real_s + 5.0, (elapsed, expected)
    _check_stream(events, cfg)
    assert len(_collect(events)[0]) == len(window)
    for ev in events:
        if isinstance(ev, Ticks):
            ts = _ns(ev.frame["ts"])
            k = int(np.searchsorted(grid, ts.max()))
            after = k > 0 and ts.max() <= grid[k - 1] + real_s * 1e9
            if ts.min() > grid[k] - real_s * 1e9 or after:  # inside the 1x stretches
                assert ts.max() - ts.min() < 50_000_000
    with pytest.raises(ValueError, match="close_real_s"):
        ReplayFeed(window, cfg, speed=speed, close_real_s=-1)


@pytest.mark.unit
def test_simulator_feed_replays_simulate_day() -> None:
    sim = SimConfig(n_symbols=4, base_intensity=0.3)
    days = [dt.date(2024, 3, 4), dt.date(2024, 3, 5)]
    cfg = FeatureConfig(interval="5min")
    events = list(SimulatorFeed(sim, days, feature_config=cfg, batch_ticks=500))
    ticks, _, _ = _collect(events)
    expected = pd.concat([simulate_day(sim, d).ticks for d in days], ignore_index=True)
    got = ticks.sort_values(SORT, kind="stable").reset_index(drop=True)
    want = expected.sort_values(SORT, kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want)
    assert np.all(np.diff(_ns(ticks["ts"])) >= 0)  # day after day, in time order
    split = next(
        i
        for i, e in enumerate(events)
        if isinstance(e, Ticks) and e.frame["ts"].iloc[0].date() == days[1]
    )
    _check_stream(events[:split], cfg)
    _check_stream(events[split:], cfg)


@pytest.mark.unit
def test_replay_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="canonical columns"):
        ReplayFeed(pd.DataFrame({"symbol": ["A"]}))
    with pytest.raises(ValueError, match="speed"):
        ReplayFeed(simulate_day(SimConfig(n_symbols=1), DAY).ticks, speed=0)


# ------------------------------------------------------------------------ websocket


@pytest.mark.unit
def test_backoff_grows_with_jitter_and_resets() -> None:
    b = Backoff(0.5, 4.0, random.Random(1))
    delays = [b.next() for _ in range(6)]
    caps = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert all(c / 2 <= d <= c for d, c in zip(delays, caps, strict=True))
    assert len(set(delays)) == 6  # jittered
    b.reset()
    assert 0.25 <= b.next() <= 0.5


_STREAM = re.compile(r'^\{"stream":"([^"]+)"')


def _capture_lines(path: Path, limit: int | None = None) -> list[tuple[int, str, str]]:
    """(local ns, stream, frame text) of the stream frames of a capture (the first ``limit``)."""
    out = []
    with gzip.open(path, "rt") as fh:
        for line in fh:
            local, _, frame = line.rstrip("\n").partition(" ")
            m = _STREAM.match(frame)
            if m:
                out.append((int(local), m.group(1), frame))
                if limit is not None and len(out) >= limit:
                    break
    return out


class CaptureServer:
    """Serves captured frames (only the subscribed streams) over a real websocket.

    ``stall_at``: after that many frames the first connection goes silent (kept open).
    ``drop_at``: after that many frames (of the whole list) it waits until the client has read
    everything (ping/pong), then aborts the TCP connection; the next ``refuse`` handshakes get
    HTTP 503; a new connection resumes ``replay`` frames before where the last one stopped."""

    def __init__(
        self,
        frames: list[tuple[str | None, str | bytes]],
        drop_at: int | None = None,
        refuse: int = 0,
        replay: int = 0,
        stall_at: int | None = None,
    ) -> None:
        self.frames, self.drop_at, self.refuse, self.replay = frames, drop_at, refuse, replay
        self.stall_at = stall_at
        self.cursor, self.dropped, self.refused = 0, False, 0
        self.subscriptions: list[list[str]] = []
        self.sent: dict[str, int] = {}
        self.resent_from = 0
        self.total = 0  # frames sent, subscription replies included

    def process_request(self, connection, request):  # noqa: ANN001, ANN201
        if self.dropped and self.refused < self.refuse:
            self.refused += 1
            return connection.respond(503, "try again later\n")
        return None

    async def handler(self, ws) -> None:  # noqa: ANN001
        req = json.loads(await ws.recv())
        assert req["method"] == "SUBSCRIBE"
        streams = set(req["params"])
        self.subscriptions.append(sorted(streams))
        await ws.send(json.dumps({"result": None, "id": req["id"]}))
        self.total += 1
        i = self.resent_from = max(0, self.cursor - self.replay)
        while i < len(self.frames):
            stream, text = self.frames[i]
            if stream is None or stream in streams:
                await ws.send(text)
                self.sent[str(stream)] = self.sent.get(str(stream), 0) + 1
                self.total += 1
            i += 1
            self.cursor = max(self.cursor, i)
            if not self.dropped and i == self.drop_at:
                self.dropped = True
                await (await ws.ping())  # the client has read every frame before the ping
                ws.transport.abort()
                return
            if i == self.stall_at:
                self.stall_at = None
                await ws.wait_closed()  # silent until the client gives up on this connection
                return
        await ws.wait_closed()


async def _run_feed(
    server: CaptureServer, feed_kwargs: dict, n_expected: int, drain: bool = False
) -> tuple:
    """Run the feed against the server until it yielded ``n_expected`` ticks (``drain``: until
    it received every frame the server sent, then stop it, which flushes what it holds)."""
    events: list = []
    got = 0

    async def watch(feed: BinanceWebsocketFeed) -> None:
        while True:
            done = server.cursor == len(server.frames) and feed.stats["frames"] == server.total
            if got >= n_expected or (drain and done):
                feed.stop()
                return
            await asyncio.sleep(0.02)

    async with serve(
        server.handler, "127.0.0.1", 0, process_request=server.process_request, compression=None
    ) as srv:
        port = srv.sockets[0].getsockname()[1]
        feed = BinanceWebsocketFeed(url=f"ws://127.0.0.1:{port}/stream", **feed_kwargs)
        watcher = asyncio.create_task(watch(feed))
        async with asyncio.timeout(300):
            async for ev in feed.events():
                events.append(ev)
                if isinstance(ev, Ticks):
                    got += len(ev.frame)
        watcher.cancel()
    return feed, events


@pytest.mark.integration
@pytest.mark.slow
def test_websocket_feed_end_to_end_with_reconnect(binance_root: Path) -> None:
    caps = [
        _capture_lines(binance_root / f) for f in ("btcusdt_20240808.gz", "ethusdt_20240808.gz")
    ]
    merged = sorted((x for c in caps for x in c), key=lambda x: x[0])  # arrival order
    frames = [(s, text) for _, s, text in merged]
    streams = {"btcusdt@bookTicker", "btcusdt@trade", "ethusdt@bookTicker", "ethusdt@trade"}
    served = [f"{loc} {text}" for loc, s, text in merged if s in streams]
    expected = read_binance_lines(served, "capture")
    assert expected.quarantine.empty and expected.n_valid > 150_000
    drop_at = len(frames) // 3
    server = CaptureServer(frames, drop_at=drop_at, refuse=2, replay=300)
    name = f"binance-test-{uuid.uuid4().hex[:6]}"
    quarantine: list[pd.DataFrame] = []
    cfg = FeatureConfig(interval="10s", tz="UTC", session_open=None, session_close=None)
    kwargs = dict(
        symbols=("btcusdt", "ethusdt"),
        feature_config=cfg,
        name=name,
        initial_backoff_s=0.05,
        max_backoff_s=0.5,
        grace_ms=1000,
        seed=5,
        on_quarantine=quarantine.append,
    )
    feed, events = asyncio.run(_run_feed(server, kwargs, expected.n_valid))

    ticks, _, _ = _collect(events)
    got = ticks.sort_values(SORT, kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected.ticks)  # same ticks, seq, books, no duplicates
    _check_stream(events, cfg)
    # the server saw SUBSCRIBE twice (first connection, resumed one), served only those streams
    assert server.subscriptions == [sorted(streams)] * 2 and set(server.sent) == streams
    assert server.refused == 2
    resent = sum(1 for s, _ in frames[server.resent_from : drop_at] if s in streams)
    q = pd.concat(quarantine, ignore_index=True)
    assert resent > 100 and set(q["reason"]) == {"duplicate"} and len(q) == resent
    assert feed.stats["reconnects"] == 3 and feed.stats["connections"] == 2
    value = REGISTRY.get_sample_value("tickml_feed_reconnects_total", {"feed": name})
    assert value == 3


@pytest.mark.integration
def test_websocket_feed_quarantines_malformed_frames(binance_root: Path) -> None:
    cap = _capture_lines(binance_root / "btcusdt_20240808.gz", limit=3500)
    cap = [x for x in cap if x[1] in ("btcusdt@bookTicker", "btcusdt@trade")][:3000]
    lines: list[str | bytes] = [f"{loc} {text}" for loc, _, text in cap]
    frames: list[tuple[str | None, str | bytes]] = [(None, text) for _, _, text in cap]
    i_book = next(i for i, (_, s, _) in enumerate(cap) if i > 1000 and s.endswith("bookTicker"))
    book = json.loads(cap[i_book][2])
    d = book["data"]
    d["b"], d["a"] = d["a"], d["b"]  # the same update, crossed
    trade = json.loads(next(t for _, s, t in cap if s.endswith("trade")))
    trade["data"].update(t=10**15, E=trade["data"]["E"] + 86_400_000)  # one day in the future
    bad: list[str | bytes] = [
        b"\xff\xfe\x00garbage",
        "not json {",
        '{"stream":"btcusdt@bookTicker","data":{"u":1,"s":"BTCUSDT"}}',
        '{"stream":"btcusdt@trade","data":{"e":"trade","E":"soon","s":"BTCUSDT","t":5,'
        '"p":"1","q":"1","m":true}}',
        json.dumps(trade, separators=(",", ":")),
    ]
    crossed = json.dumps(book, separators=(",", ":"))
    frames[i_book], lines[i_book] = (None, crossed), f"{cap[i_book][0]} {crossed}"
    for k, b in enumerate(bad):  # spread through the stream
        at = 500 * (k + 1)
        frames.insert(at, (None, b))
        lines.insert(at, b if isinstance(b, bytes) else f"{cap[at][0]} {b}")
    expected = read_binance_lines(lines, "capture")
    reasons = sorted(expected.quarantine["reason"])
    assert reasons == sorted(["unparseable"] * 3 + ["wrong_type", "crossed_book", "out_of_order"])
    server = CaptureServer(frames)
    kwargs = dict(symbols=("btcusdt",), grace_ms=300, name="binance-test-bad")
    feed, events = asyncio.run(_run_feed(server, kwargs, expected.n_valid))
    ticks, _, _ = _collect(events)
    got = ticks.sort_values(SORT, kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected.ticks)
    q = pd.concat(list(feed.quarantined), ignore_index=True)
    assert sorted(q["reason"]) == reasons
    assert feed.stats["reconnects"] == 0 and feed.stats["frames"] == len(frames) + 1  # + reply
    _check_stream(events, feed.config)


@pytest.mark.integration
def test_websocket_feed_reconnects_when_the_connection_goes_quiet(binance_root: Path) -> None:
    cap = _capture_lines(binance_root / "ethusdt_20240808.gz", limit=2000)
    expected = read_binance_lines(
        [f"{loc} {t}" for loc, s, t in cap if s.endswith(("@bookTicker", "@trade"))], "capture"
    )
    server = CaptureServer([(s, t) for _, s, t in cap], stall_at=700)
    # grace longer than the stall: the silent first connection moves the wall-clock watermark
    # less than that, so the frames the server resumes with are not late
    kwargs = dict(
        symbols=("ethusdt",),
        idle_timeout_s=0.3,
        initial_backoff_s=0.05,
        grace_ms=5000,
        name="binance-test-quiet",
    )
    t0 = time.perf_counter()
    feed, events = asyncio.run(_run_feed(server, kwargs, expected.n_valid, drain=True))
    ticks, _, _ = _collect(events)
    got = ticks.sort_values(SORT, kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected.ticks)
    # the stall and, once everything was sent, the quiet server: both end in a reconnect
    assert feed.stats["reconnects"] >= 1 and server.subscriptions[1] == server.subscriptions[0]
    _check_stream(events, feed.config)
    assert time.perf_counter() - t0 < 10
    assert set(server.sent) == {"ethusdt@bookTicker", "ethusdt@trade"}  # no depth frames


@pytest.mark.unit
def test_watermark_follows_exchange_then_wall_time_and_rejects_late_ticks(
    binance_root: Path,
) -> None:
    cap = _capture_lines(binance_root / "btcusdt_20240808.gz", limit=1200)
    cap = [t for _, s, t in cap if s.endswith(("@bookTicker", "@trade"))][:1001]
    ex = np.array([json.loads(t)["data"]["E"] * 10**6 for t in cap])
    recv = ex - ex[0] + 10**18 + 5_000_000  # a receive clock far from the exchange's, 5 ms late
    cfg = FeatureConfig(interval="1s", tz="UTC", session_open=None, session_close=None)
    q: list[pd.DataFrame] = []
    feed = BinanceWebsocketFeed(feature_config=cfg, grace_ms=200, on_quarantine=q.append)
    feed._offset = None  # a connection starts
    for t, r in zip(cap[:1000], recv[:1000], strict=True):
        feed._on_frame(t, int(r))
    # frames flowing: watermark = newest exchange time - grace
    ev = feed._flush(now_ns=int(recv[999]))
    w = int(ex[:1000].max()) - 200_000_000
    ticks, clocks, _ = _collect(ev)
    assert clocks == list(boundaries(cfg, int(ex[:1000].min()) - 1, w)) and len(clocks) >= 2
    assert _ns(ticks["ts"]).max() <= w < int(ex[:1000].max())
    # quiet market, connection up: the wall clock moves the watermark (3 s later)
    ev = feed._flush(now_ns=int(recv[999]) + 3 * 10**9)
    later = [e.t_ns for e in ev if isinstance(e, Clock)]
    assert later == list(boundaries(cfg, w, int(ex[:1000].max()) + 2_800_000_000))
    assert (
        len(later) >= 2
        and len(ticks) + sum(len(e.frame) for e in ev if isinstance(e, Ticks)) == 1000
    )
    assert feed.buffer.frame is None  # everything released
    # a frame delivered after its time was released: quarantined, not yielded
    feed._on_frame(cap[1000], int(recv[999]) + 3 * 10**9 + 1)
    ev = feed._flush(now_ns=int(recv[999]) + 3 * 10**9 + 2)
    assert not any(isinstance(e, Ticks) for e in ev) and feed.stats["late"] == 1
    assert list(pd.concat(q)["reason"]) == ["out_of_order"]
    # disconnected: the wall clock proves nothing, no more clock markers
    feed._offset = None
    assert feed._flush(now_ns=int(recv[999]) + 60 * 10**9) == []


@pytest.mark.integration
def test_websocket_feed_iter_sync_for_threaded_callers(binance_root: Path) -> None:
    cap = _capture_lines(binance_root / "ethusdt_20240808.gz", limit=1500)
    lines = [f"{loc} {t}" for loc, s, t in cap if s.endswith(("@bookTicker", "@trade"))]
    expected = read_binance_lines(lines, "capture")
    server = CaptureServer([(s, t) for _, s, t in cap])
    ready, port = threading.Event(), []

    async def serve_until_done() -> None:
        async with serve(server.handler, "127.0.0.1", 0, compression=None) as srv:
            port.append(srv.sockets[0].getsockname()[1])
            ready.set()
            while not stop.is_set():
                await asyncio.sleep(0.02)

    stop = threading.Event()
    th = threading.Thread(target=asyncio.run, args=(serve_until_done(),), daemon=True)
    th.start()
    assert ready.wait(10)
    feed = BinanceWebsocketFeed(
        url=f"ws://127.0.0.1:{port[0]}/stream",
        symbols=("ethusdt",),
        grace_ms=200,
        name="binance-test-sync",
    )
    frames, t0 = [], time.perf_counter()
    it = feed.iter_sync()
    for ev in it:
        if isinstance(ev, Ticks):
            frames.append(ev.frame)
            if sum(map(len, frames)) >= expected.n_valid or time.perf_counter() - t0 > 60:
                break
    it.close()  # stops the feed's thread
    stop.set()
    th.join(10)
    got = pd.concat(frames).sort_values(SORT, kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected.ticks)
    names = [t.name for t in threading.enumerate()]
    assert "binance-test-sync-feed" not in names and not th.is_alive()


@pytest.mark.integration
def test_a_websocket_feed_with_no_exchange_stops_on_sigterm(tmp_path: Path) -> None:
    """``python -m live feed --source binance`` while nothing answers: the feed backs off and
    reconnects, and SIGTERM ends it within seconds with status 0 (it used to wait in the
    feed's queue for a frame that never came, until SIGKILL)."""
    import os
    import signal
    import subprocess
    import sys

    from _servers import free_port
    from conftest import REDIS_URL

    url = f"ws://127.0.0.1:{free_port()}/stream"  # nothing listens there
    env = {**os.environ, "TICKML_REDIS_URL": REDIS_URL, "TICKML_LOG_LEVEL": "INFO"}
    log = tmp_path / "feed.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "live", "feed", "--source", "binance", "--url", url],
            stderr=err, env=env, cwd=tmp_path,
        )
        try:
            deadline = time.monotonic() + 60
            while b'"starting"' not in log.read_bytes() and time.monotonic() < deadline:
                assert proc.poll() is None, log.read_text()[-2000:]
                time.sleep(0.1)
            time.sleep(2.0)  # connecting, refused, backing off
            assert proc.poll() is None, log.read_text()[-2000:]
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert rc == 0, log.read_text()[-2000:]
    assert time.monotonic() - t0 < 15
    assert "Traceback" not in log.read_text()


@pytest.mark.unit
def test_a_binance_capture_replay_reads_the_files_not_the_websocket(binance_root: Path) -> None:
    """``python -m live feed --source binance-replay --ticks DIR`` replays the capture files
    (it used to become ``--source binance``, the websocket feed); ``binance`` stays live."""
    from live.__main__ import _parser, feed_events
    from live.binance_ws import BinanceWebsocketFeed

    args = _parser().parse_args(["feed", "--source", "binance-replay", "--ticks",
                                 str(binance_root), "--day", "2024-08-08", "--max-seconds", "5"])
    events = list(feed_events(args, FeatureConfig()))
    assert events and any(isinstance(e, Ticks) for e in events)
    syms = set(_collect(events)[0]["symbol"])
    assert {"BTCUSDT", "ETHUSDT"} & syms
    live_args = _parser().parse_args(["feed", "--source", "binance"])
    gen = feed_events(live_args, FeatureConfig())  # a generator: nothing connects yet
    assert gen.gi_code is BinanceWebsocketFeed.iter_sync.__code__
    gen.close()
