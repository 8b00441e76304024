"""Sites through the operator API: registration checks the location, the listing carries each
site's link estimate, and a site's RTT series comes with its fiber figures."""

from __future__ import annotations

import httpx
import pytest

MINE = {
    "id": "pilbara-mine",
    "kind": "site",
    "hw": "site1",
    "attributes": {"lat_deg": "-22.31", "lon_deg": "118.35", "region": "aws:ap-southeast-2"},
}


def _register(api: httpx.Client, *devices: dict[str, object]) -> httpx.Response:
    return api.post("/api/v1/devices", json={"devices": list(devices)})


def test_site_list_has_a_link_estimate_per_mode(api: httpx.Client) -> None:
    registered = _register(api, MINE, {"id": "car-1"})
    assert registered.status_code == 201
    token = registered.json()["devices"][0]["token"]
    r = api.get("/api/v1/sites")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] == 1  # the car is not a site
    (site,) = body["sites"]
    assert (site["id"], site["lat_deg"], site["lon_deg"]) == ("pilbara-mine", -22.31, 118.35)
    link = site["link"]
    for mode in ("isl", "bent-pipe"):
        assert 0.0 <= link[mode]["availability_pct"] <= 100.0
    # Starlink with laser links reaches Sydney from the Pilbara in tens of ms (about 3,300 km).
    assert 20.0 < link["isl"]["rtt_median_ms"] < 80.0
    assert link["internet_rtt_ms"] > link["fiber_rtt_ms"] > 25.0
    assert body["truncated"] is False
    # The site reports a new location (Perth): the estimate follows at once, not a minute later.
    moved = api.put(
        "/DEFAULT/controller/v1/pilbara-mine/configData",
        json={"mode": "merge", "data": {"lat_deg": "-31.95", "lon_deg": "115.86"}},
        headers={"Authorization": f"TargetToken {token}"},
    )
    assert moved.status_code == 200, moved.text
    (site,) = api.get("/api/v1/sites").json()["sites"]
    assert (site["lat_deg"], site["lon_deg"]) == (-31.95, 115.86)
    assert site["link"]["fiber_rtt_ms"] != link["fiber_rtt_ms"]


def test_a_site_without_a_location_is_listed_with_the_problem(api: httpx.Client) -> None:
    bare = {"id": "box-1", "kind": "site", "hw": "site1"}
    assert _register(api, bare).status_code == 201
    (site,) = api.get("/api/v1/sites").json()["sites"]
    assert "link" not in site and "lat_deg" in site["problem"]


@pytest.mark.parametrize(
    "attributes",
    [
        {"lat_deg": "95", "lon_deg": "0", "region": "aws:us-east-1"},
        {"lat_deg": "10", "region": "aws:us-east-1"},
        {"lat_deg": "10", "lon_deg": "10", "region": "aws:atlantis-1"},
    ],
)
def test_a_site_with_a_bad_location_is_refused_and_nothing_stored(
    api: httpx.Client, attributes: dict[str, str]
) -> None:
    r = _register(api, {"id": "car-9"}, {**MINE, "attributes": attributes})
    assert r.status_code == 400
    assert "site 'pilbara-mine'" in r.json()["error"] or "region" in r.json()["error"]
    assert api.get("/api/v1/devices").json()["total"] == 0


def test_site_link_series_over_a_window(api: httpx.Client) -> None:
    assert _register(api, MINE).status_code == 201
    r = api.get(
        "/api/v1/sites/pilbara-mine/link",
        params={"duration_s": 600, "step_s": 60, "start_s": 1_767_225_600},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["t_s"] == [0.0, 60.0, 120.0, 180.0, 240.0, 300.0, 360.0, 420.0, 480.0, 540.0]
    for mode in ("isl", "bent-pipe"):
        assert len(body[mode]["rtt_ms"]) == 10
        finite = [x for x in body[mode]["rtt_ms"] if x is not None]
        if finite:
            assert body[mode]["distribution_ms"]["min"] == pytest.approx(min(finite))
    assert body["internet_rtt_ms"] > body["fiber_rtt_ms"]


def test_site_link_of_unknown_or_non_site_is_404(api: httpx.Client) -> None:
    assert _register(api, {"id": "car-1"}).status_code == 201
    assert api.get("/api/v1/sites/nowhere/link").status_code == 404
    r = api.get("/api/v1/sites/car-1/link")
    assert r.status_code == 404 and "not a site" in r.json()["error"]


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"duration_s": 86_400, "step_s": 1}, 400),  # 86,400 steps: too much for one request
        ({"start_s": 1e300}, 422),
        ({"step_s": 0}, 422),
    ],
)
def test_site_link_refuses_windows_it_cannot_serve(
    api: httpx.Client, params: dict[str, float], status: int
) -> None:
    assert _register(api, MINE).status_code == 201
    r = api.get("/api/v1/sites/pilbara-mine/link", params=params)
    assert r.status_code == status and "error" in r.json()
