"""An RTSP stream through PyAV over TCP, with open and read timeouts and reconnection.

A frozen server cannot hang the reader: PyAV aborts any blocking call after the open or read
timeout. A decode loop that ends (a killed server ends PyAV's loop with no exception), a
timeout or a network error is a disconnect: the source reconnects by its ``ReconnectPolicy``
and the timestamps go on from where they were, the outage shown as elapsed time, so that
the output stays one playable file. Passwords in the URL never reach logs or errors.

A connection starts with a burst: the frames FFmpeg buffered while it probed the stream (half a
second here; FFmpeg's default of about two would hold twice the frames), and those that waited
in the socket while the engine got ready. They arrive at once, faster than the camera makes
them, and are already late: of such a burst only the newest frame goes on, the others are
counted as ``stale`` (not as drops: inference did not fall behind), so a recording starts at
the present and the live drop policy is not set off by the connection itself.

A camera that stalls (frozen, its network gone) is said after --read-timeout, not twice that:
PyAV's read timeout interrupts FFmpeg, which then gives out the frame its H.264 parser held
back (the last one before the stall) instead of the error, and the next read waits the whole
timeout again. A read that lasted the timeout is therefore taken as the stall it is: its
frame goes on, dated by its stream time, and the connection ends.
"""
from __future__ import annotations

import logging
import threading
import time
from fractions import Fraction
from typing import Iterator
from urllib.parse import urlsplit

import av

from ..errors import InputError
from .base import Frame, Source, SourceInfo
from .color_frames import ColorFrames, av_thumbnail
from .reconnect import ReconnectPolicy, StreamLost
from .redact import redact_text, redact_url, url_secrets

log = logging.getLogger(__name__)

TIME_BASE = Fraction(1, 90000)  # the RTP video clock
PROBE_US = 500_000  # FFmpeg's analyzeduration: size and rate of 320x240 .. 1080p H.264 found, 0.7 s to open instead of 2
QUIET_AFTER = 5  # a connection that keeps failing is said this many times, then once a minute (a camera off all night)
QUIET_EVERY_S = 60.0
BURST_RATIO = 0.5  # a frame that arrives in less than this share of its stream-time gap is part of a burst
BURST_WINDOW_S = 10.0  # a connection's burst is looked for this long at most
STALL_FRAMES = 5  # a read that waits this many frame intervals (and at least STALL_MIN_S) is a stall in the status
STALL_MIN_S = 1.0


class BurstFilter:
    """The newest frame of a connection's opening burst, then every frame.

    ``offer(item, stream_time)`` returns what goes on now: nothing while the frame is held (the
    next arrival says whether it was late), the held frame when the next one arrives at the
    camera's pace (the burst is over; the held frame and the new one both go on), or nothing
    when the next one came in a rush (the held frame was stale and the new one is held). Once
    the burst is over, frames pass at once. ``flush()`` gives a frame still held."""

    def __init__(self, interval: float, clock=time.monotonic):
        self.interval = interval  # the nominal frame interval, for frames without a time
        self.clock = clock
        self.began = clock()
        self.held = None  # (item, arrival, stream time)
        self.over = False
        self.stale = 0

    def offer(self, item, stream_time: float | None) -> list:
        now = self.clock()
        if self.over:
            return [item]
        if self.held is None:
            self.held = (item, now, stream_time)
            return []
        held, arrived, held_time = self.held
        gap = self.interval if stream_time is None or held_time is None or stream_time <= held_time else stream_time - held_time
        if now - arrived < BURST_RATIO * gap and now - self.began < BURST_WINDOW_S:
            self.stale += 1
            self.held = (item, now, stream_time)
            return []
        self.over, self.held = True, None
        return [held, item]

    def flush(self) -> list:
        held, self.held = self.held, None
        return [held[0]] if held is not None else []


class LiveClock:
    """Output timestamps for a live stream: the stream's clock within a connection, wall-clock
    time across frames without a timestamp and across reconnections; always increasing.

    ``pts(stream_time, arrival)``: ``arrival`` is when the frame was read (``clock()``'s time).
    Across a gap the clock goes on from the wall time the last frame's output time stands for
    (its connection's first arrival plus its stream time since; its own arrival where that is
    earlier), not from its arrival: a frame that came late (the one FFmpeg gives out at a
    stall's read timeout, seconds after it was sent) would shorten the gap by its lateness and
    date every frame after the reconnection that much early."""

    def __init__(self, clock=time.monotonic) -> None:
        self.clock = clock
        self.last_out: float | None = None
        self.last_wall = 0.0  # the wall time ``last_out`` stands for
        self.anchor: tuple[float, float, float] | None = None  # (output time, stream time, arrival) of the connection's first frame
        self.last_pts = -1

    def new_connection(self) -> None:
        self.anchor = None

    def pts(self, stream_time: float | None, arrival: float | None = None) -> int:
        wall = self.clock() if arrival is None else arrival
        gap = 0.0 if self.last_out is None else self.last_out + (wall - self.last_wall)
        if stream_time is None:
            out = gap
        elif self.anchor is None:
            self.anchor = (gap, stream_time, wall)
            out = gap
        else:
            out0, stream0, wall0 = self.anchor
            out = out0 + (stream_time - stream0)
            wall = min(wall, wall0 + (stream_time - stream0))
        self.last_out, self.last_wall = out, wall
        pts = max(int(round(out / TIME_BASE)), self.last_pts + 1)
        self.last_pts = pts
        return pts


class RTSPSource(Source):
    """``rtsp://[user:password@]host[:port]/path``; live, so the engine may drop frames."""

    def __init__(self, url: str, open_timeout: float = 10.0, read_timeout: float = 5.0, policy: ReconnectPolicy | None = None, transport: str = "tcp", max_frames: int | None = None,
                 stop: threading.Event | None = None, color_frames: str = "colorize", **_ignored):
        super().__init__()
        self.url = url
        self.safe_url = redact_url(url)
        self._secrets = url_secrets(url)
        check_port(url, self.safe_url)
        self.open_timeout = float(open_timeout)
        self.read_timeout = float(read_timeout)
        self.policy = policy or ReconnectPolicy()
        self.transport = transport
        self.max_frames = max_frames
        # ``stop``: set by the caller's signal handler while the first connection is tried (PyAV
        # swallows a KeyboardInterrupt raised inside av.open): the next check ends the attempts
        self._stop = stop if stop is not None else threading.Event()
        self.disconnects = 0
        self.now = time.monotonic  # arrivals, reads and outages are timed by it (tests give a clock of their own)
        self.clock = LiveClock(lambda: self.now())
        # seconds spent waiting for the camera (reads, connections, backoff): the engine keeps
        # them out of the decode time
        self.waited_s = 0.0
        self._reading_since: float | None = None  # a read under way: since when
        self._down_since: float | None = None  # disconnected, until frames come again
        self._last_frame_at: float | None = None
        self.container = self._connect(initial=True)
        if self.container is None:  # stopped while connecting
            raise KeyboardInterrupt
        stream = self.container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        self.info = SourceInfo(
            kind="rtsp", description=self.safe_url, live=True, fps=Fraction(rate) if rate else None,
            time_base=TIME_BASE, width=stream.codec_context.width or None, height=stream.codec_context.height or None,
        )
        self.colors = ColorFrames(color_frames, name=self.safe_url, fps=self.info.fps)
        self.info.color_frames = self.colors.mode

    def _say(self, exc: BaseException) -> str:
        text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        return redact_text(text, (self.url, *self._secrets))

    def _open_once(self):
        # FFmpeg's socket timeout must let the connection take --open-timeout; PyAV's (open, read)
        # limits then hold the opening and each read to their own
        options = {"rtsp_transport": self.transport, "timeout": str(int(max(self.open_timeout, self.read_timeout) * 1e6)),
                   "analyzeduration": str(PROBE_US)}
        container = av.open(self.url, "r", options=options, timeout=(self.open_timeout, self.read_timeout))
        if not container.streams.video:
            container.close()
            raise InputError(f"RTSP source {self.safe_url}: the stream has no video track")
        container.streams.video[0].codec_context.thread_type = "AUTO"
        return container

    def _open_stoppably(self):
        """``_open_once`` in a thread of its own, so that a stop (Ctrl-C, SIGTERM, ``close()``)
        is answered at once, not at the end of --open-timeout (a camera that accepts the
        connection and never answers); None when stopped. An opening left behind closes what it
        opened when it ends."""
        box: dict = {}
        lock = threading.Lock()
        done = threading.Event()

        def attempt():
            try:
                result = ("container", self._open_once())
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                result = ("error", exc)
            with lock:
                if box.get("abandoned"):
                    if result[0] == "container":
                        _close_quietly(result[1])
                else:
                    box[result[0]] = result[1]
                done.set()

        def abandon() -> bool:
            with lock:
                if not done.is_set():
                    box["abandoned"] = True
                return box.get("abandoned", False)

        threading.Thread(target=attempt, name="rtsp-open", daemon=True).start()
        try:
            while not done.wait(0.05):
                if self._stop.is_set() and abandon():
                    return None
        except BaseException:  # a KeyboardInterrupt in the wait: the opening is left behind
            if not abandon():
                _close_quietly(box.get("container"))
            raise
        if "error" in box:
            raise box["error"]
        return box["container"]

    def _connect(self, initial: bool, delays=None):
        """Open the stream, retrying by the policy; InputError (first time) or StreamLost;
        None when the source is closed meanwhile."""
        delays = delays if delays is not None else self.policy.delays()
        tries = 0
        first = said = time.monotonic()
        while True:
            tries += 1
            began = time.monotonic()
            try:
                container = self._open_stoppably()
                if container is None:
                    return None
                if not initial:
                    self.reconnects += 1
                    log.warning("%s: reconnected (reconnection %d)", self.safe_url, self.reconnects)
                return container
            except InputError:
                raise
            except (av.error.FFmpegError, OSError) as exc:
                reason = self._say(exc)
                if time.monotonic() - began >= 0.9 * self.open_timeout:  # FFmpeg words a timeout as anything ("Invalid data found", ...)
                    reason = f"no answer within {self.open_timeout:g} s, --open-timeout"
                if self._stop.is_set():
                    return None
                refused = _refusal(exc, self.url)
                if refused and initial:  # the camera answered: a retry would be refused alike
                    raise InputError(f"RTSP source {self.safe_url}: the camera refused the stream ({reason}); {refused}") from None
                if refused:  # it worked before: changed on the camera (a new password) or a camera still starting; retried
                    reason += f": the camera refused the stream, {refused}"
                delay = next(delays, None)
                if delay is None:
                    retry = f" after {tries} attempts" if tries > 1 else ""
                    msg = f"RTSP source {self.safe_url}: cannot connect ({reason}){retry}"
                    if initial:
                        hint = " (--reconnect N retries)" if self.policy.attempts == 0 else ""
                        raise InputError(f"{msg}; expected a reachable RTSP server{hint}") from None
                    raise StreamLost(msg) from None
                if tries <= QUIET_AFTER or time.monotonic() - said >= QUIET_EVERY_S:
                    more = f" (attempt {tries}, {_span(time.monotonic() - first)} so far; said once a minute from now on)" if tries > QUIET_AFTER else ""
                    log.warning("%s: cannot connect (%s); retrying in %.1f s%s", self.safe_url, reason, delay, more)
                    said = time.monotonic()
                else:
                    log.debug("%s: cannot connect (%s); retrying in %.1f s", self.safe_url, reason, delay)
                if self._stop.wait(delay):
                    return None  # closed while waiting: the iteration ends quietly

    def _frames(self, container) -> Iterator[Frame]:
        """Frames of one connection; returns on a disconnect of any kind."""
        stream = container.streams.video[0]
        burst = BurstFilter(self._interval())
        packets = container.demux(stream)
        try:
            while True:
                began = self._reading_since = self.now()
                try:
                    packet = next(packets, None)
                finally:
                    self._reading_since = None
                    read_s = self.now() - began
                    self.waited_s += read_s
                if packet is None:
                    break
                if self._stop.is_set():
                    return
                # a read cut by the read timeout: FFmpeg gave out its parser's last frame instead of the error
                stalled = read_s >= self.read_timeout
                try:
                    frames = packet.decode()
                except av.error.ExitError:
                    raise
                except av.error.FFmpegError as exc:
                    self.decode_errors += 1
                    log.warning("%s: a packet failed to decode (%s); skipped", self.safe_url, self._say(exc))
                    frames = []
                for vf in frames:
                    arrival = self.now()
                    t = float(vf.pts * vf.time_base) if vf.pts is not None and vf.time_base else None
                    # converted now: a PyAV frame is not kept past the next decode
                    color = self.colors.pick(lambda: av_thumbnail(vf), lambda: vf.to_ndarray(format="rgb24"))
                    stale, over = burst.stale, burst.over
                    for item in burst.offer((vf.to_ndarray(format="gray"), t, color, arrival), t):
                        yield self._frame(*item)
                    self.stale += burst.stale - stale
                    if burst.over and not over and burst.stale:
                        log.info("%s: %d frames of the connection's opening burst left out (late on arrival); the newest went on",
                                 self.safe_url, burst.stale)
                if stalled:
                    for item in burst.flush():
                        yield self._frame(*item)
                    self._last_frame_at = began  # no data came since: the outage is that long, not from the late frame
                    self._lost(f"no data for {self.read_timeout:g} s, --read-timeout")
                    return
            for item in burst.flush():
                yield self._frame(*item)
            if not self._stop.is_set():
                self._lost(None)
        except (av.error.FFmpegError, OSError) as exc:
            # PyAV's read timeout interrupts FFmpeg, which then says "Immediate exit requested"
            self._lost(f"no data for {self.read_timeout:g} s, --read-timeout" if isinstance(exc, av.error.ExitError) else self._say(exc))
        finally:
            packets.close()

    def _lost(self, why: str | None) -> None:
        """The connection is over: counted, said, and the source down until frames come again."""
        self.disconnects += 1
        self._down_since = self.now()
        if why is None:
            log.warning("%s: the stream ended", self.safe_url)
        else:
            log.warning("%s: disconnected (%s)", self.safe_url, why)

    def _interval(self) -> float:
        """The nominal frame interval (s)."""
        info = getattr(self, "info", None)
        return float(1 / info.fps) if info is not None and info.fps else 0.04

    def _frame(self, gray, stream_time: float | None, color, arrival: float) -> Frame:
        self.frames_read += 1
        self._down_since, self._last_frame_at = None, self.now()
        return Frame(gray, index=self.frames_read - 1, pts=self.clock.pts(stream_time, arrival), time_base=TIME_BASE,
                     t_read=time.perf_counter(), color=color)

    def outage(self) -> tuple[str, float, str] | None:
        """Why no frames come, for status lines and ``/status.json``: (state, seconds without
        frames, what the run waits for), the state ``reconnecting`` from a disconnect until
        frames come again, ``stalled`` while a read has waited ``STALL_FRAMES`` frame intervals
        (at least ``STALL_MIN_S``) before the read timeout says so; None while frames come."""
        now, down, reading, last = self.now(), self._down_since, self._reading_since, self._last_frame_at
        if down is not None:
            return "reconnecting", now - (last if last is not None else down), f"reconnecting to {self.safe_url}"
        if reading is not None and now - reading >= max(STALL_MIN_S, STALL_FRAMES * self._interval()):
            return "stalled", now - (last if last is not None else reading), f"stalled: no data from {self.safe_url}"
        return None

    def __iter__(self) -> Iterator[Frame]:
        delays = None  # the reconnection budget of the current outage, renewed once frames flow
        while not self._stop.is_set():
            container, self.container = self.container, None
            if container is None:
                return
            before = self.frames_read
            try:
                for frame in self._frames(container):
                    yield frame
                    if self.max_frames is not None and self.frames_read >= self.max_frames:
                        return
            finally:
                _close_quietly(container)
            if self._stop.is_set():
                return
            began = self.now()
            try:
                if self.frames_read > before or delays is None:
                    delays = self.policy.delays()
                else:  # connected but no frame came: that counts as a failed attempt
                    delay = next(delays, None)
                    if delay is None:
                        raise StreamLost(f"RTSP source {self.safe_url}: connects but sends no frames (tried {self.policy.describe()})")
                    if self._stop.wait(delay):
                        return
                self.clock.new_connection()
                self.container = self._connect(initial=False, delays=delays)
            finally:
                self.waited_s += self.now() - began
            if self.container is None:
                return

    def close(self) -> None:
        """Stop soon: a blocking read returns within the read timeout, a backoff wait at once."""
        self._stop.set()
        container, self.container = getattr(self, "container", None), None
        _close_quietly(container)


def _refusal(exc: BaseException, url: str) -> str | None:
    """What to check when the camera answered and refused (401 / 403 / 404), else None."""
    if isinstance(exc, (av.error.HTTPUnauthorizedError, av.error.HTTPForbiddenError)):
        who = "the camera's user and password in the URL" if urlsplit(url).username else "a user and password in the URL (rtsp://USER:PASSWORD@HOST/...)"
        return f"expected {who}; in a URL / : @ % in them are written %2F %3A %40 %25 (a --config file's ${{NAME}} does this itself)"
    if isinstance(exc, av.error.HTTPNotFoundError):
        return "expected the camera's stream path (its manual or web page names it, e.g. /Streaming/Channels/101)"
    return None


def _span(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def check_port(url: str, safe_url: str) -> None:
    """An InputError naming ``safe_url`` when the URL's port is not a number from 0 to 65535
    (also what a password holding ``/`` reads as, unless written as ``%2F``)."""
    try:
        urlsplit(url).port
    except ValueError:
        raise InputError(f"RTSP source {safe_url}: the port is not a number from 0 to 65535; expected rtsp://[user:password@]host[:port]/path "
                         "(characters such as / @ : in a user name or password written as %2F %40 %3A)") from None


def _close_quietly(container) -> None:
    if container is None:
        return
    try:
        container.close()
    except (av.error.FFmpegError, OSError):
        pass
