"""Watch the colorized frames in a browser: ``-o http://127.0.0.1:8080``.

A small HTTP server (standard library, its own threads) serves the newest frame as Motion JPEG,
which every browser shows: ``/`` a page with the picture and the run's figures, ``/stream.mjpg``
the stream (multipart/x-mixed-replace), ``/frame.jpg`` the newest frame once (for scripts and
snapshots). For machines without a display (``--preview`` needs one), and for watching from
another machine. For monitoring: ``/status.json`` (the engine's counters: frames, FPS, drops,
reconnects, decode errors, a live source's ``state`` and, while it is down, ``waiting``: what the
run waits for; and the age of the newest frame) and ``/health`` (200 while frames
arrive, 503 once none has for ``STALE_S`` seconds: a camera gone dark, a stream lost).

The engine is never held up by a viewer: ``write()`` only keeps a reference to the newest image;
the first viewer's thread to ask for a frame encodes it, once, for all viewers (the others wait
for that JPEG), and a slow viewer skips frames. Nothing is encoded while nobody watches. The server listens where the URL
says: ``127.0.0.1`` for this machine only, ``0.0.0.0`` for every network it is on.
``http://USER:PASSWORD@HOST:PORT`` asks browsers and scripts for that user and password (HTTP
Basic authentication) for everything but ``/health``, which says no more than whether frames
arrive (not what the run waits for, which names the camera); plain HTTP carries the password readable to anyone on the network path, so across
networks put the view behind a TLS proxy.
"""
from __future__ import annotations

import base64
import hmac
import html
import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

import cv2
import numpy as np

from ..errors import InputError
from .base import Frame, Sink
from .compose import as_displayed
from .redact import printable as _printable, redact_url

log = logging.getLogger(__name__)

BOUNDARY = "nirvisionframe"
JPEG_QUALITY = 85
WAIT_S = 1.0  # a viewer waiting for a frame looks again this often (so close() ends it)
VIEWER_TIMEOUT_S = 20.0
STALE_S = 10.0  # /health: no new frame for this long is unhealthy
PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>nirvision: {title}</title>
<style>body{{margin:0;background:#111;color:#ccc;font:14px sans-serif}}img{{display:block;max-width:100vw;max-height:92vh;margin:auto}}p{{text-align:center}}</style>
</head><body><img src="/stream.mjpg" alt="colorized video"><p>{title}: <span id="s">...</span></p>
<script>
async function poll(){{try{{const s=await (await fetch("/status.json",{{cache:"no-store"}})).json();
document.getElementById("s").textContent=s.waiting?s.waiting:`${{s.fps}} fps, ${{s.frames_out}} frames, ${{s.dropped}} dropped, ${{s.reconnects}} reconnects`
+(s.healthy?"":` - no frame for ${{s.last_frame_age_s===null?"a while":s.last_frame_age_s+" s"}}`);}}catch(e){{document.getElementById("s").textContent="run ended";}}}}
poll();setInterval(poll,2000);
</script></body></html>"""


def parse_http_spec(spec: str) -> tuple[str, int, tuple[str, str] | None]:
    """``http://[USER:PASSWORD@]HOST:PORT[/]`` -> (host, port, (user, password) or None);
    InputError naming the output (its password masked) otherwise."""
    parts = urlsplit(spec)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme != "http" or not parts.hostname or port is None or parts.path not in ("", "/") or parts.query:
        raise InputError(f"output {redact_url(spec)}: expected http://HOST:PORT to watch in a browser (127.0.0.1 for this machine only, "
                         "0.0.0.0 for all its networks; port 0 picks a free one; http://USER:PASSWORD@HOST:PORT asks for them)")
    login = None
    if parts.username is not None or parts.password is not None:
        user, password = unquote(parts.username or ""), unquote(parts.password or "")
        if not user or not password or ":" in user:
            raise InputError(f"output {redact_url(spec)}: expected a user and a password, http://USER:PASSWORD@HOST:PORT "
                             "(a ':' in the user, or '@', '/', '#', '?' in either, written as %3A, %40, %2F, %23, %3F)")
        login = (user, password)
    return parts.hostname, port, login


def printable(text: str, limit: int = 200) -> str:
    """A client's request text for the log: control characters (terminal escapes) escaped, cut."""
    return _printable(text, limit)


def basic_credentials(user: str, password: str) -> bytes:
    """The ``Authorization`` header value a client sends for ``user`` / ``password`` (RFC 7617, UTF-8)."""
    return b"Basic " + base64.b64encode(f"{user}:{password}".encode("utf-8"))


class _Latest:
    """The newest image and its JPEG, made once and shared by every viewer."""

    def __init__(self, sample_aspect_ratio=None):
        self.sample_aspect_ratio = sample_aspect_ratio  # non-square pixels: sent as a player shows them
        self.cond = threading.Condition()
        self.image: np.ndarray | None = None
        self.seq = 0
        self.jpeg: bytes | None = None
        self.jpeg_seq = -1
        self.encoding = -1  # the frame a viewer is encoding now: the others wait for its JPEG
        self.closed = False

    def put(self, image: np.ndarray) -> None:
        with self.cond:
            self.image, self.seq = image, self.seq + 1
            self.cond.notify_all()

    def after(self, seq: int, wait: bool = True) -> tuple[int, bytes] | None:
        """The first frame newer than ``seq`` as (seq, JPEG); None once closed (or, without
        ``wait``, when there is none). Each frame is encoded once, by the first viewer to ask
        for it; the others wait for that JPEG (every viewer woken by a frame encoding it cost
        2.8 encodings a frame with 20 viewers). The JPEG is made outside the lock, so that
        ``put()`` (the engine's writer) never waits for an encoding."""
        with self.cond:
            while True:
                while wait and self.seq <= seq and not self.closed:
                    self.cond.wait(WAIT_S)
                if self.closed or self.image is None or self.seq <= seq:
                    return None
                if self.jpeg_seq == self.seq:
                    return self.seq, self.jpeg
                if self.encoding != self.seq:
                    break
                self.cond.wait(WAIT_S)  # another viewer encodes the newest frame (put() or its end wakes this one)
            image, newest = self.image, self.seq
            self.encoding = newest
        jpeg = None
        try:
            shown = as_displayed(image, self.sample_aspect_ratio)
            ok, buf = cv2.imencode(".jpg", cv2.cvtColor(shown, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            jpeg = buf.tobytes() if ok else None
        finally:
            with self.cond:
                if jpeg is not None and newest > self.jpeg_seq:
                    self.jpeg, self.jpeg_seq = jpeg, newest
                if self.encoding == newest:
                    self.encoding = -1
                self.cond.notify_all()
        return None if jpeg is None else (newest, jpeg)

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()


class HttpViewSink(Sink):
    """Serve the frames at ``spec`` (``http://HOST:PORT``) until ``close()``."""

    def __init__(self, spec: str, side_by_side: bool = False, title: str = "colorized", sample_aspect_ratio=None):
        host, port, login = parse_http_spec(spec)
        expected = basic_credentials(*login) if login else None
        self.side_by_side = side_by_side
        self.latest = _Latest(sample_aspect_ratio)
        self.viewers = 0
        self.frames_sent = 0
        self.last_write: float | None = None  # time.monotonic() of the newest frame
        self._status = None  # the engine's status(), given by watch()
        self._opened = time.monotonic()
        self.waiting: str | None = None  # opened before its source: what the run is waiting for ("connecting to rtsp://...")
        self.title = title
        latest, sink = self.latest, self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = VIEWER_TIMEOUT_S  # a viewer that stops reading for this long is let go

            def log_message(self, fmt, *args):  # the library's log, not stderr; a client's bytes made printable
                log.debug("view %s: %s", self.client_address[0], printable(fmt % args))

            def _send(self, code: int, ctype: str, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _allowed(self) -> bool:
                """With a password: whether the request carries it (else a 401 is sent)."""
                if expected is None or self.path.split("?", 1)[0] == "/health":
                    return True
                scheme, _, token = (self.headers.get("Authorization") or "").strip().partition(" ")
                given = b"Basic " + token.strip().encode("utf-8", "replace") if scheme.lower() == "basic" else b""
                if hmac.compare_digest(given, expected):
                    return True
                log.debug("view: %s asked for %s without the right password", self.client_address[0], printable(self.path.split("?", 1)[0]))
                body = b"this view asks for a user and password\n"
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="nirvision live view", charset="UTF-8"')
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)
                return False

            def do_HEAD(self):  # noqa: N802 - uptime checkers ask /health this way: GET's status and headers
                if not self._allowed():
                    return
                if self.path.split("?", 1)[0] == "/stream.mjpg":
                    self._send(200, f"multipart/x-mixed-replace; boundary={BOUNDARY}", b"")
                else:
                    self.do_GET()

            def do_OPTIONS(self):  # noqa: N802 - load balancers' default health check
                self.send_response(200)
                self.send_header("Allow", "GET, HEAD, OPTIONS")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self):  # noqa: N802 - the http.server name
                if not self._allowed():
                    return
                path = self.path.split("?", 1)[0]
                if path in ("/", "/index.html"):
                    self._send(200, "text/html; charset=utf-8", PAGE.format(title=html.escape(sink.title)).encode())
                elif path == "/frame.jpg":
                    got = latest.after(0, wait=False)
                    if got is None:
                        self._send(503, "text/plain", b"no frame yet\n")
                    else:
                        self._send(200, "image/jpeg", got[1])
                elif path == "/stream.mjpg":
                    self._stream()
                elif path == "/status.json":
                    self._send(200, "application/json", json.dumps(sink.report()).encode() + b"\n")
                elif path == "/health":
                    report = sink.report()
                    if report["healthy"]:
                        self._send(200, "text/plain", b"ok\n")
                    else:
                        age = report["last_frame_age_s"]
                        age = None if age is None else max(age, report.get("outage_s") or 0.0)
                        why = f"no frame for {age:.0f} s" if age is not None else f"no frame yet after {report['view_s']:.0f} s"
                        if report.get("waiting"):  # with a password, /health answers anyone: not the camera's address
                            why += f" ({report['waiting'] if expected is None else 'waiting for its source'})"
                        self._send(503, "text/plain", why.encode() + b"\n")
                else:
                    self._send(404, "text/plain", b"not found: try / or /stream.mjpg or /frame.jpg or /status.json or /health\n")

            def _stream(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
                self.send_header("Cache-Control", "no-store")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                sink.count_viewer(+1)
                log.info("view: %s watching (%d)", self.client_address[0], sink.viewers)
                seq = 0
                try:
                    while True:
                        got = latest.after(seq)
                        if got is None:
                            return
                        seq, jpeg = got
                        self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode() + jpeg + b"\r\n")
                        self.wfile.flush()
                        sink.count_sent()
                except OSError as exc:  # the viewer left, or stopped reading (timeout)
                    log.debug("view %s: %s", self.client_address[0], exc)
                finally:
                    sink.count_viewer(-1)
                    log.info("view: %s left", self.client_address[0])

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True
            address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

        try:
            self.server = Server((host, port), Handler)
        except OSError as exc:
            raise InputError(f"output {redact_url(spec)}: cannot listen there ({exc.strerror or exc}); expected a free port on an address of this machine") from None
        self.host, self.port = host, self.server.server_address[1]
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{self.port}/"
        self.description = f"http://{shown}:{self.port}/ (live view)"
        self.where = self.url  # what to open, for the command's message
        if host in ("0.0.0.0", "::"):
            self.where = f"http://<this machine's name or address>:{self.port}/ (listening on all its addresses)"
        if host not in ("127.0.0.1", "localhost", "::1") and login is None:
            log.warning("view: port %d on %s is open to every machine that can reach this one, without a password "
                        "(http://USER:PASSWORD@%s:%d asks for one)", self.port, host, shown, self.port)
        if login is not None:
            self.where += " (asks for the user and password it was given)"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2}, name="nirvision-http", daemon=True)
        self._thread.start()
        self._closed = False

    def count_viewer(self, step: int) -> None:
        with self.latest.cond:
            self.viewers += step

    def count_sent(self) -> None:
        with self.latest.cond:
            self.frames_sent += 1

    def watch(self, status) -> None:
        self._status = status

    def attach(self, title: str, sample_aspect_ratio=None) -> None:
        """The source is open: its name for the page and its pixel shape (the view was opened
        before it, to answer while a camera is reached)."""
        self.title, self.waiting = title, None
        self.latest.sample_aspect_ratio = sample_aspect_ratio

    def report(self) -> dict:
        """``/status.json``: the engine's counters, the newest frame's age, viewers, and whether
        the run is healthy (a frame in the last ``STALE_S`` seconds; before the first, as long as
        the view has been open for less than that)."""
        now = time.monotonic()
        out = dict(self._status() if self._status else {})
        age = None if self.last_write is None else round(now - self.last_write, 2)
        # a stalled camera's last frame comes late (at the read timeout): its outage, not that frame, says how long it has been
        down = max(age, out.get("outage_s") or 0.0) if age is not None else None
        out.update(last_frame_age_s=age, viewers=self.viewers, frames_sent=self.frames_sent, view_s=round(now - self._opened, 2),
                   healthy=(down < STALE_S) if down is not None else (now - self._opened < STALE_S))
        if self.waiting:
            out["waiting"] = self.waiting
        return out

    def write(self, frame: Frame, image: np.ndarray) -> None:
        self.last_write = time.monotonic()
        # a viewer encodes the image while the engine goes on, and a backend may reuse its output
        # buffer: copied then; with nobody watching, kept as it is (a snapshot shows the newest)
        self.latest.put(image.copy() if self.viewers else image)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.latest.close()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)
