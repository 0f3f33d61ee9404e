"""docs/events.md is the Socket.IO contract: every event it documents is exercised by a test."""
import os
import re

from tests.conftest import ROOT


def documented_events():
    text = open(os.path.join(ROOT, "docs", "events.md"), encoding="utf-8").read()
    events = set()
    for heading in re.findall(r"^### (.+)$", text, flags=re.M):
        events.update(name.strip() for name in heading.split(","))
    return events


def test_every_documented_event_has_a_test():
    tests_dir = os.path.join(ROOT, "tests")
    sources = "".join(open(os.path.join(tests_dir, name), encoding="utf-8").read()
                      for name in os.listdir(tests_dir) if name.startswith("test_") and name != "test_events_doc.py")
    events = documented_events()
    assert len(events) >= 20
    untested = sorted(e for e in events if f'"{e}"' not in sources)
    assert untested == []


def test_every_emitted_event_is_documented():
    broadcast = open(os.path.join(ROOT, "src", "realtime", "broadcast.py"), encoding="utf-8").read()
    handlers = open(os.path.join(ROOT, "src", "events", "handlers.py"), encoding="utf-8").read()
    emitted = set(re.findall(r'(?:_emit|_reply|emit)\("([a-z_]+)"', broadcast + handlers))
    assert "socketio.emit" not in handlers and "emit(" not in handlers.replace("broadcast.emit_", "")
    emitted |= {f"{m}_update" for m in ("traffic", "environment", "waste", "energy")}
    emitted |= {f"{m}_alert" for m in ("traffic", "environment", "waste", "energy", "emergency")}
    assert emitted - documented_events() == set()


def test_only_the_broadcast_module_emits():
    offenders = []
    for folder, _, files in os.walk(os.path.join(ROOT, "src")):
        for name in files:
            path = os.path.join(folder, name)
            if not name.endswith(".py") or path.endswith(os.path.join("realtime", "broadcast.py")):
                continue
            text = open(path, encoding="utf-8").read()
            if re.search(r"socketio\.emit\(|from flask_socketio import[^\n]*\bemit\b|\bsend\(", text):
                offenders.append(os.path.relpath(path, ROOT))
    assert offenders == []


def test_imports_point_downward():
    """routes/events/schedulers -> services -> models; realtime, schemas and models never import services."""
    layers = {"models": {"services", "routes", "events", "schedulers", "realtime"},
              "realtime": {"services", "routes", "events", "schedulers"},
              "schemas": {"services", "routes", "events", "schedulers"},
              "services": {"routes", "events", "schedulers"}}
    offenders = []
    for layer, forbidden in layers.items():
        folder = os.path.join(ROOT, "src", layer)
        for name in os.listdir(folder):
            if not name.endswith(".py"):
                continue
            text = open(os.path.join(folder, name), encoding="utf-8").read()
            for imported in re.findall(r"^\s*(?:from|import) src\.(\w+)", text, flags=re.M):
                if imported in forbidden:
                    offenders.append(f"src/{layer}/{name} imports src.{imported}")
    assert offenders == []
