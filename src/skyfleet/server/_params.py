"""Request parameters both APIs share, bounded so that no value can reach the database unchecked."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path
from pydantic import Field, StringConstraints

__all__ = ["MAX_BIG_ID", "MAX_ID", "ActionIdPath", "Count", "Hardware", "Id", "IdPath"]

MAX_ID = 2**31 - 1  # the databases' integer ids are 32-bit
MAX_BIG_ID = 2**63 - 1  # audit entries and actions have 64-bit ids

#: A row id in a URL path (rollout, action, release).
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
#: An action id in a URL path (64-bit: a fleet makes billions of actions).
ActionIdPath = Annotated[int, Path(ge=1, le=MAX_BIG_ID)]
#: A row id in a body.
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
#: A count of devices.
Count = Annotated[int, Field(ge=1, le=MAX_ID)]
#: A hardware generation, e.g. ``hw3``.
Hardware = Annotated[
    str,
    StringConstraints(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9][A-Za-z0-9._+~-]*$"),
]
