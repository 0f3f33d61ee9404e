"""Revocation with Redis as a copy of MongoDB's record: nothing revoked is accepted across outages."""
import pytest
import redis

from src import auth, outages
from src.models import revoked_tokens
from tests.conftest import bearer, login


def revoked_keys(url):
    return redis.Redis.from_url(url).keys("citypulse:revoked*")


def test_a_revocation_that_missed_redis_is_refused_before_any_sync(app_factory, redis_db, monkeypatch):
    app = app_factory(REDIS_URL=redis_db)
    client = app.test_client()
    auth.sync_revocations(app)  # Redis loaded and trusted, as after start-up
    tokens = login(client)

    # Redis fails during the logout (it is down, or this process cannot reach it)...
    monkeypatch.setattr(auth, "_redis_set_many",
                        lambda entries: outages.redis.failed(ConnectionError("connection refused")) or False)
    assert client.post("/api/auth/logout", headers=bearer(tokens["access_token"]), json={}).status_code == 200
    monkeypatch.undo()
    # ...and comes back with its data (AOF) and the "loaded" marker, but without this revocation.
    assert redis.Redis.from_url(redis_db).exists("citypulse:revocations:loaded")
    assert revoked_keys(redis_db) == []
    profile = client.get("/api/auth/profile", headers=bearer(tokens["access_token"]))
    assert profile.status_code == 401 and profile.get_json()["error"] == "token_revoked"

    # The watchdog's sync copies it over; from then on Redis answers, and still refuses it.
    assert auth.sync_revocations(app) == 2  # the token and its session
    assert len(revoked_keys(redis_db)) == 2
    assert app.extensions["revocation_sync"]["outages_seen"] == outages.redis.outages_total
    assert client.get("/api/auth/profile", headers=bearer(tokens["access_token"])).status_code == 401


def test_an_emptied_redis_is_reloaded_completely(app_factory, redis_db, monkeypatch):
    monkeypatch.setattr(revoked_tokens, "SYNC_BATCH", 3)
    app = app_factory(REDIS_URL=redis_db)
    client = app.test_client()
    auth.sync_revocations(app)
    revoked = []
    for _ in range(8):
        tokens = login(client)
        assert client.post("/api/auth/logout", headers=bearer(tokens["access_token"]), json={}).status_code == 200
        revoked.append(tokens)
    assert len(revoked_keys(redis_db)) == 16
    redis.Redis.from_url(redis_db).flushdb()  # a restart without persistence
    for tokens in revoked:  # answered from MongoDB meanwhile
        assert client.get("/api/auth/profile", headers=bearer(tokens["access_token"])).status_code == 401
    auth.sync_revocations(app)
    assert len(revoked_keys(redis_db)) == 16, "every batch, not the first one only"
    assert redis.Redis.from_url(redis_db).exists("citypulse:revocations:loaded")
    for tokens in revoked:
        assert client.get("/api/auth/profile", headers=bearer(tokens["access_token"])).status_code == 401
        assert client.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code == 401


@pytest.mark.parametrize("with_redis", [False, True], ids=["mongodb", "redis"])
def test_one_lookup_tells_which_of_many_tokens_are_revoked(app_factory, redis_db, with_redis, monkeypatch):
    """The session sweeper checks every open socket's token at once; each kind of revocation counts."""
    app = app_factory(**({"REDIS_URL": redis_db} if with_redis else {}))
    with app.test_request_context():
        if with_redis:
            auth.sync_revocations(app)
        user, other = {"_id": "u-1", "role": "operator"}, {"_id": "u-2", "role": "viewer"}
        signed_out, same_session, by_jti, older, fine = (
            auth.encode_token(user, auth.ACCESS, session_id="s-out")[1],
            auth.encode_token(user, auth.ACCESS, session_id="s-out")[1],
            auth.encode_token(other, auth.ACCESS)[1],
            auth.encode_token(other, auth.ACCESS)[1],
            auth.encode_token(user, auth.ACCESS)[1])
        auth.revoke_session(signed_out)
        auth.revoke(by_jti)
        auth.revoke_user_tokens("u-2")  # every older token of u-2 (by_jti, older)
        newer = auth.encode_token(other, auth.ACCESS)[1]
        newer["iat"] += 1  # after the cutoff (whole-microsecond claims, same clock)
        queries = []
        collection_type = type(app.extensions["mongo_db"].revoked_tokens)
        find = collection_type.find
        monkeypatch.setattr(collection_type, "find", lambda self, *a, **k: queries.append(a) or find(self, *a, **k))
        revoked = auth.revoked_among([signed_out, same_session, by_jti, older, fine, newer] * 50)
        assert revoked == {signed_out["jti"], same_session["jti"], by_jti["jti"], older["jti"]}
        assert len(queries) == (0 if with_redis else 1)  # Redis answers alone once loaded
