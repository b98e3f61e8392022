"""Persistence with real processes: RDB files written by shardkv loaded by
redis-server 7.0 and valkey 9.1 (and checked by redis-check-rdb), files
written by them loaded by shardkv, DUMP/RESTORE across servers, BGSAVE and
restart, the append-only file under SIGKILL, truncated and corrupt files."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import threading
import time

import pytest
import redis

from tests.integration.conftest import HOST, _valkey_binary, free_port, launch

pytestmark = pytest.mark.integration

REDIS_SERVER = "/usr/bin/redis-server"
CHECK_RDB = "/usr/bin/redis-check-rdb"


# ---------------------------------------------------------------- helpers

class Ref:
    """A reference server (redis-server 7.0 or valkey) in its own --dir."""

    def __init__(self, binary, directory, extra=()):
        self.port = free_port()
        self.dir = directory
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", HOST, "--dir", str(directory), "--save", "",
             "--appendonly", "no", *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.r = redis.Redis(host=HOST, port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.r.ping()
                return
            except redis.ConnectionError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    out = self.proc.stdout.read().decode(errors="replace") if self.proc.poll() is not None else ""
                    self.stop()
                    raise RuntimeError(f"{binary} did not start: {out}") from None
                time.sleep(0.05)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def need(path):
    if not path or not os.path.exists(path):
        pytest.skip(f"{path} not available")
    return path


def shardkv_in(directory, *args):
    return launch(["--bind", HOST, "--dir", str(directory), "--enable-debug-command", "yes", *args])


def client(srv):
    return redis.Redis(host=HOST, port=srv.port)


def fill_random(r, seed, n=40):
    """Keys of every type, in every encoding, some with a TTL."""
    rng = random.Random(seed)
    for i in range(n):
        r.set(f"s{i}", rng.choice([str(rng.randint(-10**12, 10**12)), "x" * rng.randint(0, 300),
                                   os.urandom(rng.randint(1, 50))]))
        r.rpush(f"l{i}", *[rng.choice(["a", "12", "x" * 200]) for _ in range(rng.choice([3, 700]))])
        r.sadd(f"si{i}", *rng.sample(range(-10**6, 10**6), rng.choice([3, 600])))
        r.sadd(f"ss{i}", *[f"m{rng.random()}" for _ in range(rng.choice([3, 200]))])
        r.hset(f"h{i}", mapping={f"f{j}": rng.choice(["1", "v" * 100]) for j in range(rng.choice([2, 600]))})
        r.zadd(f"z{i}", {f"m{j}": rng.choice([1, -2.5, 1e300, float("inf")]) + j for j in range(rng.choice([3, 300]))})
        if i % 4 == 0:
            fill_stream(r, f"x{i}", rng)
        if i % 5 == 0:
            r.pexpire(f"s{i}", 10**8)
            r.pexpire(f"h{i}", 10**8)
    r.execute_command("SELECT", 7)
    r.set("in-db-7", "x")
    r.execute_command("SELECT", 0)


def fill_stream(r, key, rng):
    """A stream over several nodes, with deleted entries, two groups and
    pending entries of two consumers."""
    for i in range(rng.choice([5, 250])):
        r.xadd(key, {"a": i, "b": "x" * (i % 7)} if i % 3 else {"c": i}, id=f"{1000 + i // 5}-{i % 5}")
    r.xdel(key, "1000-1", "1000-3")
    r.xgroup_create(key, "g1", id="0")
    r.xreadgroup("g1", "alice", {key: ">"}, count=4)
    r.xreadgroup("g1", "bob", {key: ">"}, count=2)
    r.xgroup_create(key, "g2", id="$")


def stream_state(r, k):
    groups = sorted((g["name"], g["pending"], g["last-delivered-id"]) for g in r.xinfo_groups(k))
    pending = [(p["message_id"], p["consumer"], p["times_delivered"])
               for g in groups for p in r.xpending_range(k, g[0], "-", "+", 1000)]
    info = r.xinfo_stream(k)
    meta = [info[f] for f in ("last-generated-id", "max-deleted-entry-id", "entries-added",
                              "recorded-first-entry-id", "radix-tree-keys")]
    return r.xrange(k), groups, pending, meta


def read_all(r):
    out = {}
    for db in range(16):
        rr = redis.Redis(host=HOST, port=r.connection_pool.connection_kwargs["port"], db=db)
        for k in rr.scan_iter(count=1000):
            t = rr.type(k).decode()
            if t == "string":
                v = rr.get(k)
            elif t == "list":
                v = rr.lrange(k, 0, -1)
            elif t == "set":
                v = sorted(rr.smembers(k))
            elif t == "hash":
                v = sorted(rr.hgetall(k).items())
            elif t == "zset":
                v = rr.zrange(k, 0, -1, withscores=True)
            elif t == "stream":
                v = stream_state(rr, k)
            else:
                v = None
            out[(db, k)] = (t, v, rr.pttl(k) > 0, rr.object("encoding", k))
    return out


def same_data(a, b, encodings=True):
    assert a.keys() == b.keys()
    for k in a:
        assert a[k][:3] == b[k][:3], k
        if encodings:
            assert a[k][3] == b[k][3], (k, a[k][3], b[k][3])


# ---------------------------------------------------------------- RDB files

def test_shardkv_rdb_loads_in_redis_and_valkey(tmp_path):
    need(REDIS_SERVER)
    vk = need(_valkey_binary())
    (tmp_path / "s").mkdir()
    srv = shardkv_in(tmp_path / "s", "--save", "")
    try:
        r = client(srv)
        fill_random(r, 1)
        expected = read_all(r)
        assert r.save()
    finally:
        srv.cleanup()
    path = tmp_path / "s" / "dump.rdb"
    check = subprocess.run([need(CHECK_RDB), str(path)], capture_output=True, text=True)
    assert "RDB looks OK" in check.stdout, check.stdout
    for binary in (REDIS_SERVER, vk):
        d = tmp_path / os.path.basename(binary)
        d.mkdir()
        shutil.copy(path, d / "dump.rdb")
        ref = Ref(binary, d)
        try:
            got = read_all(ref.r)
        finally:
            ref.stop()
        # redis 7.0 has no listpack sets and lists; valkey agrees on every encoding
        same_data(expected, got, encodings=binary == vk)


@pytest.mark.parametrize("which", ["redis", "valkey"])
def test_reference_rdb_loads_in_shardkv(tmp_path, which):
    binary = need(REDIS_SERVER) if which == "redis" else need(_valkey_binary())
    ref = Ref(binary, tmp_path)
    try:
        fill_random(ref.r, 2)
        if which == "valkey":
            ref.r.hset("hx", mapping={"f": "v", "g": "1"})
            ref.r.execute_command("HPEXPIREAT", "hx", 4102444800000, "FIELDS", 1, "f")
        expected = read_all(ref.r)
        ref.r.save()
    finally:
        ref.stop()
    srv = shardkv_in(tmp_path, "--save", "")
    try:
        r = client(srv)
        got = read_all(r)
        if which == "valkey":
            assert r.execute_command("HPEXPIRETIME", "hx", "FIELDS", 1, "f") == [4102444800000]
    finally:
        srv.cleanup()
    same_data(expected, got, encodings=which == "valkey")


def test_hash_field_ttls_are_written_as_valkey_does(tmp_path):
    vk = need(_valkey_binary())
    srv = shardkv_in(tmp_path, "--save", "")
    try:
        r = client(srv)
        r.hset("hx", mapping={"f": "v", "g": "1"})
        r.execute_command("HPEXPIREAT", "hx", 4102444800000, "FIELDS", 1, "f")
        r.set("plain", "1")
        r.sadd("small-set", "a", "b")
        fill_stream(r, "st", random.Random(0))
        expected = read_all(r)
        r.save()
    finally:
        srv.cleanup()
    assert (tmp_path / "dump.rdb").read_bytes()[:9] == b"VALKEY080"
    ref = Ref(vk, tmp_path)
    try:
        assert ref.r.execute_command("HPEXPIRETIME", "hx", "FIELDS", 1, "f") == [4102444800000]
        assert ref.r.hgetall("hx") == {b"f": b"v", b"g": b"1"}
        same_data(expected, read_all(ref.r))
    finally:
        ref.stop()


def test_corrupt_and_truncated_rdb_are_refused(tmp_path):
    srv = shardkv_in(tmp_path, "--save", "")
    try:
        r = client(srv)
        r.mset({f"k{i}": "v" * 50 for i in range(100)})
        r.save()
    finally:
        srv.cleanup()
    good = (tmp_path / "dump.rdb").read_bytes()
    for bad, reason in ((good[:-3], "EOF"), (good[:100] + bytes([good[100] ^ 0x55]) + good[101:], "")):
        (tmp_path / "dump.rdb").write_bytes(bad)
        p = launch(["--bind", HOST, "--dir", str(tmp_path), "--save", ""], wait=False)
        try:
            assert p.proc.wait(timeout=20) != 0
            assert "cannot load the RDB file" in p.output() and reason in p.output()
        finally:
            p.cleanup()
        assert (tmp_path / "dump.rdb").read_bytes() == bad    # nothing touched


# ---------------------------------------------------------------- DUMP / RESTORE

def test_dump_restore_across_servers(tmp_path):
    need(REDIS_SERVER)
    vk = need(_valkey_binary())
    srv = shardkv_in(tmp_path, "--save", "")
    (tmp_path / "r").mkdir()
    (tmp_path / "v").mkdir()
    refs = [Ref(REDIS_SERVER, tmp_path / "r"), Ref(vk, tmp_path / "v")]
    try:
        s = client(srv)
        for ref in refs:
            fill_random(ref.r, 3, n=10)
        fill_random(s, 3, n=10)
        keys = [k for k in s.scan_iter() if not k.startswith(b"in-db")]
        for src, dst in [(s, ref.r) for ref in refs] + [(ref.r, s) for ref in refs]:
            for k in keys:
                payload = src.dump(k)
                dst.restore(b"copy:" + k, 0, payload, replace=True)
                assert read_key(dst, b"copy:" + k) == read_key(src, k), k
    finally:
        for ref in refs:
            ref.stop()
        srv.cleanup()


def read_key(r, k):
    t = r.type(k).decode()
    return {"string": r.get, "list": lambda x: r.lrange(x, 0, -1), "set": lambda x: sorted(r.smembers(x)),
            "hash": lambda x: sorted(r.hgetall(x).items()),
            "zset": lambda x: r.zrange(x, 0, -1, withscores=True),
            "stream": lambda x: stream_state(r, x)}[t](k)


# ---------------------------------------------------------------- BGSAVE, restart

def test_bgsave_lastsave_info_and_restart(tmp_path):
    srv = shardkv_in(tmp_path, "--save", "")
    try:
        r = client(srv)
        fill_random(r, 4, n=20)
        expected = read_all(r)
        before = r.lastsave()
        assert r.info("persistence")["rdb_changes_since_last_save"] > 0
        time.sleep(1.1)
        assert r.bgsave()
        deadline = time.monotonic() + 10
        while r.info("persistence")["rdb_bgsave_in_progress"] and time.monotonic() < deadline:
            time.sleep(0.05)
        info = r.info("persistence")
        assert info["rdb_last_bgsave_status"] == "ok"
        assert info["rdb_changes_since_last_save"] == 0
        assert r.lastsave() > before
        assert not [f for f in os.listdir(tmp_path) if f.startswith("temp-")]
    finally:
        srv.cleanup()
    srv = shardkv_in(tmp_path, "--save", "")
    try:
        same_data(expected, read_all(client(srv)))
        assert client(srv).execute_command("DEBUG", "RELOAD") == b"OK"
        same_data(expected, read_all(client(srv)))
    finally:
        srv.cleanup()


def test_save_rules_and_shutdown_save(tmp_path):
    srv = shardkv_in(tmp_path, "--save", "1 1")
    try:
        r = client(srv)
        r.set("a", "1")
        deadline = time.monotonic() + 8
        while not (tmp_path / "dump.rdb").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (tmp_path / "dump.rdb").exists()
        r.set("b", "2")
        try:
            r.shutdown(save=True)
        except redis.ConnectionError:
            pass
        assert srv.proc.wait(timeout=10) == 0
    finally:
        srv.cleanup()
    srv = shardkv_in(tmp_path, "--save", "")
    try:
        assert client(srv).mget("a", "b") == [b"1", b"2"]
    finally:
        srv.cleanup()


# ---------------------------------------------------------------- AOF

def writer(port, stop, acked, prefix):
    r = redis.Redis(host=HOST, port=port)
    i = 0
    try:
        while not stop.is_set():
            r.set(f"{prefix}{i}", i)
            acked.append(i)
            i += 1
    except redis.ConnectionError:
        pass


@pytest.mark.parametrize("fsync", ["always", "everysec"])
def test_aof_sigkill_under_write_load(tmp_path, fsync):
    srv = shardkv_in(tmp_path, "--appendonly", "yes", "--appendfsync", fsync, "--save", "")
    stop = threading.Event()
    acked = []
    t = threading.Thread(target=writer, args=(srv.port, stop, acked, "k"))
    t.start()
    time.sleep(1.5)
    os.kill(srv.pid, signal.SIGKILL)
    stop.set()
    t.join()
    srv.cleanup()
    srv = shardkv_in(tmp_path, "--appendonly", "yes", "--appendfsync", fsync, "--save", "")
    try:
        r = client(srv)
        n = r.dbsize()
        assert acked
        if fsync == "always":
            assert n >= len(acked)
        else:
            rate = len(acked) / 1.5
            assert n >= len(acked) - 1.5 * rate, (n, len(acked))
        assert r.get(f"k{n - 1}") == str(n - 1).encode()
    finally:
        srv.cleanup()


def test_aof_rewrite_then_restart(tmp_path):
    srv = shardkv_in(tmp_path, "--appendonly", "yes", "--save", "")
    try:
        r = client(srv)
        fill_random(r, 5, n=10)
        assert r.bgrewriteaof()
        deadline = time.monotonic() + 10
        while r.info("persistence")["aof_rewrite_in_progress"] and time.monotonic() < deadline:
            time.sleep(0.05)
        r.set("after-rewrite", "yes")
        r.incr("counter")
        expected = read_all(r)
        manifest = (tmp_path / "appendonlydir" / "appendonly.aof.manifest").read_text()
        assert "appendonly.aof.2.base.rdb" in manifest and "type i" in manifest
    finally:
        srv.cleanup()
    srv = shardkv_in(tmp_path, "--appendonly", "yes", "--save", "")
    try:
        same_data(expected, read_all(client(srv)))
    finally:
        srv.cleanup()


def test_truncated_and_corrupt_aof(tmp_path):
    srv = shardkv_in(tmp_path, "--appendonly", "yes", "--save", "")
    try:
        r = client(srv)
        for i in range(50):
            r.set(f"k{i}", i)
    finally:
        srv.cleanup()
    incr = tmp_path / "appendonlydir" / "appendonly.aof.1.incr.aof"
    data = incr.read_bytes()
    incr.write_bytes(data[:-5])                     # the last SET cut short
    srv = shardkv_in(tmp_path, "--appendonly", "yes", "--save", "")
    try:
        assert client(srv).dbsize() == 49
    finally:
        srv.cleanup()
    data = incr.read_bytes()
    corrupt = data[:40] + b"#garbage#" + data[40:]
    incr.write_bytes(corrupt)
    p = launch(["--bind", HOST, "--dir", str(tmp_path), "--appendonly", "yes", "--save", ""], wait=False)
    try:
        assert p.proc.wait(timeout=20) != 0
        assert "Bad file format reading the append only file" in p.output()
    finally:
        p.cleanup()
    assert incr.read_bytes() == corrupt


def test_misconf_after_failed_bgsave(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    srv = shardkv_in(d, "--save", "3600 1")
    try:
        r = client(srv)
        r.set("a", 1)
        shutil.rmtree(d)
        with pytest.raises(redis.ResponseError):
            r.save()
        with pytest.raises(redis.ResponseError, match="MISCONF"):
            r.set("b", 1)
        assert r.get("a") == b"1"
        r.config_set("stop-writes-on-bgsave-error", "no")
        assert r.set("b", 1)
    finally:
        srv.proc.kill()
        srv.cleanup()


def test_aof_automatic_rewrite(tmp_path):
    args = ("--appendonly", "yes", "--save", "", "--auto-aof-rewrite-percentage", "100",
            "--auto-aof-rewrite-min-size", "16kb")
    srv = shardkv_in(tmp_path, *args)
    try:
        r = client(srv)
        for i in range(400):
            r.set(f"k{i % 50}", "v" * 100)
        deadline = time.monotonic() + 10
        while r.info("persistence")["aof_rewrites"] < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert r.info("persistence")["aof_rewrites"] >= 1
        r.set("last", "1")
        expected = read_all(r)
        files = os.listdir(tmp_path / "appendonlydir")
        assert "appendonly.aof.1.base.rdb" not in files     # the old base is gone
    finally:
        srv.cleanup()
    srv = shardkv_in(tmp_path, *args)
    try:
        same_data(expected, read_all(client(srv)))
    finally:
        srv.cleanup()


def test_aof_directory_passes_redis_check_aof_and_loads_in_redis(tmp_path):
    need(REDIS_SERVER)
    check_aof = need("/usr/bin/redis-check-aof")
    (tmp_path / "s").mkdir()
    srv = shardkv_in(tmp_path / "s", "--save", "", "--appendonly", "yes")
    try:
        r = client(srv)
        fill_random(r, 9, n=8)
        r.bgrewriteaof()
        deadline = time.monotonic() + 10
        while r.info("persistence")["aof_rewrites"] < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        r.set("tail", "1")
        r.incrbyfloat("f", 1.5)
        r.expire("tail", 1000)
        r.lpush("l0", "new")
        expected = read_all(r)
    finally:
        srv.cleanup()
    out = subprocess.run([check_aof, str(tmp_path / "s" / "appendonlydir" / "appendonly.aof.manifest")],
                         capture_output=True, text=True).stdout
    assert "All AOF files and manifest are valid" in out, out
    (tmp_path / "r").mkdir()
    shutil.copytree(tmp_path / "s" / "appendonlydir", tmp_path / "r" / "appendonlydir")
    ref = Ref(REDIS_SERVER, tmp_path / "r", extra=("--appendonly", "yes"))
    try:
        same_data(expected, read_all(ref.r), encodings=False)
    finally:
        ref.stop()


def test_redis_aof_directory_loads_in_shardkv(tmp_path):
    need(REDIS_SERVER)
    ref = Ref(REDIS_SERVER, tmp_path, extra=("--appendonly", "yes", "--appendfsync", "always"))
    try:
        fill_random(ref.r, 10, n=8)
        expected = read_all(ref.r)
    finally:
        ref.stop()
    srv = shardkv_in(tmp_path, "--save", "", "--appendonly", "yes")
    try:
        same_data(expected, read_all(client(srv)), encodings=False)
    finally:
        srv.cleanup()


def test_function_libraries_are_saved_and_loaded_with_the_snapshot(tmp_path):
    from tests.integration.conftest import launch
    srv = launch(["--dir", str(tmp_path), "--enable-debug-command", "yes"])
    try:
        r = redis.Redis(port=srv.port)
        code = "#!lua name=savedlib\nredis.register_function('hello', function() return 'hi' end)"
        assert r.function_load(code) == "savedlib" or r.function_load(code, replace=True)
        r.set("k", "v")
        assert r.execute_command("DEBUG", "RELOAD") in (b"OK", "OK", True)
        assert r.fcall("hello", 0) in (b"hi", "hi")
        assert r.get("k") in (b"v", "v")
    finally:
        srv.cleanup()
