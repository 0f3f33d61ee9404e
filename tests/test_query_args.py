"""Issue 10 #7: query strings are held to the rules bodies are: an unknown parameter is a 422 naming it,
never a silently unfiltered answer. Obvious synonyms are accepted (bin_id on waste data, grid_id on
energy data) or named in the error ("did you mean ...?")."""
import re

import pytest

from tests.test_waste import add_bin, set_level


def errors_of(response):
    body = response.get_json()
    assert response.status_code == 422, body
    assert body["error"] == "validation_error" and body["message"]
    return body["errors"]


@pytest.fixture
def two_bins(client, admin_headers):
    for bin_id, fill in (("BIN-A", 10.0), ("BIN-B", 20.0)):
        add_bin(client, admin_headers, bin_id, 0.5, 0.5, fill=fill)
    set_level(client, admin_headers, "BIN-B", 30.0)


def test_unknown_query_parameter_on_waste_data_is_422_naming_it(client, admin_headers, two_bins):
    errors = errors_of(client.get("/api/waste/data?foo=bar", headers=admin_headers))
    assert errors == {"foo": ["Unknown field."]}


def test_bin_id_filters_waste_data_like_sensor_id(client, admin_headers, two_bins):
    everything = client.get("/api/waste/data", headers=admin_headers).get_json()
    assert everything["total"] == 3
    for name in ("bin_id", "sensor_id"):
        page = client.get(f"/api/waste/data?{name}=BIN-A", headers=admin_headers).get_json()
        assert page["total"] == 1 and {item["sensor_id"] for item in page["items"]} == {"BIN-A"}, name
    assert client.get("/api/waste/data?bin_id=BIN-B&sensor_id=BIN-B", headers=admin_headers).get_json()["total"] == 2
    conflict = errors_of(client.get("/api/waste/data?bin_id=BIN-A&sensor_id=BIN-B", headers=admin_headers))
    assert "bin_id" in conflict


def test_grid_id_filters_energy_data(client, admin_headers):
    batch = [{"grid_id": "G-1", "load_mw": 50, "capacity_mw": 100}, {"grid_id": "G-2", "load_mw": 60, "capacity_mw": 100}]
    assert client.post("/api/energy/data", headers=admin_headers, json=batch).status_code == 201
    page = client.get("/api/energy/data?grid_id=G-1", headers=admin_headers).get_json()
    assert page["total"] == 1 and page["items"][0]["sensor_id"] == "G-1"


def test_an_id_name_from_another_module_is_refused_with_a_hint(client, admin_headers):
    errors = errors_of(client.get("/api/traffic/data?bin_id=BIN-A", headers=admin_headers))
    assert list(errors) == ["bin_id"] and "sensor_id" in errors["bin_id"][0]
    assert errors["bin_id"][0].startswith("Unknown field.")


@pytest.mark.parametrize("name,meant", [("limt", "limit"), ("page_size", "limit"), ("order_by", "sort"),
                                        ("since", "from"), ("until", "to")])
def test_near_misses_say_what_was_meant(client, admin_headers, name, meant):
    errors = errors_of(client.get(f"/api/traffic/data?{name}=5", headers=admin_headers))
    assert errors == {name: [f"Unknown field. Did you mean {meant}?"]}


def test_unknown_and_invalid_together_are_both_reported(client, admin_headers):
    errors = errors_of(client.get("/api/waste/bins?limit=0&foo=1", headers=admin_headers))
    assert set(errors) == {"limit", "foo"} and errors["foo"] == ["Unknown field."]


def test_authentication_still_comes_first(client):
    assert client.get("/api/waste/data?foo=bar").status_code == 401


def _get_operations(spec):
    for path, item in spec["paths"].items():
        if "get" in item and "{" not in path:
            params = [p for p in item["get"].get("parameters", []) if p.get("in") == "query"]
            yield path, params


def test_every_endpoint_with_query_args_refuses_unknown_ones(client, admin_headers):
    spec = client.get("/api/openapi.json").get_json()
    checked = 0
    for path, params in _get_operations(spec):
        if not params:
            continue
        response = client.get(f"{path}?definitely_not_a_param=1", headers=admin_headers)
        assert response.status_code == 422, (path, response.get_json())
        assert "definitely_not_a_param" in response.get_json()["errors"], path
        checked += 1
    assert checked >= 20


def test_endpoints_without_query_args_refuse_them_too(client, admin_headers):
    add_bin(client, admin_headers, "BIN-Q", 0.5, 0.5)
    response = client.get("/api/waste/bins/BIN-Q?foo=bar", headers=admin_headers)
    assert errors_of(response) == {"foo": ["Unknown field."]}
    assert "takes no query parameters" in response.get_json()["message"]
    assert client.get("/api/waste/bins/BIN-Q", headers=admin_headers).status_code == 200
    response = client.post("/api/waste/data?foo=1", headers=admin_headers, json={"bin_id": "BIN-Q", "fill_level_pct": 5})
    assert errors_of(response) == {"foo": ["Unknown field."]}


def test_docs_spec_and_probes_keep_working_with_query_strings(client):
    assert client.get("/api/openapi.json?x=1").status_code == 200
    assert client.get("/api/docs?x=1").status_code == 200
    assert client.get("/api/health/live?_=123").status_code == 200


def test_openapi_documents_the_422_for_query_endpoints(client):
    spec = client.get("/api/openapi.json").get_json()
    assert "422" in spec["paths"]["/api/waste/data"]["get"]["responses"]
    description = next(p for p in spec["paths"]["/api/waste/data"]["get"]["parameters"] if p["name"] == "sensor_id")
    assert re.search(r"bin_id", description.get("description", ""))
