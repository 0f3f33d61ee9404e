"""The operations console at `/`, in headless Chromium (Debian's, through Playwright) against a live server
with the simulator on. Every page goes through a TCP proxy, so a test can drop the browser's transport.

Skipped without chromium or playwright, except with REQUIRE_BROWSER=1 (CI), where that fails.
"""
import os
import time

import jwt
import pytest
import requests

from tests.browser import ConsoleServer, PageLog, SECRET, TcpProxy, launch, require_browser

pytestmark = [pytest.mark.browser, pytest.mark.live]

SCREENSHOTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "screenshots")
PASSWORD = "s3cret-pass"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# Chrome logs every 4xx response as a console error: the pages that expect one allow it.
HTTP_401 = r"status of 401"
# While the proxy refuses connections, the client's reconnect attempts fail (and are logged) until it is back.
RECONNECT_NOISE = (r"WebSocket connection to .* failed", r"ERR_CONNECTION", r"ERR_EMPTY_RESPONSE",
                   r"Failed to load resource")
DOWNTOWN = {"district": "Downtown", "location": {"type": "Point", "coordinates": [-73.985, 40.748]}}


@pytest.fixture(scope="module")
def browser():
    require_browser()
    playwright, browser = launch()
    yield browser
    browser.close()
    playwright.stop()


@pytest.fixture(scope="module")
def server(browser):
    server = ConsoleServer()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def proxy(server):
    proxy = TcpProxy(server.port)
    yield proxy
    proxy.close()


@pytest.fixture(scope="module")
def users(admin):
    """An operator and a viewer (REST clients), registered once for the module."""
    stamp = int(time.time() * 1000)
    return {"operator": admin.register(f"operator-{stamp}@example.com", "operator", PASSWORD),
            "viewer": admin.register(f"viewer-{stamp}@example.com", "viewer", PASSWORD)}


@pytest.fixture
def open_page(browser, proxy):
    """Open pages in fresh contexts (own storage); afterwards, assert that none made a request to another
    origin or logged an error (beyond what its test allowed)."""
    opened = []

    def open_(viewport=DESKTOP, allow=()):
        context = browser.new_context(viewport=viewport, accept_downloads=True)
        page = context.new_page()
        log = PageLog(page, proxy.url)
        opened.append((context, log, allow))
        return page, log

    yield open_
    problems = []
    for context, log, allow in opened:
        context.close()
        problems += [f"request to another origin: {url}" for url in log.foreign_requests()]
        problems += [f"console error: {error}" for error in log.unexpected_errors(allow)]
    assert problems == []


def sign_in(page, base, email, password=PASSWORD):
    page.goto(base)
    page.fill("#identifier", email)
    page.fill("#password", password)
    page.click("#signin-button")
    page.wait_for_selector(".conn[data-state=live]", timeout=10000)
    page.wait_for_selector(".panel-traffic dd.headline", timeout=5000)


def alert_row(sensor_id, status=None):
    return f".alert[data-sensor='{sensor_id}']" + (f"[data-status='{status}']" if status else "")


def test_sign_in_shows_the_api_error_then_the_console(open_page, proxy, admin):
    page, log = open_page(allow=(HTTP_401,))
    page.goto(proxy.url)
    page.wait_for_selector("#signin-form", state="visible")
    paint = page.evaluate("performance.getEntriesByName('first-contentful-paint')[0].startTime")
    assert paint < 1000

    page.fill("#identifier", "admin@smartcity.com")
    page.fill("#password", "not-the-password")
    page.click("#signin-button")
    message = page.wait_for_selector("#signin-message:not([hidden])")
    expected = requests.post(admin.server.url + "/api/auth/login",
                             json={"email": "admin@smartcity.com", "password": "nope"}, timeout=10)
    assert expected.status_code == 401
    assert message.inner_text() == expected.json()["message"]  # the API's one error shape, shown as is
    assert page.is_hidden("#app")

    page.fill("#password", "admin123")
    page.click("#signin-button")
    page.wait_for_selector(".conn[data-state=live]", timeout=10000)
    assert page.text_content("#account-role") == "admin"
    assert page.is_visible(".jobs-card") and page.is_visible(".rules-card")

    # A reload keeps the session: the console is back, painted and filled within a second (once the
    # simulator has written its first readings: a server that has none yet has nothing to show).
    page.wait_for_selector(".panel-traffic dd.headline")
    started = time.time()
    page.reload()
    page.wait_for_function("() => document.querySelector('.panel-traffic dd.headline')?.textContent.includes('%')")
    assert time.time() - started < 1.0
    assert page.is_hidden("#signin")


def test_map_and_panels_change_live_without_a_reload(open_page, proxy):
    page, _ = open_page()
    sign_in(page, proxy.url, "admin@smartcity.com", "admin123")
    page.evaluate("window.__same_document = true")
    snapshot = """() => JSON.stringify({
        panels: [...document.querySelectorAll('.panel dd')].map((node) => node.textContent),
        markers: [...document.querySelectorAll('.marker')].map((node) => node.dataset.id + '=' + node.dataset.value)})"""
    page.wait_for_selector(".marker.traffic")
    before = page.evaluate(snapshot)
    assert page.locator(".marker").count() >= 60  # 20 traffic, 15 environment, 40 bins, 6 grids
    page.wait_for_function(f"""() => {{
        const now = ({snapshot})(), then = JSON.parse({before!r});
        const parsed = JSON.parse(now);
        return parsed.panels.join() !== then.panels.join() && parsed.markers.join() !== then.markers.join();
    }}""", timeout=15000)
    assert page.evaluate("window.__same_document") is True  # changed live, not by a reload
    assert page.locator(".district").count() == 8 and page.locator(".road").count() > 100

    # A sensor's detail: its latest reading and a chart of recent history (REST), then live points.
    page.click(".marker.environment >> nth=0")
    page.wait_for_selector("#sensor-detail:not([hidden]) dd[data-field=aqi]")
    page.wait_for_selector("#sensor-detail .chart-line", timeout=10000)
    points = page.get_attribute("#sensor-detail .chart-line", "d").count("L")
    page.wait_for_function(f"() => document.querySelector('#sensor-detail .chart-line').getAttribute('d')"
                           f".split('L').length - 1 > {points}", timeout=10000)
    page.wait_for_selector(".unit", timeout=10000)

    # From the keyboard: the sensor picker opens a detail, Escape closes it.
    page.focus("#sensor-pick")
    page.select_option("#sensor-pick", "traffic:TRF-001")
    assert page.wait_for_selector("#sensor-title").text_content() == "TRF-001"
    assert page.evaluate("document.activeElement.id") == "sensor-title"
    page.keyboard.press("Escape")
    page.wait_for_selector("#sensor-detail", state="hidden")


def test_critical_reading_reaches_the_feed_and_acknowledging_updates_another_page(open_page, proxy, admin, users):
    operator, _ = open_page()
    viewer, _ = open_page()
    sign_in(operator, proxy.url, users["operator"].tokens["user"]["email"])
    sign_in(viewer, proxy.url, users["viewer"].tokens["user"]["email"])

    started = time.time()
    admin.environment("ENV-901", "critical", **DOWNTOWN)
    operator.wait_for_selector(alert_row("ENV-901", "active"), timeout=2000)
    assert time.time() - started <= 2.0
    viewer.wait_for_selector(alert_row("ENV-901", "active"), timeout=2000)
    assert "sev-critical" in operator.get_attribute(alert_row("ENV-901"), "class")
    assert "Critical" in operator.inner_text("#banner")  # the visual cue of a new critical alert

    # A viewer has no write controls at all.
    assert viewer.locator("button.ack, button.resolve, button.dispatch").count() == 0
    assert viewer.is_hidden(".tasks-card") and viewer.is_hidden(".jobs-card")

    row = operator.locator(alert_row("ENV-901"))
    row.locator("button.ack").click()
    row.locator("input[name=note]").fill("crew on the way")
    row.locator("button[type=submit]").click()
    updated = viewer.wait_for_selector(alert_row("ENV-901", "acknowledged"), timeout=5000)
    assert "crew on the way" in updated.inner_text()
    assert admin.get("/api/alerts", sensor_id="ENV-901").json()["items"][0]["status"] == "acknowledged"


def test_dropped_transport_shows_reconnecting_then_live_with_no_missed_alert(open_page, proxy, admin, users):
    page, _ = open_page(allow=RECONNECT_NOISE)
    sign_in(page, proxy.url, users["operator"].tokens["user"]["email"])
    page.evaluate("window.__same_document = true")

    proxy.cut(3)
    page.wait_for_selector(".conn[data-state=reconnecting]", timeout=5000)
    assert page.inner_text("#conn") == "Reconnecting…"
    admin.environment("ENV-902", "critical", **DOWNTOWN)  # raised while the page is cut off
    page.wait_for_selector(".conn[data-state=recovered], .conn[data-state=live]", timeout=15000)
    page.wait_for_selector(alert_row("ENV-902"), timeout=5000)
    assert page.locator(alert_row("ENV-902")).count() == 1
    page.wait_for_selector(".conn[data-state=live]", timeout=10000)
    assert page.evaluate("window.__same_document") is True


def test_alerts_missed_while_away_are_replayed_after_a_reload(open_page, proxy, admin, users):
    page, _ = open_page()
    sign_in(page, proxy.url, users["viewer"].tokens["user"]["email"])
    page.goto("about:blank")
    admin.environment("ENV-903", "critical", **DOWNTOWN)
    admin.environment("ENV-903", "ok", **DOWNTOWN)  # back to normal: resolved, so REST's open list lacks it
    page.goto(proxy.url)
    page.wait_for_selector(alert_row("ENV-903", "resolved"), timeout=5000)


def test_alert_filter_is_remembered_across_reloads(open_page, proxy, admin, users):
    page, _ = open_page()
    sign_in(page, proxy.url, users["viewer"].tokens["user"]["email"])
    page.uncheck(".picker-severity input[value=low]")
    page.uncheck(".picker-module input[value=waste]")
    page.reload()
    page.wait_for_selector(".conn[data-state=live]")
    assert not page.is_checked(".picker-severity input[value=low]")
    assert not page.is_checked(".picker-module input[value=waste]")
    assert page.is_checked(".picker-severity input[value=critical]")
    admin.environment("ENV-904", "low", **DOWNTOWN)  # filtered out, by the server's subscription too
    admin.environment("ENV-905", "critical", **DOWNTOWN)
    page.wait_for_selector(alert_row("ENV-905"), timeout=3000)
    assert page.locator(alert_row("ENV-904")).count() == 0


def test_operator_dispatches_and_downloads_a_report(open_page, proxy, users):
    page, _ = open_page()
    sign_in(page, proxy.url, users["operator"].tokens["user"]["email"])
    assert page.is_hidden(".jobs-card") and page.is_hidden(".rules-card")

    page.click(".incident button.dispatch >> nth=0", timeout=15000)  # the simulator reports one on its first tick
    page.wait_for_selector("#toast:has-text('dispatched')", timeout=5000)

    page.select_option("#task-type", "report_generation")
    page.click(".task-form button[type=submit]")
    done = page.wait_for_selector(".task.st-completed button.download", timeout=20000)
    assert page.get_attribute(".task.st-completed progress", "value") == "100"
    with page.expect_download() as download:
        done.click()
    assert download.value.suggested_filename.endswith(".json")


def test_admin_pauses_and_resumes_a_job(open_page, proxy):
    page, _ = open_page()
    sign_in(page, proxy.url, "admin@smartcity.com", "admin123")
    row = "#jobs tr[data-id=simulate_waste]"
    page.click(f"{row} button[data-action=pause]")
    page.wait_for_selector(f"{row}.paused button[data-action=resume]")
    page.click(f"{row} button[data-action=resume]")
    page.wait_for_selector(f"{row}:not(.paused) button[data-action=pause]")
    assert page.locator("#rules input[type=checkbox]").count() >= 5


def test_sign_out_ends_the_session(open_page, proxy, users):
    page, _ = open_page()
    sign_in(page, proxy.url, users["viewer"].tokens["user"]["email"])
    session = page.evaluate("JSON.parse(sessionStorage.getItem('citypulse.session'))")
    page.click("#sign-out")
    assert page.wait_for_selector("#signin-message:not([hidden])").inner_text() == "You have signed out."
    assert page.evaluate("sessionStorage.getItem('citypulse.session')") is None
    refused = requests.post(proxy.url + "/api/auth/refresh", json={"refresh_token": session["refresh_token"]}, timeout=10)
    assert refused.status_code == 401 and refused.json()["error"] == "token_revoked"


def test_revoked_session_returns_to_sign_in_with_a_message(open_page, proxy, admin, users):
    page, _ = open_page(allow=(HTTP_401,))
    operator = users["operator"]
    email = operator.tokens["user"]["email"]
    sign_in(page, proxy.url, email)
    response = admin.post(f"/api/users/{operator.tokens['user']['id']}/revoke-sessions")
    assert response.status_code == 200, response.text
    message = page.wait_for_selector("#signin-message:not([hidden])", timeout=10000)
    assert "sign in again" in message.inner_text()
    assert page.is_hidden("#app") and page.inner_text("#conn") == "Offline"
    users["operator"] = operator.__class__(operator.server, email, PASSWORD)  # later tests sign in afresh


def test_expired_session_returns_to_sign_in_with_a_message(open_page, proxy, users):
    page, _ = open_page(allow=(HTTP_401,))
    user = users["viewer"].tokens["user"]
    past = time.time() - 60

    def token(kind):
        claims = {"sub": user["id"], "role": "viewer", "type": kind, "jti": kind, "sid": "expired-session",
                  "iat": past - 900, "exp": past}
        return jwt.encode(claims, SECRET, algorithm="HS256")

    page.goto(proxy.url)
    page.evaluate("""(session) => sessionStorage.setItem('citypulse.session', JSON.stringify(session))""",
                  {"access_token": token("access"), "refresh_token": token("refresh"), "user": user})
    page.reload()
    message = page.wait_for_selector("#signin-message:not([hidden])", timeout=5000)
    assert "expired" in message.inner_text()
    assert page.is_hidden("#app")


def test_api_docs_render_offline(open_page, proxy):
    page, log = open_page()
    blocked = []

    def offline(route):
        if route.request.url.startswith(proxy.url):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    page.context.route("**/*", offline)
    page.goto(proxy.url + "/api/docs")
    page.wait_for_selector(".opblock", timeout=10000)
    assert page.locator(".opblock").count() >= 40
    assert blocked == []


def test_short_tokens_are_renewed_in_place(browser):
    """4-second access tokens: the console renews them (REST refresh, socket reauthenticate) and stays live,
    on the same connection, with no reconnect."""
    server = ConsoleServer(JWT_ACCESS_TTL_S="4", TOKEN_EXPIRY_NOTICE_S="2", SESSION_SWEEP_S="0.2")
    context = browser.new_context(viewport=DESKTOP)
    try:
        page = context.new_page()
        log = PageLog(page, server.url)
        sent = []
        page.on("websocket", lambda ws: ws.on("framesent", lambda frame: sent.append(str(frame))))
        sign_in(page, server.url, "admin@smartcity.com", "admin123")
        page.evaluate("""() => {
            window.__states = [];
            new MutationObserver(() => window.__states.push(document.querySelector('#conn').dataset.state))
                .observe(document.querySelector('#conn'), {attributes: true});
        }""")
        page.wait_for_timeout(7000)  # well past the first token's life
        assert page.evaluate("window.__states") == []  # never left "live"
        assert any("reauthenticate" in frame for frame in sent)
        assert page.is_visible("#app") and page.is_hidden("#signin")
        page.click("#jobs tr[data-id=retention] button[data-action=run]")  # REST still works
        page.wait_for_selector("#toast:has-text('retention: started')")
        assert log.foreign_requests() == [] and log.unexpected_errors() == []
    finally:
        context.close()
        server.stop()


def test_screenshots_for_the_readme(open_page, proxy, users):
    """docs/screenshots/, generated here (last, so the city has some history): desktop and phone width."""
    os.makedirs(SCREENSHOTS, exist_ok=True)
    desktop, _ = open_page()
    phone, _ = open_page(viewport=PHONE)
    sign_in(desktop, proxy.url, "admin@smartcity.com", "admin123")
    sign_in(phone, proxy.url, users["operator"].tokens["user"]["email"])
    desktop.click(".marker.environment >> nth=2")
    desktop.wait_for_selector("#sensor-detail .chart-line", timeout=10000)
    desktop.wait_for_timeout(6000)  # a few frames, so the sparklines have a shape
    desktop.screenshot(path=os.path.join(SCREENSHOTS, "console-1280x800.png"))
    phone.screenshot(path=os.path.join(SCREENSHOTS, "console-phone.png"))
