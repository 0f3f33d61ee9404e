"""The job runner: failures are contained and counted; leadership gates leader-only jobs."""
from src.db import get_db
from src.models import job_stats
from src.schedulers import JobRunner, JobSpec
from src.schedulers.leader import LeaderLock


class Flaky:
    def __init__(self):
        self.calls = 0

    def __call__(self, now):
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("sensor gateway timed out")
        return {"ok": True}


def test_a_failing_job_is_counted_and_runs_again(app):
    leader = LeaderLock.for_app(app)
    assert leader.heartbeat() is True  # a single embedded process always leads
    runner = JobRunner(app, leader)
    flaky = Flaky()
    runner.specs["flaky"] = JobSpec("flaky", 1, flaky)
    assert runner.run("flaky") == "failed"
    assert runner.run("flaky") == "ok"
    with app.app_context():
        stats = job_stats.all_stats(get_db())["flaky"]
    assert stats["runs"] == 2 and stats["failures"] == 1
    assert stats["last_error"] == "RuntimeError: sensor gateway timed out"


def test_followers_skip_leader_only_jobs_but_run_the_rest(app):
    leader = LeaderLock.for_app(app)
    leader.is_leader = False
    runner = JobRunner(app, leader)
    calls = []
    runner.specs["leader_job"] = JobSpec("leader_job", 1, calls.append)
    runner.specs["every_process"] = JobSpec("every_process", 1, calls.append, leader_only=False)
    assert runner.run("leader_job") == "skipped: not leader"
    assert runner.run("every_process") == "ok"
    assert runner.run("leader_job", manual=True) == "ok"
    assert len(calls) == 2


def test_paused_jobs_are_skipped(app):
    leader = LeaderLock.for_app(app)
    leader.heartbeat()
    runner = JobRunner(app, leader)
    calls = []
    runner.specs["quiet"] = JobSpec("quiet", 1, calls.append)
    with app.app_context():
        job_stats.set_paused(get_db(), "quiet", True)
    assert runner.run("quiet") == "skipped: paused"
    assert calls == []


def test_mongo_lock_has_one_owner_until_it_expires(app):
    first, second = LeaderLock(app, ttl_s=0.3), LeaderLock(app, ttl_s=0.3)
    assert first.heartbeat() is True
    assert second.heartbeat() is False
    assert first.heartbeat() is True  # renewal
    import time

    time.sleep(0.4)
    assert second.heartbeat() is True  # the first stopped renewing; its lock expired
    assert first.heartbeat() is False


def test_redis_lock_has_one_owner_and_release_hands_over(app_factory, redis_db):
    app = app_factory(REDIS_URL=redis_db)
    first, second = LeaderLock(app, ttl_s=5), LeaderLock(app, ttl_s=5)
    assert first.backend == "redis"
    assert first.heartbeat() is True and second.heartbeat() is False
    first.release()
    assert second.heartbeat() is True
    assert first.heartbeat() is False
