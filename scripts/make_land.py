"""Build the dashboard's map shapes from Natural Earth 110m (the world-atlas npm package).

Decodes world-atlas's TopoJSON (``land-110m.json`` and, for borders, ``countries-110m.json``) into
a compact JSON the page draws without a TopoJSON library: land rings and border lines as flat
lists ``[lon, lat, lon, lat, ...]`` in degrees, rounded to ``--digits`` decimals (0.01 deg by
default), with points closer than that to the previous one dropped.

    cd /tmp && npm pack world-atlas@2.0.2 && tar xzf world-atlas-2.0.2.tgz
    python scripts/make_land.py /tmp/package          # writes src/skyfleet/server/dashboard/land-110m.json

Natural Earth is public domain; world-atlas (Mike Bostock) is ISC-licensed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent.parent / "src/skyfleet/server/dashboard/land-110m.json"

Arc = list[tuple[float, float]]


def decode_arcs(topology: dict[str, Any]) -> list[Arc]:
    """The topology's arcs in degrees (delta-decoded and de-quantized)."""
    scale = topology.get("transform", {}).get("scale", [1.0, 1.0])
    translate = topology.get("transform", {}).get("translate", [0.0, 0.0])
    quantized = "transform" in topology
    arcs: list[Arc] = []
    for arc in topology["arcs"]:
        x = y = 0
        points: Arc = []
        for position in arc:
            if quantized:
                x += position[0]
                y += position[1]
                points.append((x * scale[0] + translate[0], y * scale[1] + translate[1]))
            else:
                points.append((position[0], position[1]))
        arcs.append(points)
    return arcs


def ring_points(arcs: list[Arc], indexes: list[int]) -> Arc:
    """A ring or line from arc indexes (a negative index ~i is arc i reversed)."""
    points: Arc = []
    for index in indexes:
        arc = arcs[index] if index >= 0 else arcs[~index][::-1]
        points.extend(arc[1:] if points else arc)  # consecutive arcs share their end points
    return points


def polygons(geometry: dict[str, Any]) -> list[list[list[int]]]:
    """A geometry's polygons, each a list of rings of arc indexes."""
    if geometry["type"] == "Polygon":
        return [geometry["arcs"]]
    if geometry["type"] == "MultiPolygon":
        return list(geometry["arcs"])
    return []


def unwrap(points: Arc, *, ring: bool) -> Arc:
    """Longitudes made continuous across the antimeridian (they may then pass +-180).

    A ring that goes once round the Earth (Antarctica) is closed through its pole, so that
    every ring is a plain polygon on the equirectangular plane; the page draws it again 360 deg
    to the east or west where it passes the map's edge.
    """
    out: Arc = []
    for lon, lat in points:
        if out:
            previous = out[-1][0]
            lon += 360.0 * round((previous - lon) / 360.0)
        out.append((lon, lat))
    if ring and out and abs(out[-1][0] - out[0][0]) > 180.0:
        pole = -90.0 if sum(lat for _, lat in out) < 0 else 90.0
        out.extend([(out[-1][0], pole), (out[0][0], pole)])
    return out


def flat(points: Arc, digits: int, *, ring: bool = True) -> list[float]:
    """``[lon, lat, ...]`` rounded, unwrapped, without repeated points."""
    out: list[float] = []
    last: tuple[float, float] | None = None
    for lon, lat in unwrap(points, ring=ring):
        here = (round(lon, digits), round(lat, digits))
        if here != last:
            out.extend(here)
            last = here
    return out


def land_rings(topology: dict[str, Any], digits: int) -> list[list[float]]:
    """Every ring (outer and holes) of the ``land`` object."""
    arcs = decode_arcs(topology)
    rings = []
    for geometry in topology["objects"]["land"]["geometries"]:
        for polygon in polygons(geometry):
            for ring in polygon:
                points = flat(ring_points(arcs, ring), digits)
                if len(points) >= 6:
                    rings.append(points)
    return rings


def border_lines(topology: dict[str, Any], digits: int) -> list[list[float]]:
    """The arcs two different countries share (land borders, not coastlines)."""
    arcs = decode_arcs(topology)
    users: dict[int, set[int]] = {}
    for number, geometry in enumerate(topology["objects"]["countries"]["geometries"]):
        for polygon in polygons(geometry):
            for ring in polygon:
                for index in ring:
                    users.setdefault(index if index >= 0 else ~index, set()).add(number)
    lines = []
    for index in sorted(users):
        if len(users[index]) >= 2:
            points = flat(arcs[index], digits, ring=False)
            if len(points) >= 4:
                lines.append(points)
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Natural Earth 110m land and borders for the dashboard")
    p.add_argument("package", type=Path, help="the unpacked world-atlas package folder")
    p.add_argument("--digits", type=int, default=2, help="decimals kept in degrees (2)")
    p.add_argument("--no-borders", action="store_true", help="leave out country borders")
    p.add_argument("--out", type=Path, default=OUT, help=f"output file ({OUT.name})")
    args = p.parse_args(argv)
    try:
        land = json.loads((args.package / "land-110m.json").read_text())
        version = json.loads((args.package / "package.json").read_text()).get("version", "?")
        countries = None
        if not args.no_borders:
            countries = json.loads((args.package / "countries-110m.json").read_text())
    except (OSError, ValueError) as exc:
        print(f"error: cannot read world-atlas from {args.package}: {exc}", file=sys.stderr)
        return 2
    shapes = {
        "source": f"Natural Earth 110m (public domain) via world-atlas@{version} (ISC)",
        "land": land_rings(land, args.digits),
        "borders": border_lines(countries, args.digits) if countries else [],
    }
    text = json.dumps(shapes, separators=(",", ":"))
    args.out.write_text(text + "\n")
    points = sum(len(r) for r in shapes["land"]) // 2
    print(
        f"{args.out}: {len(shapes['land'])} land rings ({points} points), "
        f"{len(shapes['borders'])} border lines, {len(text) / 1024:.0f} KiB"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
