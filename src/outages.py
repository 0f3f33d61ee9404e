"""Dependency outages, logged as one line when they start, a reminder a minute, one line when they end.

A dependency that is down fails every request that touches it; logging each failure buried
the one line an operator needs under thousands (971 traceback lines in 7 s with Redis gone).
Callers report each failure and success; this module decides what is worth a log line, and
keeps the state that /api/health shows.
"""
import logging
import threading
import time

log = logging.getLogger("citypulse.outages")

REMINDER_S = 60.0


class Outage:
    """The up/down state of one dependency in this process."""

    def __init__(self, name, reminder_s=REMINDER_S):
        self.name = name
        self.reminder_s = reminder_s
        self._lock = threading.Lock()
        self.down_since = None  # monotonic time of the first failure, None while up
        self.failures = 0  # failures during the current outage
        self.outages_total = 0
        self.last_error = None
        self._last_logged = 0.0

    @property
    def is_down(self):
        return self.down_since is not None

    def failed(self, exc=None):
        """Report a failure; logs only the first of an outage and a reminder every `reminder_s`."""
        now = time.monotonic()
        error = _describe(exc)
        with self._lock:
            self.failures += 1
            self.last_error = error
            if self.down_since is None:
                self.down_since, self._last_logged = now, now
                self.outages_total += 1
                log.error("%s unavailable (%s); degrading until it returns", self.name, error)
            elif now - self._last_logged >= self.reminder_s:
                self._last_logged = now
                log.error("%s still unavailable after %.0f s (%d failures; last: %s)", self.name,
                          now - self.down_since, self.failures, error)

    def recovered(self):
        """Report a success; logs the end of an outage once."""
        if self.down_since is None:  # the common case, without the lock
            return
        with self._lock:
            if self.down_since is None:
                return
            duration = time.monotonic() - self.down_since
            log.warning("%s recovered after %.1f s (%d failures)", self.name, duration, self.failures)
            self.down_since, self.failures = None, 0

    def reset(self):
        """Forget the state (tests build many apps in one process)."""
        with self._lock:
            self.down_since, self.failures, self.outages_total, self.last_error = None, 0, 0, None

    def snapshot(self):
        """For /api/health: is it down, since how long, and the last error."""
        down_for = round(time.monotonic() - self.down_since, 1) if self.down_since is not None else None
        return {"down": self.is_down, "down_for_s": down_for, "outages_total": self.outages_total,
                "last_error": self.last_error if self.is_down else None}


def _describe(exc):
    if exc is None:
        return "no answer"
    text = str(exc).splitlines()[0][:160] if str(exc) else ""
    return f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__


# One per dependency, per process.
redis = Outage("redis")
mongodb = Outage("mongodb")
