"""Keep passwords in stream URLs out of logs and error messages.

Two places hold them: the userinfo (``rtsp://user:secret@host/x``; everything up to the last
``@`` before any ``?``, ``#`` or space counts, so a password holding ``/`` or ``@`` is masked
whole) and parameters such as ``password=``, ``pass=``, ``passwd=`` or ``pwd=`` anywhere in
the URL (cameras that take ``rtsp://host/user=admin&password=secret&channel=1``); a value runs
to the next ``&NAME=`` or ``;NAME=``, so a password with an ``&`` or ``#`` written unencoded
is masked whole. Also ``printable``: text from outside (a file's name, a client's request)
made safe to print, its control characters (a newline, terminal escapes) escaped.
"""
from __future__ import annotations

import re

_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:@/\s?#]*):(?P<pw>[^\s]*)@")
_SCHEME = re.compile(r"^\s*[a-zA-Z][a-zA-Z0-9+.-]*://")
_KEYS = r"(?<![a-z0-9_])(?P<key>password|passwd|pass|pwd)="
# a value ends where the next parameter starts (&NAME= or ;NAME=), at a space or a quote
_PARAM = re.compile(r"(?i)" + _KEYS + r"(?P<pw>(?:(?![&;][\w.~%+-]+=)[^\s'\"])*)")
_IN_PARAM = re.compile(r"(?i)" + _KEYS + r"(?:(?![&;][\w.~%+-]+=)[^\s'\"])*$")


def redact_url(url: str) -> str:
    """``rtsp://user:secret@host/x`` -> ``rtsp://user:***@host/x``, ``...&password=x&...`` ->
    ``...&password=***&...``; strings without a password come back unchanged. A password that
    breaks the URL (a space, ``#`` or ``?`` not written as ``%20``, ``%23``, ``%3F``) is masked too."""
    return redact_text(url, url_secrets(url))


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
    found = [m["pw"] for m in _USERINFO.finditer(url)] + [m["pw"] for m in _PARAM.finditer(url)] + [url_password(url) or ""]
    return tuple(sorted({s for s in found if s}, key=len, reverse=True))


def url_password(url: str) -> str | None:
    """The userinfo password of ``url``: from the first ``:`` after ``scheme://user`` to the last
    ``@`` of the URL, whatever it holds (a password with ``/``, ``@``, ``#``, ``?`` or a space, as a
    user may type it unencoded); None without one. Where an ``@`` comes later in a query, more
    than the password is taken: masked too much rather than too little."""
    m = _SCHEME.match(str(url))
    if not m:
        return None
    rest = str(url)[m.end():]
    at = rest.rfind("@")
    if at < 0 or ":" not in rest[:at]:
        return None
    password = rest[:at].split(":", 1)[1]
    return password or None


def in_password_param(text: str) -> bool:
    """Whether ``text`` (a URL up to some point) ends inside a password parameter's value
    (``rtsp://cam/x?user=admin&password=``): what goes on there is a secret."""
    return "://" in text and _IN_PARAM.search(text) is not None


def printable(text, limit: int | None = None) -> str:
    """``text`` (a file's name, a client's request) to print on one line: control characters
    (newline, carriage return, terminal escapes) escaped as Python writes them (``\\n``,
    ``\\x1b``), so that a name cannot forge a line or colour the terminal; cut to ``limit``
    characters where given."""
    text = str(text)
    cut = text if limit is None else text[:limit]
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in cut)
    return shown + ("..." if limit is not None and len(text) > limit else "")
