"""nirvision: near-infrared video to natural-colour RGB with MPFNet.

The public API is ``Colorizer`` (see ``nirvision.api``); the command is ``nirvision``.
"""
from __future__ import annotations

__version__ = "0.1.0"


def __getattr__(name):
    # Imported on first use so that `import nirvision` stays cheap (no torch at import).
    if name in ("Colorizer", "load_chain", "build_chain"):
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'nirvision' has no attribute {name!r}")


__all__ = ["Colorizer", "__version__", "build_chain", "load_chain"]
