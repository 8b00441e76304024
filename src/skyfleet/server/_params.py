"""Request parameters both APIs share, bounded so that no value can reach the database unchecked."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path
from pydantic import Field, StringConstraints

__all__ = ["MAX_ID", "Count", "Hardware", "Id", "IdPath"]

MAX_ID = 2**31 - 1  # the databases' integer ids are 32-bit

#: A row id in a URL path (rollout, action, release).
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
#: A row id in a body.
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
#: A count of devices.
Count = Annotated[int, Field(ge=1, le=MAX_ID)]
#: A hardware generation, e.g. ``hw3``.
Hardware = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=r"^[^\s]+$")]
