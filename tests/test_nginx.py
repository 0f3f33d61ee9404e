"""nginx.conf, run by a real nginx in front of a live server: REST and WebSocket go through."""
import os
import shutil
import subprocess
import tempfile
import time

import pytest
import requests

from tests.conftest import ROOT, free_port
from tests.socket_helpers import Api, RecordingClient


@pytest.fixture
def nginx_in_front(live_server):
    binary = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if binary is None:
        pytest.skip("nginx not installed (apt-get install nginx) ; nginx.conf is checked where it is")
    server = live_server(RATELIMIT_ENABLED="false")
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="citypulse-nginx-")
    conf = open(os.path.join(ROOT, "nginx.conf"), encoding="utf-8").read()
    conf = (conf.replace("server backend:5000", f"server 127.0.0.1:{server.port}")
                .replace("listen 80;", f"listen 127.0.0.1:{port};")
                .replace("resolver 127.0.0.11 valid=10s ipv6=off;", "")
                .replace("worker_processes auto;", f"worker_processes 1;\npid {workdir}/nginx.pid;\n"
                                                   f"error_log {workdir}/error.log;")
                .replace("http {", f"http {{\n    access_log off;\n    client_body_temp_path {workdir}/body;\n"
                                   f"    proxy_temp_path {workdir}/proxy;\n", 1))
    path = os.path.join(workdir, "nginx.conf")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(conf)
    check = subprocess.run([binary, "-t", "-c", path, "-p", workdir], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    proc = subprocess.Popen([binary, "-c", path, "-p", workdir, "-g", "daemon off;"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            requests.get(url + "/api/health", timeout=1)
            break
        except requests.RequestException:
            time.sleep(0.1)
    yield server, url
    proc.terminate()
    proc.wait(5)
    shutil.rmtree(workdir, ignore_errors=True)


def test_rest_and_websocket_through_nginx(nginx_in_front):
    server, url = nginx_in_front
    assert requests.get(url + "/api/health", timeout=5).json()["status"] == "healthy"
    assert requests.get(url + "/elsewhere", timeout=5).status_code == 404
    api = Api(server)
    client = RecordingClient(url, token=api.token).connect()  # WebSocket transport only: needs the Upgrade headers
    try:
        assert client.call("join_room", {"room": "traffic_monitoring"})["ok"]
        api.traffic("T-nginx")
        assert client.wait_for("traffic_update", where=lambda p: p["sensor_id"] == "T-nginx")
    finally:
        client.disconnect()
