"""Frame sources and sinks: where NIR frames come from and where colorized frames go.

    >>> from nirvision.io import open_source, open_sink
    >>> source = open_source("synthetic:640x480@25:250")
    >>> sink = open_sink("out.mp4", source.info)
"""
from .base import Frame, Sink, Source, SourceInfo
from .reconnect import ReconnectPolicy, StreamLost
from .redact import redact_url
from .specs import open_sink, open_source, source_kind

__all__ = ["Frame", "ReconnectPolicy", "Sink", "Source", "SourceInfo", "StreamLost", "open_sink", "open_source", "redact_url", "source_kind"]
