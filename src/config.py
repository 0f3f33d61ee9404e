"""Configuration, read from environment variables and nowhere else.

`get_config(name)` picks Development / Testing / Production; `APP_ENV` names the
default. Every variable is documented, with its default, in README.md.
"""
import os
import re
import secrets
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from marshmallow import ValidationError
from marshmallow.validate import Email

DEFAULT_JWT_SECRET = "dev-insecure-jwt-secret-change-me"
DEFAULT_ADMIN_EMAIL = "admin@smartcity.com"
DEFAULT_ADMIN_PASSWORD = "admin123"
# The registration rule (src/schemas/auth.py), which the users collection's validator also enforces.
USERNAME_PATTERN = r"^[A-Za-z0-9_.-]{3,32}$"


class ConfigError(RuntimeError):
    """The configuration is unsafe or inconsistent; the server must not start."""


def _env(name, default=None):
    value = os.environ.get(name)
    return default if value in (None, "") else value


def _int(name, default):
    return int(_env(name, default))


def _float(name, default):
    return float(_env(name, default))


# Mains frequency is 60 Hz in most of the Americas and in a few countries elsewhere, 50 Hz in the rest
# of the world. Zones (or zone prefixes) listed here are the 60 Hz exceptions and the 50 Hz exceptions
# within the Americas; medium-voltage distribution is typically 12.47 kV on 60 Hz grids and 11 kV on 50 Hz.
SIXTY_HZ_ZONES = ("America/", "US/", "Canada/", "Pacific/Honolulu", "Pacific/Guam", "Pacific/Saipan",
                  "Asia/Seoul", "Asia/Taipei", "Asia/Manila", "Asia/Riyadh", "Africa/Monrovia")
FIFTY_HZ_IN_AMERICAS = ("America/Argentina/", "America/Buenos_Aires", "America/Santiago", "America/Punta_Arenas",
                        "America/Montevideo", "America/Asuncion", "America/La_Paz", "America/Cayenne",
                        "America/Nuuk", "America/Godthab", "America/Scoresbysund", "America/Danmarkshavn",
                        "America/Thule")
NOMINAL_GRID = {60: 12.47, 50: 11.0}  # Hz -> kV


def grid_frequency_of(zone):
    """The mains frequency (Hz) of the region a tz database zone name belongs to."""
    sixty = zone.startswith(SIXTY_HZ_ZONES) and not zone.startswith(FIFTY_HZ_IN_AMERICAS)
    return 60 if sixty else 50


def _bool(name, default):
    value = _env(name)
    if value is None:
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


class Config:
    ENV_NAME = "base"
    SERVICE_NAME = "citypulse"
    VERSION = "0.1.0"
    TESTING = False
    DEBUG = False

    HOST = _env("HOST", "0.0.0.0")
    PORT = _int("PORT", 5000)
    # eventlet is the production server; threading is the debugging escape hatch.
    SOCKETIO_ASYNC_MODE = _env("SOCKETIO_ASYNC_MODE", "eventlet")
    # eventlet.wsgi caps concurrent connections at 1024 unless told otherwise.
    MAX_CONNECTIONS = _int("MAX_CONNECTIONS", 10000)
    # eventlet.wsgi times nothing out; src/http_server.py does, like nginx's client timeouts. The
    # request line + headers must arrive within HEADER of their first byte (a total: trickled
    # headers would hold a slot for ever); a connection waits IDLE for its next request (above
    # nginx's 60 s upstream keepalive_timeout, so nginx closes its idle upstreams first); a body
    # may pause BODY between reads. WebSockets are exempt: engine.io pings them.
    HTTP_HEADER_TIMEOUT_S = _float("HTTP_HEADER_TIMEOUT_S", 10)
    HTTP_IDLE_TIMEOUT_S = _float("HTTP_IDLE_TIMEOUT_S", 75)
    HTTP_BODY_TIMEOUT_S = _float("HTTP_BODY_TIMEOUT_S", 30)
    CORS_ALLOWED_ORIGINS = _env("CORS_ALLOWED_ORIGINS", "*")
    TRUST_PROXY_HOPS = _int("TRUST_PROXY_HOPS", 0)
    LOG_LEVEL = _env("LOG_LEVEL", "INFO")

    # Storage: MongoDB when MONGO_URI is set, the embedded engine otherwise.
    MONGO_URI = _env("MONGO_URI")
    MONGO_DB_NAME = _env("MONGO_DB_NAME", "citypulse")
    # Server selection, connect and socket reads: a MongoDB that stops answering costs a
    # request at most this long before its 503.
    MONGO_TIMEOUT_MS = _int("MONGO_TIMEOUT_MS", 3000)
    # Without MONGO_URI each process has its own embedded database: production refuses that
    # unless told it is a single-process demo.
    ALLOW_EMBEDDED_DB = _bool("ALLOW_EMBEDDED_DB", False)
    # The embedded engine has no TTL monitor and slows with size, so it keeps hours.
    RAW_RETENTION_HOURS = _int("RAW_RETENTION_HOURS", 168 if MONGO_URI else 3)

    REDIS_URL = _env("REDIS_URL")

    # Auth
    JWT_SECRET_KEY = _env("JWT_SECRET_KEY", DEFAULT_JWT_SECRET)
    JWT_ACCESS_TTL_S = _int("JWT_ACCESS_TTL_S", 15 * 60)
    JWT_REFRESH_TTL_S = _int("JWT_REFRESH_TTL_S", 7 * 24 * 3600)
    BCRYPT_ROUNDS = _int("BCRYPT_ROUNDS", 12)
    # Hashes run off the event loop, at most this many at once; past BCRYPT_QUEUE_MAX waiting, 503.
    BCRYPT_CONCURRENCY = _int("BCRYPT_CONCURRENCY", 2)
    BCRYPT_QUEUE_MAX = _int("BCRYPT_QUEUE_MAX", 64)
    ADMIN_EMAIL = _env("ADMIN_EMAIL", DEFAULT_ADMIN_EMAIL)
    ADMIN_USERNAME = _env("ADMIN_USERNAME", "admin")
    ADMIN_PASSWORD = _env("ADMIN_PASSWORD", DEFAULT_ADMIN_PASSWORD)
    ALLOW_SELF_REGISTRATION = _bool("ALLOW_SELF_REGISTRATION", False)

    # HTTP
    MAX_CONTENT_LENGTH = _int("MAX_CONTENT_LENGTH", 1024 * 1024)
    RATELIMIT_ENABLED = _bool("RATELIMIT_ENABLED", True)
    RATELIMIT_DEFAULT = _env("RATELIMIT_DEFAULT", "100 per minute")
    RATELIMIT_LOGIN = _env("RATELIMIT_LOGIN", "10 per minute")
    RATELIMIT_HEADERS_ENABLED = True
    RATELIMIT_KEY_PREFIX = _env("RATELIMIT_KEY_PREFIX", "citypulse")
    # With Redis down, limits are counted in this process's memory instead of failing requests
    # (Flask-Limiter probes Redis again with a backoff and switches back by itself).
    RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True
    RATELIMIT_SWALLOW_ERRORS = True
    # Redis answers in well under a millisecond; one that hangs (accepts, never answers) costs a
    # request at most this long per command, for our client and the rate limiter's storage alike.
    REDIS_TIMEOUT_S = _float("REDIS_TIMEOUT_S", 0.5)
    RATELIMIT_STORAGE_OPTIONS = {"socket_timeout": REDIS_TIMEOUT_S, "socket_connect_timeout": REDIS_TIMEOUT_S}

    SCHEDULER_ENABLED = _bool("SCHEDULER_ENABLED", True)
    # Leader election between processes: the lock expires unless renewed every third of this.
    SCHEDULER_LOCK_TTL_S = _float("SCHEDULER_LOCK_TTL_S", 15)
    ROLLUP_INTERVAL_S = _float("ROLLUP_INTERVAL_S", 60)
    HOUSEKEEPING_INTERVAL_S = _float("HOUSEKEEPING_INTERVAL_S", 300)
    STALE_CHECK_INTERVAL_S = _float("STALE_CHECK_INTERVAL_S", 30)
    SYSTEM_UPDATE_INTERVAL_S = _float("SYSTEM_UPDATE_INTERVAL_S", 5)
    ALERT_RETENTION_DAYS = _int("ALERT_RETENTION_DAYS", 90 if MONGO_URI else 7)
    ROLLUP_RETENTION_DAYS = _int("ROLLUP_RETENTION_DAYS", 400)

    # Background tasks
    TASK_WORKERS = _int("TASK_WORKERS", 2)  # in-process workers; 0 leaves tasks to `run.py --worker`
    TASK_LEASE_S = _float("TASK_LEASE_S", 30)
    TASK_POLL_S = _float("TASK_POLL_S", 1)
    TASK_RETRY_BACKOFF_S = _float("TASK_RETRY_BACKOFF_S", 2)
    TASK_MAX_ATTEMPTS = _int("TASK_MAX_ATTEMPTS", 3)

    # The simulated city: on in development, off in production (it writes into the real database).
    SEED_CITY = _bool("SEED_CITY", True)  # grids, emergency units and bins of the demo city on first start
    SIMULATION_ENABLED = _bool("SIMULATION_ENABLED", True)
    SIMULATION_SEED = _int("SIMULATION_SEED", 42)
    # SIMULATION_INTERVAL_S sets every module's interval; SIMULATION_INTERVAL_<MODULE>_S one module's.
    SIMULATION_INTERVALS = {
        module: _float(f"SIMULATION_INTERVAL_{module.upper()}_S", _env("SIMULATION_INTERVAL_S", default))
        for module, default in (("traffic", 10), ("environment", 15), ("waste", 30), ("energy", 15),
                                ("emergency", 20))
    }
    # How often real sensors are expected to report; silent for 3x this = offline. Past
    # SENSOR_FORGET_AFTER_H of silence a sensor counts as decommissioned and is not alerted on.
    SENSOR_EXPECTED_INTERVALS = {
        module: _float(f"SENSOR_INTERVAL_{module.upper()}_S", default)
        for module, default in (("traffic", 60), ("environment", 60), ("waste", 300), ("energy", 60))
    }
    SENSOR_FORGET_AFTER_H = _float("SENSOR_FORGET_AFTER_H", 24)
    SIM_TRAFFIC_SENSORS = _int("SIM_TRAFFIC_SENSORS", 20)
    SIM_ENVIRONMENT_SENSORS = _int("SIM_ENVIRONMENT_SENSORS", 15)
    SIM_BINS = _int("SIM_BINS", 40)
    SIM_GRIDS = _int("SIM_GRIDS", 6)
    SIM_UNITS = _int("SIM_UNITS", 12)
    SIM_BIN_HOURS_TO_FILL = _float("SIM_BIN_HOURS_TO_FILL", 6)
    # Every hour-of-day, weekday and calendar day in analytics is local to this zone (tz database name).
    CITY_TIMEZONE = _env("CITY_TIMEZONE", "America/New_York")

    # Socket.IO
    SOCKET_EVENTS_PER_SECOND = _float("SOCKET_EVENTS_PER_SECOND", 20)
    SOCKET_EVENTS_BURST = _int("SOCKET_EVENTS_BURST", 40)
    # The largest message a client may send; our events are small JSON objects (engine.io's own
    # default is 1 MB, and every byte of a WebSocket frame costs CPU to unmask).
    SOCKET_MAX_MESSAGE_BYTES = _int("SOCKET_MAX_MESSAGE_BYTES", 64 * 1024)
    # engine.io's heartbeat: a ping every interval, and a peer that has not answered within the
    # timeout is closed (the Node server's and python-engineio's defaults), whole seconds.
    SOCKET_PING_INTERVAL_S = _int("SOCKET_PING_INTERVAL_S", 25)
    SOCKET_PING_TIMEOUT_S = _int("SOCKET_PING_TIMEOUT_S", 20)
    ALERT_REPLAY_MAX = _int("ALERT_REPLAY_MAX", 500)
    SOCKETIO_CHANNEL = _env("SOCKETIO_CHANNEL", "citypulse-socketio")
    # Sockets are checked this often for expired or revoked tokens and changed accounts.
    SESSION_SWEEP_S = _float("SESSION_SWEEP_S", 2)
    # Connection state recovery: a client that reconnects within SESSION_RECOVERY_S gets its rooms,
    # its alert subscription and every broadcast it missed (0 turns recovery off). The packet log
    # keeps at most SESSION_RECOVERY_MAX_PACKETS broadcasts (a bound on memory); older positions
    # give a fresh session.
    SESSION_RECOVERY_S = _float("SESSION_RECOVERY_S", 120)
    SESSION_RECOVERY_MAX_PACKETS = _int("SESSION_RECOVERY_MAX_PACKETS", 20000)
    # `token_expiring` is sent this long before a socket's access token expires.
    TOKEN_EXPIRY_NOTICE_S = _float("TOKEN_EXPIRY_NOTICE_S", 60)
    # Outbound backlog bounds, in packets queued for one connection. Past SOCKET_MAX_BACKLOG a client
    # gets `slow_consumer` and is disconnected (Home Assistant uses 512); a stream subscriber past
    # STREAM_MAX_BACKLOG is skipped and later gets one catch-up frame instead.
    SOCKET_MAX_BACKLOG = _int("SOCKET_MAX_BACKLOG", 512)
    # The kernel send buffer of a WebSocket connection (0 leaves the OS's autotuning, up to MBs each).
    SOCKET_SEND_BUFFER_BYTES = _int("SOCKET_SEND_BUFFER_BYTES", 65536)
    STREAM_MAX_BACKLOG = _int("STREAM_MAX_BACKLOG", 32)
    STREAM_TICK_S = _float("STREAM_TICK_S", 0.05)  # how often due stream frames are looked for
    SOCKET_CONNECTS_PER_MINUTE = _float("SOCKET_CONNECTS_PER_MINUTE", 60)
    SOCKET_CONNECTS_BURST = _int("SOCKET_CONNECTS_BURST", 20)
    # A connection must complete the Socket.IO CONNECT (authenticate) within this, or is closed.
    SOCKET_CONNECT_TIMEOUT_S = _float("SOCKET_CONNECT_TIMEOUT_S", 10)
    # Client-caused failures (bad packets, unknown events, refused payloads) are counted always
    # and logged at most once per connection per this interval.
    CLIENT_FAULT_LOG_INTERVAL_S = _float("CLIENT_FAULT_LOG_INTERVAL_S", 60)

    # OpenAPI (flask-smorest)
    API_TITLE = "CityPulse API"
    API_VERSION = VERSION
    OPENAPI_VERSION = "3.0.3"
    OPENAPI_URL_PREFIX = "/api"
    OPENAPI_JSON_PATH = "openapi.json"
    OPENAPI_SWAGGER_UI_PATH = "/docs"
    # Swagger UI is vendored (src/static/swagger-ui, swagger-ui-dist 5.35.0, Apache-2.0): the docs
    # must work on a network without internet.
    OPENAPI_SWAGGER_UI_URL = "/static/swagger-ui/"
    API_SPEC_OPTIONS = {
        "components": {
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            }
        },
        "security": [{"bearerAuth": []}],
        # Paths already start with /api: the server is the origin the spec is served from.
        "servers": [{"url": "/", "description": "This server"}],
    }

    # The grid's nominal frequency and distribution voltage: the simulator's set points and the
    # frequency alert band. They default to the region of CITY_TIMEZONE (60 Hz / 12.47 kV in North
    # America, 50 Hz / 11 kV in Europe), or are set explicitly. Properties, so a config that sets only
    # CITY_TIMEZONE gets its region's grid.
    @property
    def GRID_NOMINAL_FREQUENCY_HZ(self):
        return _float("GRID_NOMINAL_FREQUENCY_HZ", grid_frequency_of(self.CITY_TIMEZONE))

    @property
    def GRID_NOMINAL_VOLTAGE_KV(self):
        return _float("GRID_NOMINAL_VOLTAGE_KV", NOMINAL_GRID.get(self.GRID_NOMINAL_FREQUENCY_HZ, 11.0))

    def validate(self):
        """Raise ConfigError when this configuration is unsafe to serve with."""
        problems = self.problems()
        if problems:
            raise ConfigError(f"Refusing to start in {self.ENV_NAME}: " + "; ".join(problems))

    def warnings(self):
        """Settings that work but are probably not what was meant, as sentences to log at start."""
        if self.REDIS_URL and not self.MONGO_URI and not self.TESTING:
            # Redis signals "several processes"; the embedded engine cannot be shared between them.
            return ["REDIS_URL is set but MONGO_URI is not: every process has its own embedded database, so "
                    "processes sharing Redis do NOT share users, tokens or data (a token from one process is "
                    "refused by another). Set MONGO_URI to run more than one process."]
        return []

    def problems(self):
        """What is wrong with this configuration, as sentences."""
        problems = []
        if len((self.ADMIN_PASSWORD or "").encode("utf-8")) > 72:
            problems.append("ADMIN_PASSWORD must be at most 72 bytes (bcrypt's limit)")
        # A default admin the users validator refuses would make bootstrap retry for ever.
        if not re.fullmatch(USERNAME_PATTERN, self.ADMIN_USERNAME or ""):
            problems.append("ADMIN_USERNAME must be 3-32 letters, digits, '_', '.' or '-'")
        try:  # the login schema's own check, so the admin can always sign in with it
            Email()(self.ADMIN_EMAIL or "")
        except ValidationError:
            problems.append("ADMIN_EMAIL must be an email address")
        try:
            ZoneInfo(self.CITY_TIMEZONE)
        except (ZoneInfoNotFoundError, ValueError):
            problems.append(f"CITY_TIMEZONE must be a tz database name such as America/New_York, "
                            f"not {self.CITY_TIMEZONE!r}")
        if self.GRID_NOMINAL_FREQUENCY_HZ not in (50, 60):
            problems.append("GRID_NOMINAL_FREQUENCY_HZ must be 50 or 60")
        if not 0.1 <= self.GRID_NOMINAL_VOLTAGE_KV <= 1200:
            problems.append("GRID_NOMINAL_VOLTAGE_KV must be between 0.1 and 1200")
        return problems


class DevelopmentConfig(Config):
    ENV_NAME = "development"
    DEBUG = False  # the reloader and debugger don't mix with eventlet
    # A published default secret would let anyone who reaches a dev box forge admin tokens, so
    # an unset secret is random per process (tokens end with a restart). Several dev processes
    # sharing Redis need JWT_SECRET_KEY set.
    JWT_SECRET_KEY = _env("JWT_SECRET_KEY") or secrets.token_urlsafe(48)


class TestingConfig(Config):
    ENV_NAME = "testing"
    TESTING = True
    MONGO_URI = _env("TEST_MONGO_URI")
    MONGO_DB_NAME = _env("TEST_MONGO_DB_NAME", "citypulse_test")
    REDIS_URL = None  # tests opt in to Redis explicitly
    BCRYPT_ROUNDS = 4  # the minimum bcrypt accepts; keeps the suite fast
    RAW_RETENTION_HOURS = 720  # tests post readings days in the past; retention tests set their own
    RATELIMIT_ENABLED = False  # rate-limit tests switch it back on
    SOCKET_CONNECTS_BURST = 100000  # tests connect the same user hundreds of times; the limit's own test sets it
    SCHEDULER_ENABLED = False
    SIMULATION_ENABLED = False
    TASK_WORKERS = 0  # tests run workers explicitly
    SEED_CITY = False
    SOCKETIO_ASYNC_MODE = "threading"
    ADMIN_PASSWORD = DEFAULT_ADMIN_PASSWORD
    JWT_SECRET_KEY = "testing-secret-key-that-is-long-enough-for-hs256"


class ProductionConfig(Config):
    ENV_NAME = "production"
    SEED_CITY = _bool("SEED_CITY", False)
    SIMULATION_ENABLED = _bool("SIMULATION_ENABLED", False)

    def problems(self):
        problems = super().problems()
        if not self.MONGO_URI and not self.ALLOW_EMBEDDED_DB:
            problems.append("MONGO_URI must be set (the embedded database lives in one process and is lost on "
                            "restart; set ALLOW_EMBEDDED_DB=true for a single-process demo)")
        if self.JWT_SECRET_KEY in (None, "", DEFAULT_JWT_SECRET) or len(self.JWT_SECRET_KEY) < 32:
            problems.append("JWT_SECRET_KEY must be set to a random value of at least 32 characters")
        if self.ADMIN_PASSWORD in (None, "", DEFAULT_ADMIN_PASSWORD):
            problems.append("ADMIN_PASSWORD must be set and must not be the development default")
        elif len(self.ADMIN_PASSWORD) < 8:
            problems.append("ADMIN_PASSWORD must be at least 8 characters")
        return problems


CONFIGS = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}


def get_config(name=None):
    """Return a config instance for `name`, or for APP_ENV (default development)."""
    name = (name or _env("APP_ENV", "development")).lower()
    if name not in CONFIGS:
        raise ConfigError(f"APP_ENV must be one of {sorted(CONFIGS)}, not {name!r}")
    return CONFIGS[name]()
