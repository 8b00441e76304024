"""The skyfleet server (FastAPI): the operator API and the hawkBit DDI device API.

Run it with ``skyfleet serve``, or build it with :func:`create_app` (tests, embedding); an edge
relay for a site with ``skyfleet serve --upstream URL`` or :func:`create_relay_app`.
"""

from __future__ import annotations

from skyfleet.server._app import create_app
from skyfleet.server._config import ServerConfig, sim_clock
from skyfleet.server._relay import create_relay_app
from skyfleet.server._relay_config import RelayConfig

__all__ = ["RelayConfig", "ServerConfig", "create_app", "create_relay_app", "sim_clock"]
