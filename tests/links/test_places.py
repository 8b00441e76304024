"""Places: coordinates, cities, cloud regions and the packaged ground segment."""

from __future__ import annotations

import pytest

from skyfleet.errors import PlaceError
from skyfleet.links import cloud_regions, gateways, largest_cities, pops, resolve_place


def test_coordinates_are_a_place() -> None:
    p = resolve_place(" -33.87, 151.21 ")
    assert (p.lat_deg, p.lon_deg, p.terminal) == (-33.87, 151.21, True)


@pytest.mark.parametrize(
    ("spec", "word"),
    [("95,0", "latitude 95"), ("-91,0", "latitude -91"), ("10,181", "longitude 181")],
)
def test_coordinates_out_of_range_rejected(spec: str, word: str) -> None:
    with pytest.raises(PlaceError, match=word):
        resolve_place(spec)


def test_city_name_picks_the_most_populous_match() -> None:
    assert resolve_place("city:Paris").spec == "city:Paris,FR"
    assert resolve_place("city:paris,us").spec == "city:Paris,US"


def test_city_found_by_its_other_names() -> None:
    ny = resolve_place("city:New York")
    assert ny.label.startswith("New York City")
    assert abs(ny.lat_deg - 40.71) < 0.05


def test_unknown_city_suggests_close_names() -> None:
    with pytest.raises(PlaceError, match="did you mean city:London"):
        resolve_place("city:Lonndon")


def test_cloud_regions_resolve_and_are_reached_over_fiber() -> None:
    r = resolve_place("aws:us-east-1")
    assert r.kind == "cloud-region" and not r.terminal
    assert 38 < r.lat_deg < 40 and -78.5 < r.lon_deg < -76.5  # Northern Virginia
    assert resolve_place("AZURE:WestUS2").spec == "azure:westus2"


def test_unknown_region_names_the_problem_and_suggests() -> None:
    with pytest.raises(
        PlaceError, match=r"unknown cloud region 'aws:us-east-9'; did you mean aws:us-east-"
    ):
        resolve_place("aws:us-east-9")


@pytest.mark.parametrize("spec", ["", "nowhere", "mars:olympus", "city:"])
def test_unreadable_place_rejected(spec: str) -> None:
    with pytest.raises(PlaceError):
        resolve_place(spec)


def test_ground_segment_is_packaged_and_sane() -> None:
    regions = cloud_regions()
    providers = {r.spec.split(":")[0] for r in regions}
    assert {"aws", "azure", "gcp"} <= providers
    assert sum(r.spec.startswith("aws:") for r in regions) >= 30
    assert sum(r.spec.startswith("azure:") for r in regions) >= 60
    gws = gateways()
    assert len(gws) >= 100
    assert len({g.spec for g in gws}) == len(gws)
    assert all(-90 <= g.lat_deg <= 90 and -180 <= g.lon_deg <= 180 for g in gws + pops() + regions)


def test_largest_cities_come_largest_first() -> None:
    cities = largest_cities(100)
    assert len(cities) == 100
    names = {c.label for c in cities[:20]}
    assert {"Shanghai, CN", "Tokyo, JP"} & names
    assert resolve_place(cities[5].spec).spec == cities[5].spec
