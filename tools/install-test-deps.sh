#!/usr/bin/env bash
# Install everything the tests need (the first half of the README's test command, which CI runs):
#   system: GStreamer's RTSP server for the RTSP tests (Debian packages, needs root or sudo)
#   python: a virtual environment in .venv with nirvision[test] (CPU torch 2.13.0)
# then: .venv/bin/python -m pytest
set -euo pipefail
cd "$(dirname "$0")/.."

GST_PACKAGES="gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav python3-gi"
missing=""
for p in $GST_PACKAGES; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "installing system packages for the RTSP tests:$missing"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e ".[test]"
