"""Replication with real processes: shardkv replicas of shardkv primaries,
redis-server 7.0 and valkey 9.1 on either end, partial resyncs from the
backlog, promotion with the secondary replication id, WAIT, and read-only
replicas. Consistency is checked by full reads and DEBUG DIGEST."""

from __future__ import annotations

import contextlib
import random
import signal
import threading
import time

import pytest
import redis

from tests.integration.conftest import HOST, _valkey_binary, launch
from tests.integration.test_persistence import REDIS_SERVER, Ref, fill_random, need, read_all, same_data

pytestmark = pytest.mark.integration

FAST_SYNC = ["--repl-diskless-sync-delay", "0"]


def shardkv(*args, tmp=None):
    extra = ["--dir", str(tmp)] if tmp is not None else []
    return launch(["--bind", HOST, "--enable-debug-command", "yes", "--save", "", *FAST_SYNC, *extra, *args])


def client(port, **kw):
    return redis.Redis(host=HOST, port=port, protocol=2, socket_timeout=10, **kw)


def replica_of(primary_port, tmp=None):
    return shardkv("--replicaof", HOST, str(primary_port), tmp=tmp)


@contextlib.contextmanager
def primary_and_replica(*primary_args):
    """A shardkv primary and its shardkv replica, in sync: (p, q, their clients)."""
    p = shardkv(*primary_args)
    q = None
    try:
        q = replica_of(p.port)
        pr, rr = client(p.port), client(q.port)
        wait_in_sync(pr, rr)
        yield p, q, pr, rr
    finally:
        if q is not None:
            q.cleanup()
        p.cleanup()


def info(r, section="replication"):
    return r.info(section)


def wait_in_sync(primary, replica, timeout=15.0):
    """Until the replica's link is up and its offset is the primary's."""
    deadline = time.monotonic() + timeout
    while True:
        p, q = info(primary), info(replica)
        if q.get("master_link_status") == "up" and q.get("slave_repl_offset") == p["master_repl_offset"]:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"replica not in sync: primary {p}, replica {q}")
        time.sleep(0.05)


def expire_everything_due(r):
    """Touches every key so that expired ones are deleted (and the DELs
    replicated) now rather than by the sampling of the active cycle."""
    for db in range(16):
        rr = client(r.connection_pool.connection_kwargs["port"], db=db)
        for k in list(rr.scan_iter(count=1000)):
            rr.exists(k)


def random_writes(r, rng, n, prefix="k", field_ttls=True):
    """A random write load over every type, short TTLs included, with
    commands whose effect must be replicated deterministically (SPOP,
    INCRBYFLOAT, XADD *, scripts, transactions). field_ttls: hash fields
    with a TTL too (Valkey's HSETEX, which redis-server 7.0 lacks)."""
    def key():
        return f"{prefix}{rng.randint(0, 60)}"

    for _ in range(n):
        op = rng.randrange(22)
        k = key()
        try:
            if op == 0:
                r.set(k, rng.randbytes(rng.randint(0, 40)), px=rng.choice([None, None, rng.randint(5, 150)]))
            elif op == 1:
                r.incrbyfloat("f" + k, rng.uniform(-5, 5))
            elif op == 2:
                r.rpush("l" + k, *[rng.randint(0, 9) for _ in range(rng.randint(1, 5))])
            elif op == 3:
                r.lmove("l" + k, "l" + key(), rng.choice(["LEFT", "RIGHT"]), rng.choice(["LEFT", "RIGHT"]))
            elif op == 4:
                r.sadd("s" + k, *[rng.randint(0, 30) for _ in range(rng.randint(1, 6))])
            elif op == 5:
                r.spop("s" + k, rng.randint(1, 3))
            elif op == 6:
                r.zadd("z" + k, {f"m{rng.randint(0, 20)}": rng.uniform(-100, 100) for _ in range(3)})
            elif op == 7:
                r.zpopmin("z" + k)
            elif op == 8:
                r.hset("h" + k, mapping={f"f{rng.randint(0, 9)}": rng.randint(0, 99) for _ in range(3)})
            elif op == 9:
                r.hincrbyfloat("h" + k, "float", 1.5)
            elif op == 10:
                r.xadd("x" + k, {"a": rng.randint(0, 9)}, maxlen=rng.choice([None, 5]), approximate=False)
            elif op == 11:
                r.pexpire(rng.choice(["", "l", "s", "z", "h"]) + k, rng.randint(5, 150))
            elif op == 12:
                r.expire(k, 10**6)
            elif op == 13:
                r.delete(key(), "s" + key())
            elif op == 14:
                r.setbit("b" + k, rng.randint(0, 2000), rng.randint(0, 1))
            elif op == 15:
                r.pfadd("p" + k, *[rng.randint(0, 10**6) for _ in range(5)])
            elif op == 16:
                r.geoadd("g" + k, (rng.uniform(-170, 170), rng.uniform(-80, 80), f"m{rng.randint(0, 9)}"))
            elif op == 17:
                with r.pipeline(transaction=True) as p:
                    p.incr("cnt")
                    p.rpush("log", rng.randint(0, 99))
                    p.srandmember("s" + k)
                    p.execute()
            elif op == 18:
                r.eval("redis.call('incr', KEYS[1]); return redis.call('spop', KEYS[2])", 2, "{e}c", "{e}s")
                r.sadd("{e}s", *range(rng.randint(1, 4)))
            elif op == 19:
                r.execute_command("SELECT", rng.randint(0, 2))
                r.set(k, "in another db")
                r.execute_command("SELECT", 0)
            elif op == 20 and field_ttls:
                r.execute_command("HSETEX", "hx" + k, "PX", rng.choice([40, 10**7]), "FIELDS", 2, "a", 1, "b", 2)
            else:
                r.rename(k, key())
        except redis.ResponseError:
            pass    # WRONGTYPE, no such key: the same on both ends


def assert_same_dataset(primary, replica, digest=True):
    """digest: compare DEBUG DIGEST too (both ends shardkv)."""
    time.sleep(0.2)             # every short TTL of the load has passed
    expire_everything_due(primary)
    assert primary.execute_command("WAIT", 1, 5000) >= 1
    wait_in_sync(primary, replica)
    # encodings may differ, as in Redis: a snapshot loads every value in
    # its smallest encoding (SETBIT's raw string comes back as embstr)
    same_data(read_all(primary), read_all(replica), encodings=False)
    if digest:
        assert primary.execute_command("DEBUG", "DIGEST") == replica.execute_command("DEBUG", "DIGEST")


# ---------------------------------------------------------------- shardkv <-> shardkv

def test_replica_holds_the_primary_data_after_a_random_load(tmp_path):
    rng = random.Random(8)
    p = shardkv()
    try:
        pr = client(p.port)
        fill_random(pr, 1, n=12)
        random_writes(pr, rng, 600)
        (tmp_path / "r").mkdir()
        q = replica_of(p.port, tmp=tmp_path / "r")
        try:
            rr = client(q.port)
            # writes while the snapshot travels and after
            random_writes(pr, rng, 1500)
            wait_in_sync(pr, rr)
            random_writes(pr, rng, 1500)
            assert_same_dataset(pr, rr)
            role = rr.execute_command("ROLE")
            assert role[:4] == [b"slave", HOST.encode(), p.port, b"connected"]
            assert 0 < role[4] <= info(pr)["master_repl_offset"]    # (a PING may come between)
            prole = pr.execute_command("ROLE")
            assert prole[0] == b"master" and prole[2][0][1] == str(q.port).encode()
            rep = info(pr)
            assert rep["connected_slaves"] == 1
            assert rep["slave0"]["state"] == "online" and rep["slave0"]["port"] == q.port
            assert info(pr, "stats")["sync_full"] == 1
            assert any(c["flags"] == "S" for c in pr.client_list())
            assert any(c["flags"] == "M" for c in rr.client_list())
        finally:
            q.cleanup()
    finally:
        p.cleanup()


def test_replica_is_read_only_and_wait_counts_acknowledgements():
    with primary_and_replica() as (p, q, pr, rr):
        pr.set("a", 1)
        assert pr.execute_command("WAIT", 1, 5000) == 1
        assert rr.get("a") == b"1"
        with pytest.raises(redis.ResponseError, match="^You can't write against a read only replica.$"):
            rr.set("a", 2)
        with pytest.raises(redis.ResponseError, match="WAIT cannot be used with replica instances"):
            rr.execute_command("WAIT", 1, 0)
        # in a transaction the write is refused when queued, and EXEC aborts
        one = client(q.port, single_connection_client=True)
        assert one.execute_command("MULTI") == b"OK"
        with pytest.raises(redis.ResponseError, match="read only replica"):
            one.execute_command("SET", "b", 1)
        with pytest.raises(redis.ResponseError, match="^Transaction discarded because of previous errors.$"):
            one.execute_command("EXEC")
        # asking for more replicas than there are: the timeout, then the count
        start = time.monotonic()
        pr.set("b", 1)
        assert pr.execute_command("WAIT", 2, 200) == 1
        assert time.monotonic() - start >= 0.19
        # no timeout: until the replica acknowledged
        assert client(p.port).execute_command("WAIT", 1, 0) == 1
        # WAIT blocks, and CLIENT UNBLOCK ends it with the count
        waiter = client(p.port)
        waiter.set("c", 1)
        wid = waiter.client_id()
        result = []
        t = threading.Thread(target=lambda: result.append(waiter.execute_command("WAIT", 3, 0)))
        t.start()
        deadline = time.monotonic() + 5
        while not any(c["id"] == str(wid) and "b" in c["flags"] for c in pr.client_list()):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert pr.client_unblock(wid) == 1
        t.join(5)
        assert result == [1]
        # expired keys: the replica hides them, the primary deletes them
        pr.set("gone", 1, px=50)
        pr.execute_command("WAIT", 1, 1000)
        time.sleep(0.1)
        assert rr.get("gone") is None


def test_broken_link_resumes_with_a_partial_resync():
    rng = random.Random(3)
    with primary_and_replica() as (p, q, pr, rr):
        random_writes(pr, rng, 500)
        wait_in_sync(pr, rr)
        for _ in range(3):
            pr.client_kill_filter(_type="replica")
            random_writes(pr, rng, 300)
            wait_in_sync(pr, rr)
        stats = info(pr, "stats")
        assert (stats["sync_full"], stats["sync_partial_ok"]) == (1, 3)
        assert_same_dataset(pr, rr)


def test_gap_larger_than_the_backlog_needs_a_full_resync():
    with primary_and_replica("--repl-backlog-size", "16kb") as (p, q, pr, rr):
        pr.set("a", 1)
        wait_in_sync(pr, rr)
        q.proc.send_signal(signal.SIGSTOP)
        try:
            pr.client_kill_filter(_type="replica")
            for i in range(200):
                pr.set(f"big{i}", "x" * 500)
        finally:
            q.proc.send_signal(signal.SIGCONT)
        wait_in_sync(pr, rr)
        stats = info(pr, "stats")
        assert (stats["sync_full"], stats["sync_partial_ok"], stats["sync_partial_err"]) == (2, 0, 1)
        assert rr.get("big199") == b"x" * 500


def test_promoted_replica_is_continued_by_its_peers():
    rng = random.Random(5)
    # no PINGs in the stream: one could reach a replica and not the other just
    # before the kill, and the one ahead would then need a full resync (as in Redis)
    p = shardkv("--repl-ping-replica-period", "3600")
    q1 = replica_of(p.port)
    q2 = replica_of(p.port)
    old = None
    try:
        pr, r1, r2 = client(p.port), client(q1.port), client(q2.port)
        random_writes(pr, rng, 800)
        wait_in_sync(pr, r1)
        wait_in_sync(pr, r2)
        replid = info(pr)["master_replid"]
        p.proc.kill()
        p.proc.wait()
        assert r1.execute_command("REPLICAOF", "NO", "ONE") == b"OK"
        rep = info(r1)
        assert rep["role"] == "master" and rep["master_replid2"] == replid
        assert rep["second_repl_offset"] == rep["master_repl_offset"] + 1
        assert r2.execute_command("REPLICAOF", HOST, q1.port) == b"OK"
        random_writes(r1, rng, 400)
        wait_in_sync(r1, r2)
        stats = info(r1, "stats")
        assert (stats["sync_full"], stats["sync_partial_ok"]) == (0, 1)
        assert_same_dataset(r1, r2)
        # the old primary comes back as a replica of the new one
        old = replica_of(q1.port)
        wait_in_sync(r1, client(old.port))
        assert_same_dataset(r1, client(old.port))
        assert r2.execute_command("REPLICAOF", HOST, q1.port) == b"OK Already connected to specified master"
    finally:
        for srv in (old, q2, q1, p):
            if srv is not None:
                srv.cleanup()


def test_replicaof_errors_and_replconf():
    p = shardkv()
    try:
        r = client(p.port)
        for port in ("abc", "70000", "-1"):
            with pytest.raises(redis.ResponseError, match="^Invalid master port$"):
                r.execute_command("REPLICAOF", HOST, port)
        assert r.execute_command("REPLICAOF", "no", "one") == b"OK"
        with pytest.raises(redis.ResponseError, match="^Unrecognized REPLCONF option: foo$"):
            r.execute_command("REPLCONF", "foo", "bar")
        with pytest.raises(redis.ResponseError, match="^syntax error$"):
            r.execute_command("REPLCONF", "foo")
        assert r.execute_command("REPLCONF", "listening-port", "1", "capa", "eof") == b"OK"
        assert r.execute_command("ROLE") == [b"master", 0, []]
    finally:
        p.cleanup()


# ---------------------------------------------------------------- with the references

def reference_binary(which):
    return need(REDIS_SERVER) if which == "redis" else need(_valkey_binary())


@pytest.mark.parametrize("which", ["redis", "valkey"])
def test_reference_server_replicates_from_shardkv(tmp_path, which):
    rng = random.Random(11)
    p = shardkv()
    ref = None
    try:
        pr = client(p.port)
        fill_random(pr, 2, n=10)
        ref = Ref(reference_binary(which), tmp_path, extra=("--replicaof", HOST, str(p.port)))
        rr = client(ref.port)
        random_writes(pr, rng, 1000, field_ttls=which == "valkey")
        wait_in_sync(pr, rr)
        random_writes(pr, rng, 1000, field_ttls=which == "valkey")
        assert_same_dataset(pr, rr, digest=False)
    finally:
        if ref is not None:
            ref.stop()
        p.cleanup()


@pytest.mark.parametrize("which", ["redis", "valkey"])
def test_shardkv_replicates_from_a_reference_server(tmp_path, which):
    rng = random.Random(12)
    ref = Ref(reference_binary(which), tmp_path, extra=FAST_SYNC)
    q = None
    try:
        pr = client(ref.port)
        fill_random(pr, 3, n=10)
        q = replica_of(ref.port)
        rr = client(q.port)
        random_writes(pr, rng, 1000, field_ttls=which == "valkey")
        wait_in_sync(pr, rr)
        random_writes(pr, rng, 1000, field_ttls=which == "valkey")
        assert_same_dataset(pr, rr, digest=False)
        # a link the reference breaks is resumed from its backlog
        pr.client_kill_filter(_type="replica")
        random_writes(pr, rng, 200, field_ttls=which == "valkey")
        wait_in_sync(pr, rr)
        assert info(pr, "stats")["sync_partial_ok"] == 1
    finally:
        if q is not None:
            q.cleanup()
        ref.stop()
