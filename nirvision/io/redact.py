"""Keep passwords in stream URLs out of logs and error messages.

Two places hold them: the userinfo (``rtsp://user:secret@host/x``; everything up to the last
``@`` before any ``?``, ``#`` or space counts, so a password holding ``/`` or ``@`` is masked
whole) and parameters such as ``password=``, ``pass=``, ``passwd=`` or ``pwd=`` anywhere in
the URL (cameras that take ``rtsp://host/user=admin&password=secret&channel=1``).
"""
from __future__ import annotations

import re

_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:@/\s?#]*):(?P<pw>[^\s?#]*)@")
_PARAM = re.compile(r"(?i)(?<![a-z0-9_])(?P<key>password|passwd|pass|pwd)=(?P<pw>[^&;#\s'\"]*)")


def redact_url(url: str) -> str:
    """``rtsp://user:secret@host/x`` -> ``rtsp://user:***@host/x``, ``...&password=x&...`` ->
    ``...&password=***&...``; strings without a password come back unchanged."""
    return redact_text(url)


def redact_text(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Mask every ``scheme://user:password@`` and ``password=...`` in ``text``, and any of
    ``secrets`` verbatim (as PyAV may echo a password in its own words)."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", str(text))
    text = _PARAM.sub(lambda m: f"{m['key']}=***" if m["pw"] else m[0], text)
    for s in secrets:
        if s:
            text = text.replace(s, "***")
    return text


def url_secrets(url: str) -> tuple[str, ...]:
    """The passwords ``url`` holds (userinfo and password parameters), longest first."""
    found = [m["pw"] for m in _USERINFO.finditer(url)] + [m["pw"] for m in _PARAM.finditer(url)]
    return tuple(sorted({s for s in found if s}, key=len, reverse=True))


def url_password(url: str) -> str | None:
    """The userinfo password of ``url`` (up to the last ``@`` of its authority), or None."""
    m = _USERINFO.search(url)
    return m["pw"] if m else None
