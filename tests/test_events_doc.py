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
            # http_server.py is the transport below: it writes to sockets the frames broadcast emits.
            if not name.endswith(".py") or path.endswith((os.path.join("realtime", "broadcast.py"),
                                                         os.path.join("src", "http_server.py"))):
                continue
            text = open(path, encoding="utf-8").read()
            if re.search(r"socketio\.emit\(|from flask_socketio import[^\n]*\bemit\b|\bsend\(", text):
                offenders.append(os.path.relpath(path, ROOT))
    assert offenders == []


TOP = {"routes", "events", "schedulers"}
# What each layer (a package, or a single module) must not import: routes/events/schedulers ->
# services -> realtime -> models -> errors/domain, with schemas beside services (they validate
# and dump, and know nothing of sockets or storage).
LAYERS = {
    "domain.py": {"*"},
    "errors.py": TOP | {"services", "realtime", "schemas", "models"},
    "models": TOP | {"services", "realtime", "schemas"},
    "realtime": TOP | {"services", "schemas"},
    "schemas": TOP | {"services", "realtime"},
    "services": TOP,
    "schedulers": {"routes", "events"},
    "events": {"routes", "schedulers"},
}


def upward_imports(layers=LAYERS, root=os.path.join(ROOT, "src")):
    """'src/<file> imports src.<module>' for every import a layer must not make."""
    offenders = []
    for layer, forbidden in layers.items():
        path = os.path.join(root, layer)
        files = [path] if layer.endswith(".py") else [os.path.join(path, n) for n in os.listdir(path)
                                                      if n.endswith(".py")]
        for file in files:
            text = open(file, encoding="utf-8").read()
            for imported in re.findall(r"^\s*(?:from|import) src\.(\w+)", text, flags=re.M):
                if "*" in forbidden or imported in forbidden or f"{imported}.py" in forbidden:
                    offenders.append(f"src/{os.path.relpath(file, root)} imports src.{imported}")
    return offenders


def test_imports_point_downward():
    """No layer imports one above it (see LAYERS)."""
    assert upward_imports() == []


def test_the_layering_check_catches_each_upward_import(tmp_path):
    """The seams issue 16 removed would each fail the check again."""
    for layer, line in [("realtime/wire.py", "from src.schemas.common import isoformat_z"),
                        ("errors.py", "from src.models.rollups import RangeTooLarge"),
                        ("schedulers/housekeeping.py", "from src.events.handlers import clients"),
                        ("schemas/alerts.py", "from src.realtime.rooms import MODULES"),
                        ("domain.py", "from src.config import get_config")]:
        root = tmp_path / layer.replace("/", "_").replace(".py", "")
        target = root / layer
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(line + "\n")
        name = layer if layer.endswith(".py") and "/" not in layer else layer.split("/")[0]
        module = re.match(r"from src\.(\w+)", line).group(1)
        assert upward_imports({name: LAYERS[name]}, str(root)) == [f"src/{layer} imports src.{module}"]
