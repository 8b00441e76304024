"""Packaged data, read through one small loader; nothing is fetched at run time.

Files live beside this module (see ``README.md`` here for what each one holds and where its facts
come from).

>>> rows = read_csv("cloud_regions.csv")
>>> any(r["id"] == "aws:us-east-1" for r in rows)
True
"""

from __future__ import annotations

import csv
import io
import json
from functools import cache
from importlib import resources
from typing import Any

__all__ = ["read_csv", "read_json", "read_text"]


@cache
def read_text(name: str) -> str:
    """Return the text of the packaged data file ``name`` (UTF-8)."""
    return resources.files(__name__).joinpath(name).read_text(encoding="utf-8")


def read_csv(name: str) -> list[dict[str, str]]:
    """Return the rows of the packaged CSV file ``name`` as dictionaries keyed by its header."""
    return list(csv.DictReader(io.StringIO(read_text(name))))


def read_json(name: str) -> Any:
    """Return the parsed content of the packaged JSON file ``name``."""
    return json.loads(read_text(name))
