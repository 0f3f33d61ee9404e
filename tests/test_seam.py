"""The replay/live seam guard, driven deterministically at the client-manager level."""
import socketio

from src.realtime.seam import GuardedManager, SeamGuards


def make_server():
    guards = SeamGuards()
    manager = GuardedManager()
    manager.seam_guards = guards
    server = socketio.Server(client_manager=manager, async_mode="threading")
    sent = []
    server._send_eio_packet = lambda eio_sid, pkt: sent.append((eio_sid, pkt.data))
    for eio_sid in ("eio-a", "eio-b"):
        manager.connect(eio_sid, "/")
    sids = {eio: sid for sid, eio in manager.rooms["/"][None].items()}
    for sid in manager.rooms["/"][None]:
        manager.basic_enter_room(sid, "/", "alerts:environment:critical")
    return server, manager, guards, sent, sids


def delivered(sent, sids):
    return [sids[eio] for eio, _ in sent]


def test_live_alert_already_replayed_is_skipped_for_that_client_only():
    server, manager, guards, sent, sids = make_server()
    guarded = list(sids.values())[0]
    guards.open(guarded)
    assert guards.claim_for_replay(guarded, ["alert-1"]) == ["alert-1"]
    server.emit("environment_alert", {"id": "alert-1"}, to="alerts:environment:critical")
    assert guarded not in delivered(sent, sids)
    assert len(delivered(sent, sids)) == 1  # the other client still gets it


def test_alert_delivered_live_first_is_not_replayed():
    server, manager, guards, sent, sids = make_server()
    guarded = list(sids.values())[0]
    guards.open(guarded)
    server.emit("environment_alert", {"id": "alert-2"}, to="alerts:environment:critical")
    assert guarded in delivered(sent, sids)
    assert guards.claim_for_replay(guarded, ["alert-1", "alert-2", "alert-3"]) == ["alert-1", "alert-3"]


def test_replayed_copies_and_unguarded_clients_pass_untouched():
    server, manager, guards, sent, sids = make_server()
    guarded = list(sids.values())[0]
    guards.open(guarded)
    guards.claim_for_replay(guarded, ["alert-9"])
    server.emit("environment_alert", {"id": "alert-9", "replayed": True}, to=guarded)
    assert delivered(sent, sids) == [guarded]
    guards.close(guarded)
    server.emit("environment_alert", {"id": "alert-9"}, to="alerts:environment:critical")
    assert sorted(delivered(sent, sids)[1:]) == sorted(sids.values())


def test_redis_manager_delivers_through_the_guard():
    from socketio import PubSubManager

    from src.realtime.seam import GuardedRedisManager, SeamGuardMixin

    mro = GuardedRedisManager.__mro__
    assert mro.index(PubSubManager) < mro.index(SeamGuardMixin)  # PubSubManager's super().emit lands in the guard
