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


OPERATION_ID = re.compile(r"^[a-z][a-z0-9_]*$")


def operations(spec):
    return [(f"{m.upper()} {p}", op) for p, item in spec["paths"].items() for m, op in item.items()
            if m in ("get", "post", "put", "patch", "delete")]


def test_error_component_is_the_shape_the_server_returns(client):
    """{error, message, errors?}, as src/errors.py builds it; not flask-smorest's {code, status, ...}."""
    spec = client.get("/api/openapi.json").get_json()
    error = spec["components"]["schemas"]["Error"]
    assert set(error["properties"]) == {"error", "message", "errors"}
    assert sorted(error["required"]) == ["error", "message"]
    assert not [name for name in spec["components"]["schemas"] if re.fullmatch(r"Error\d+", name)]


def test_documented_error_responses_use_our_error_schema(client):
    spec = client.get("/api/openapi.json").get_json()
    responses = spec["components"]["responses"]
    for name in ("UNPROCESSABLE_ENTITY", "DEFAULT_ERROR"):
        assert responses[name]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    login = spec["paths"]["/api/auth/login"]["post"]["responses"]
    assert login["422"] == {"$ref": "#/components/responses/UNPROCESSABLE_ENTITY"}


def test_a_real_error_matches_the_documented_schema(client):
    """The documented required fields are what a 422 actually carries."""
    spec = client.get("/api/openapi.json").get_json()
    body = client.post("/api/auth/login", json={}).get_json()
    assert set(spec["components"]["schemas"]["Error"]["required"]) <= set(body)
    assert set(body) <= set(spec["components"]["schemas"]["Error"]["properties"])


def test_every_operation_has_a_readable_unique_operation_id(client):
    spec = client.get("/api/openapi.json").get_json()
    ids = {name: op.get("operationId") for name, op in operations(spec)}
    assert [name for name, op_id in ids.items() if not op_id or not OPERATION_ID.match(op_id)] == []
    assert len(set(ids.values())) == len(ids)
    assert ids["POST /api/auth/login"] == "auth_login"
    assert ids["GET /api/users"] == "users_list_users"
    assert ids["POST /api/alerts/rules"] == "alerts_post_rules"  # a MethodView: method and class


def test_spec_declares_a_server(client):
    spec = client.get("/api/openapi.json").get_json()
    assert spec["servers"] and spec["servers"][0]["url"] == "/"


def test_spec_is_valid_openapi(client):
    from openapi_spec_validator import validate

    validate(client.get("/api/openapi.json").get_json())


def test_swagger_ui_is_served_by_the_app_with_no_outside_origin(client):
    page = client.get("/api/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "http://" not in html and "https://" not in html, "the docs must work without internet"
    assert "jsdelivr" not in page.headers["Content-Security-Policy"]
    for asset in ("swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "swagger-ui.css"):
        assert f"/static/swagger-ui/{asset}" in html
        response = client.get(f"/static/swagger-ui/{asset}")
        assert response.status_code == 200 and len(response.data) > 10_000, asset
        response.close()
    assert client.get("/static/swagger-ui/LICENSE").status_code == 200  # Apache-2.0, kept with the files
