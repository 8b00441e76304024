"""The skyfleet server (FastAPI): the operator API and the hawkBit DDI device API.

Run it with ``skyfleet serve``, or build it with :func:`create_app` (tests, embedding).
"""

from __future__ import annotations

from skyfleet.server._app import create_app
from skyfleet.server._config import ServerConfig

__all__ = ["ServerConfig", "create_app"]
