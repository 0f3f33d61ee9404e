"""In-process counters for system_update and /api/health: emits per second, clients per room."""
import threading
import time
from collections import Counter, deque

WINDOW_S = 10


class RateCounter:
    """Counts events in one-second buckets over a sliding window."""

    def __init__(self, window_s=WINDOW_S):
        self.window_s = window_s
        self._buckets = deque()
        self._lock = threading.Lock()
        self.total = 0

    def add(self, n=1):
        now = int(time.monotonic())
        with self._lock:
            self.total += n
            if self._buckets and self._buckets[-1][0] == now:
                self._buckets[-1][1] += n
            else:
                self._buckets.append([now, n])
            self._trim(now)

    def _trim(self, now):
        while self._buckets and self._buckets[0][0] <= now - self.window_s:
            self._buckets.popleft()

    def per_second(self):
        """Average rate over the last complete window."""
        now = int(time.monotonic())
        with self._lock:
            self._trim(now)
            count = sum(n for second, n in self._buckets if second < now)
        return round(count / max(1, self.window_s - 1), 2)


emits = RateCounter()
emits_by_event = Counter()
readings_ingested = RateCounter()
refused_events = RateCounter()


def record_emit(event):
    emits.add()
    emits_by_event[event] += 1


def room_counts(socketio, namespace="/"):
    """Clients per room on this process (user: and sensor rooms summarised, not listed)."""
    server = getattr(socketio, "server", None)
    if server is None:
        return {"connected": 0, "rooms": {}}
    rooms = server.manager.rooms.get(namespace, {})
    sids = rooms.get(None, {})
    counts, sensor_rooms, user_rooms = {}, 0, 0
    for room, members in list(rooms.items()):
        if room is None or room in sids:  # every client also sits in a room named after its sid
            continue
        if room.startswith("user:"):
            user_rooms += 1
        elif room.startswith("sensor:"):
            sensor_rooms += 1
        elif members:
            counts[room] = len(members)
    connected = len(sids)
    return {"connected": connected, "rooms": counts, "sensor_rooms": sensor_rooms, "user_rooms": user_rooms}


def snapshot(socketio):
    """The realtime section of system_update and /api/health."""
    rooms = room_counts(socketio)
    return {
        "connected_clients": rooms["connected"],
        "rooms": rooms["rooms"],
        "sensor_rooms": rooms.get("sensor_rooms", 0),
        "events_emitted_per_s": emits.per_second(),
        "events_emitted_total": emits.total,
        "client_events_refused_total": refused_events.total,
        "readings_ingested_per_s": readings_ingested.per_second(),
        "readings_ingested_total": readings_ingested.total,
    }
