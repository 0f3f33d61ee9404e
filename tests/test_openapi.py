"""The OpenAPI spec documents every route, with JWT bearer auth."""
import re

UNDOCUMENTED = {"/api/openapi.json", "/api/docs", "/api/docs/<path:filename>"}


def spec_operations(spec):
    return {(path, method.upper()) for path, item in spec["paths"].items() for method in item
            if method in ("get", "post", "put", "patch", "delete")}


def test_every_route_is_in_the_spec(app, client):
    spec = client.get("/api/openapi.json").get_json()
    documented = spec_operations(spec)
    missing = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api") or rule.rule in UNDOCUMENTED or rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            if (path, method) not in documented:
                missing.append(f"{method} {path}")
    assert missing == []
    assert len(documented) >= 40


def test_spec_declares_bearer_auth_and_public_routes(client):
    spec = client.get("/api/openapi.json").get_json()
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert spec["security"] == [{"bearerAuth": []}]
    assert spec["paths"]["/api/auth/login"]["post"]["security"] == []
    assert spec["paths"]["/api/health"]["get"]["security"] == [{}, {"bearerAuth": []}]  # optional token
    assert spec["paths"]["/api/health/live"]["get"]["security"] == []
    assert spec["paths"]["/api/health/ready"]["get"]["security"] == []


def test_every_operation_has_a_summary(client):
    spec = client.get("/api/openapi.json").get_json()
    bare = [f"{m.upper()} {p}" for p, item in spec["paths"].items() for m, op in item.items()
            if m in ("get", "post", "put", "patch", "delete") and not op.get("summary")]
    assert bare == []


def test_ingest_body_accepts_one_or_a_list(client):
    spec = client.get("/api/openapi.json").get_json()
    body = spec["paths"]["/api/traffic/data"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["oneOf"][0]["$ref"].endswith("/TrafficReading")
    assert body["oneOf"][1]["maxItems"] == 1000
    assert "TrafficReading" in spec["components"]["schemas"]


def test_swagger_ui_is_served(client):
    response = client.get("/api/docs")
    assert response.status_code == 200 and b"swagger" in response.data.lower()
