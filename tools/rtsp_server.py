#!/usr/bin/python3
"""A test-pattern RTSP server on 127.0.0.1 for nirvision's RTSP tests and manual checks.

Runs with the system Python and GStreamer's RTSP server (Debian packages: gstreamer1.0-rtsp,
gir1.2-gst-rtsp-server-1.0, gstreamer1.0-plugins-good, gstreamer1.0-plugins-ugly, python3-gi):

    /usr/bin/python3 tools/rtsp_server.py --port 8554 --size 160x120 --fps 25
    nirvision colorize rtsp://127.0.0.1:8554/test -o out.mp4

With ``--user U --password P`` the stream needs basic authentication. The server prints
``READY rtsp://127.0.0.1:PORT/PATH`` on stdout once it listens. It serves one shared live
pipeline (all clients see the same picture: a white ball on black by default, a camera at night;
``--pattern smpte`` colour bars, a camera by day), so a client that reconnects picks up the
stream where it is, like a camera.
"""
import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def pipeline(width: int, height: int, fps: int, codec: str, pattern: str = "ball") -> str:
    src = (
        f"videotestsrc is-live=true pattern={pattern} ! "
        f"video/x-raw,format=I420,width={width},height={height},framerate={fps}/1"
    )
    if codec == "h264":
        enc = (
            f"x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} bframes=0 ! "
            "video/x-h264,profile=baseline ! rtph264pay name=pay0 pt=96 config-interval=1"
        )
    else:
        enc = "jpegenc quality=80 ! rtpjpegpay name=pay0 pt=26"
    return f"( {src} ! {enc} )"


def add_auth(server, factory, user: str, password: str) -> None:
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, user)
    auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
    server.set_auth(auth)
    perms = GstRtspServer.RTSPPermissions()
    perms.add_permission_for_role(user, GstRtspServer.RTSP_PERM_MEDIA_FACTORY_ACCESS, True)
    perms.add_permission_for_role(user, GstRtspServer.RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, True)
    factory.set_permissions(perms)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=8554)
    ap.add_argument("--path", default="/test")
    ap.add_argument("--size", default="160x120", help="WIDTHxHEIGHT")
    ap.add_argument("--fps", type=int, default=25)
    ap.add_argument("--codec", choices=("h264", "jpeg"), default="h264")
    ap.add_argument("--pattern", default="ball", help="videotestsrc pattern: ball (white on black), smpte (colour bars), ...")
    ap.add_argument("--user")
    ap.add_argument("--password")
    args = ap.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))

    Gst.init(None)
    try:  # a pattern videotestsrc does not know fails here, not when the first client connects
        Gst.parse_launch(f"videotestsrc pattern={args.pattern} num-buffers=1 ! fakesink")
    except GLib.Error as exc:
        print(f"--pattern {args.pattern!r}: not a videotestsrc pattern ({exc.message})", file=sys.stderr)
        return 2
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(pipeline(width, height, args.fps, args.codec, args.pattern))
    factory.set_shared(True)
    if args.user:
        add_auth(server, factory, args.user, args.password or "")
    server.get_mount_points().add_factory(args.path, factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{args.port}", file=sys.stderr)
        return 1
    loop = GLib.MainLoop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print(f"READY rtsp://127.0.0.1:{args.port}{args.path}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
