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
    broadcast = open(os.path.join(ROOT, "src", "events", "broadcast.py"), encoding="utf-8").read()
    handlers = open(os.path.join(ROOT, "src", "events", "handlers.py"), encoding="utf-8").read()
    emitted = set(re.findall(r'_emit\("([a-z_]+)"', broadcast) + re.findall(r'emit\("([a-z_]+)"', broadcast + handlers))
    emitted |= {f"{m}_update" for m in ("traffic", "environment", "waste", "energy")}
    emitted |= {f"{m}_alert" for m in ("traffic", "environment", "waste", "energy", "emergency")}
    assert emitted - documented_events() == set()
