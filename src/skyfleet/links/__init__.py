"""What connectivity a place or a moving vehicle gets over a LEO constellation.

Visibility by true elevation, +Grid laser links routed with single-source shortest paths on the
time-varying graph, bent-pipe paths through gateways, fiber to cloud regions, and the comparison
with terrestrial fiber. Delays are in ms, distances in km, times in seconds.

>>> from skyfleet.links import resolve_place, link_series, summarize
>>> from skyfleet.orbits import preset
>>> s = link_series(preset("starlink-s1"), resolve_place("city:Seattle"),
...                 resolve_place("azure:westus2"), 1_767_225_600.0, 60.0)
>>> 5.0 < summarize(s)["rtt_ms"]["median"] < 60.0
True
"""

from __future__ import annotations

from skyfleet.links._cellular import (
    CellCoverage,
    CoveragePolygon,
    builtin_coverage,
    cellular_mask,
    parse_geojson_coverage,
    parse_opencellid_csv,
)
from skyfleet.links._connectivity import (
    CONNECTIVITY_CLASSES,
    connectivity_class,
    route_connectivity,
)
from skyfleet.links._engine import MODES, LinkOptions, Mode, decision_steps
from skyfleet.links._geometry import (
    DEFAULT_FIBER_INFLATION,
    FIBER_INDEX,
    elevation_deg,
    fiber_one_way_ms,
    great_circle_km,
    max_slant_range_km,
)
from skyfleet.links._pairs import ground_station_rtt_ms
from skyfleet.links._places import (
    Place,
    cloud_regions,
    gateways,
    largest_cities,
    pops,
    resolve_place,
)
from skyfleet.links._routes import Route, load_route
from skyfleet.links._series import (
    LinkSeries,
    gaps,
    handovers,
    link_series,
    link_series_many,
    summarize,
    time_grid,
)
from skyfleet.links._site import (
    RTT_PERCENTILES,
    SITE_MODES,
    SitePlan,
    link_estimates,
    outages,
    plan_site,
    rtt_distribution,
    site_places,
)

__all__ = [
    "CONNECTIVITY_CLASSES",
    "DEFAULT_FIBER_INFLATION",
    "FIBER_INDEX",
    "MODES",
    "RTT_PERCENTILES",
    "SITE_MODES",
    "CellCoverage",
    "CoveragePolygon",
    "LinkOptions",
    "LinkSeries",
    "Mode",
    "Place",
    "Route",
    "SitePlan",
    "builtin_coverage",
    "cellular_mask",
    "cloud_regions",
    "connectivity_class",
    "decision_steps",
    "elevation_deg",
    "fiber_one_way_ms",
    "gaps",
    "gateways",
    "great_circle_km",
    "ground_station_rtt_ms",
    "handovers",
    "largest_cities",
    "link_estimates",
    "link_series",
    "link_series_many",
    "load_route",
    "max_slant_range_km",
    "outages",
    "parse_geojson_coverage",
    "parse_opencellid_csv",
    "plan_site",
    "pops",
    "resolve_place",
    "route_connectivity",
    "rtt_distribution",
    "site_places",
    "summarize",
    "time_grid",
]
