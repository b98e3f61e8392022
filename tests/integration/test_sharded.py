"""`shardkv start --shards 3`: the supervisor, the router and three workers,
used the way applications use them (redis-py through the router)."""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest
import redis

from shardkv.native import _native

pytestmark = pytest.mark.integration

SHARDS = 3


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if predicate():
                return True
        except (redis.ConnectionError, redis.ResponseError, OSError):
            pass
        time.sleep(0.05)
    return False


class Deployment:
    def __init__(self, shards=SHARDS, env=None):
        self.dir = tempfile.mkdtemp(prefix="shardkv-test-")
        self.port = free_port()
        self.log = open(os.path.join(self.dir, "log"), "w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "shardkv", "start", "--shards", str(shards), "--replicas", "0", "--port", str(self.port),
             "--worker-port", "0", "--dir", self.dir, "--directive", "enable-debug-command", "local"],
            stdout=self.log, stderr=subprocess.STDOUT, env=env)
        assert wait_for(lambda: self.state() is not None and redis.Redis(port=self.port).ping(), 40), \
            self.log_text()

    def state(self):
        import json
        try:
            with open(os.path.join(self.dir, f"shardkv-{self.port}.state.json")) as f:
                return json.load(f)
        except FileNotFoundError:
            return None

    def workers(self):
        return [p for p in self.state()["processes"] if p["role"] == "primary"]

    def log_text(self):
        self.log.flush()
        with open(self.log.name) as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(12)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def deployment():
    d = Deployment()
    yield d
    d.stop()


@pytest.fixture
def r(deployment):
    client = redis.Redis(port=deployment.port)
    client.flushall()
    yield client
    client.close()


def owner(deployment, key):
    slot = _native.key_slot(key)
    for w in deployment.workers():
        first, last = map(int, w["slots"].split("-"))
        if first <= slot <= last:
            return w
    raise AssertionError(slot)


def test_keys_land_on_the_worker_that_owns_their_slot(deployment, r):
    keys = [f"user:{i}".encode() for i in range(60)]
    for k in keys:
        r.set(k, k)
    for k in keys:
        w = owner(deployment, k)
        assert redis.Redis(port=w["port"]).get(k) == k
    counts = [redis.Redis(port=w["port"]).dbsize() for w in deployment.workers()]
    assert sum(counts) == 60 and all(counts)
    assert r.dbsize() == 60


def test_pipeline_across_shards_keeps_reply_order(r):
    pipe = r.pipeline(transaction=False)
    for i in range(500):
        pipe.set(f"k{i}", i)
        pipe.incr(f"k{i}")
        pipe.get(f"k{i}")
    replies = pipe.execute()
    assert replies[2::3] == [str(i + 1).encode() for i in range(500)]


def test_multi_key_commands_are_split_and_merged(r):
    assert r.mset({f"m{i}": i for i in range(20)})
    assert r.mget([f"m{i}" for i in range(20)] + ["missing"]) == [str(i).encode() for i in range(20)] + [None]
    assert r.exists(*[f"m{i}" for i in range(20)], "m0") == 21
    assert sorted(r.keys("m*")) == sorted(f"m{i}".encode() for i in range(20))
    assert r.delete(*[f"m{i}" for i in range(10)]) == 10
    assert r.dbsize() == 10
    assert r.randomkey() in {f"m{i}".encode() for i in range(10, 20)}
    assert r.flushdb() and r.dbsize() == 0


def test_scan_returns_every_key_of_every_shard(r):
    r.mset({f"s{i}": i for i in range(300)})
    seen = set()
    cursor = 0
    while True:
        cursor, batch = r.scan(cursor, count=25)
        seen.update(batch)
        if cursor == 0:
            break
    assert seen == {f"s{i}".encode() for i in range(300)}


def test_crossslot_for_other_multi_key_commands(r):
    r.set("{t}a", 1)
    assert r.rename("{t}a", "{t}b")
    r.set("x1", 1)
    other = next(f"x{i}" for i in range(2, 100) if _native.key_slot(f"x{i}".encode()) // 5462
                 != _native.key_slot(b"x1") // 5462)
    raw = socket.create_connection(("127.0.0.1", r.connection_pool.connection_kwargs["port"]))
    raw.sendall(b"RENAME x1 " + other.encode() + b"\r\n")
    assert raw.recv(100) == b"-CROSSSLOT Keys in request don't hash to the same slot\r\n"
    raw.close()


def test_transactions_on_one_shard(r):
    pipe = r.pipeline(transaction=True)
    pipe.set("{acct}a", 10).decrby("{acct}a", 3).incrby("{acct}b", 3).get("{acct}a")
    assert pipe.execute() == [True, 7, 3, b"7"]


def test_watch_conflict_aborts(deployment, r):
    r.set("{w}k", 1)
    other = redis.Redis(port=deployment.port)
    with r.pipeline() as pipe:
        pipe.watch("{w}k")
        other.set("{w}k", 2)
        pipe.multi()
        pipe.set("{w}k", 3)
        with pytest.raises(redis.WatchError):
            pipe.execute()
    assert r.get("{w}k") == b"2"


def test_connection_state_survives_routing(deployment):
    c = redis.Redis(port=deployment.port, db=5, protocol=3, client_name="app")
    c.flushdb()
    c.mset({f"d{i}": i for i in range(10)})
    assert c.dbsize() == 10
    assert redis.Redis(port=deployment.port).exists(*[f"d{i}" for i in range(10)]) == 0
    assert c.client_getname() in ("app", b"app")
    c.flushdb()
    c.close()


def test_killed_worker_comes_back_and_serves_its_slots(deployment, r):
    victim = deployment.workers()[1]
    key = next(f"k{i}" for i in range(1000) if owner(deployment, f"k{i}".encode()) == victim)
    os.kill(victim["pid"], signal.SIGKILL)
    started = time.time()
    assert wait_for(lambda: r.set(key, "back") and r.get(key) == b"back", 5)
    assert time.time() - started < 2.0
    assert wait_for(lambda: deployment.workers()[1]["pid"] != victim["pid"], 2)


def test_status_lists_every_process(deployment):
    out = subprocess.run([sys.executable, "-m", "shardkv", "status", "--port", str(deployment.port),
                          "--dir", deployment.dir], capture_output=True, text=True, timeout=20)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert sum(1 for line in lines if line.startswith("primary")) == SHARDS
    assert sum(1 for line in lines if line.startswith("router")) == 1


def test_systemd_notify_ready_and_stop_within_ten_seconds():
    sock_dir = tempfile.mkdtemp()
    path = os.path.join(sock_dir, "notify")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(path)
    listener.settimeout(20)
    d = Deployment(shards=2, env=dict(os.environ, NOTIFY_SOCKET=path))
    messages = []
    try:
        while not any(b"READY=1" in m for m in messages):
            messages.append(listener.recv(4096))
        assert any(b"STATUS=" in m for m in messages)
        started = time.time()
        out = subprocess.run([sys.executable, "-m", "shardkv", "stop", "--port", str(d.port), "--dir", d.dir],
                             capture_output=True, text=True, timeout=15)
        assert out.returncode == 0, out.stderr
        assert time.time() - started < 10
        assert d.proc.wait(5) == 0
        messages.append(listener.recv(4096))
        assert any(b"STOPPING=1" in m for m in messages)
    finally:
        d.stop()
        listener.close()


def test_cluster_client_finds_every_worker_from_the_router(deployment):
    from redis.cluster import RedisCluster
    rc = RedisCluster(host="127.0.0.1", port=deployment.port)
    try:
        nodes = {(n.host, n.port) for n in rc.get_primaries()}
        assert nodes == {(w["host"], w["port"]) for w in deployment.workers()}
        for i in range(50):
            rc.set(f"c{i}", i)
        assert [rc.get(f"c{i}") for i in range(50)] == [str(i).encode() for i in range(50)]
        for i in range(50):
            key = f"c{i}".encode()
            w = owner(deployment, key)
            assert redis.Redis(port=w["port"]).execute_command(
                "CLUSTER", "COUNTKEYSINSLOT", _native.key_slot(key)) >= 1
    finally:
        rc.close()


def test_worker_redirects_keys_of_other_workers(deployment):
    w0, w1 = deployment.workers()[:2]
    key = next(f"r{i}".encode() for i in range(1000) if owner(deployment, f"r{i}".encode()) == w1)
    raw = socket.create_connection(("127.0.0.1", w0["port"]))
    raw.sendall(b"GET " + key + b"\r\n")
    reply = raw.recv(200)
    assert reply == b"-MOVED %d 127.0.0.1:%d\r\n" % (_native.key_slot(key), w1["port"])
    raw.sendall(b"MGET {a}1 {b}1\r\n")
    assert raw.recv(200) == b"-CROSSSLOT Keys in request don't hash to the same slot\r\n"
    raw.close()


def test_cluster_topology_is_the_same_from_router_and_workers(deployment):
    via_router = redis.Redis(port=deployment.port).execute_command("CLUSTER", "SLOTS")
    via_worker = redis.Redis(port=deployment.workers()[2]["port"]).execute_command("CLUSTER", "SLOTS")
    assert via_router == via_worker
    ranges = sorted((e[0], e[1]) for e in via_router)
    assert ranges[0][0] == 0 and ranges[-1][1] == 16383 and len(ranges) == SHARDS


def test_redis_cli_cluster_mode_follows_moved(deployment):
    w0 = deployment.workers()[0]
    for i in range(10):
        out = subprocess.run(["redis-cli", "-c", "-p", str(w0["port"]), "set", f"cli{i}", "v"],
                             capture_output=True, text=True, timeout=10)
        assert out.stdout.strip() == "OK", out
    assert redis.Redis(port=deployment.port).exists(*[f"cli{i}" for i in range(10)]) == 10


def test_config_set_through_the_router_reaches_every_worker(deployment):
    r = redis.Redis(port=deployment.port)
    r.config_set("slowlog-max-len", 77)
    try:
        for w in deployment.workers():
            assert redis.Redis(port=w["port"]).config_get("slowlog-max-len") == {"slowlog-max-len": "77"}
    finally:
        r.config_set("slowlog-max-len", 128)


def test_daemonize_detaches_and_stop_stops_it():
    work = tempfile.mkdtemp(prefix="shardkv-daemon-")
    port = free_port()
    out = subprocess.run([sys.executable, "-m", "shardkv", "start", "--shards", "1", "--replicas", "0", "--port", str(port),
                          "--worker-port", "0", "--dir", work, "--daemonize",
                          "--logfile", os.path.join(work, "log")], capture_output=True, text=True, timeout=20)
    assert out.returncode == 0, out.stderr
    try:
        assert wait_for(lambda: redis.Redis(port=port).ping(), 15)
        with open(os.path.join(work, f"shardkv-{port}.pid")) as f:
            pid = int(f.read())
        os.kill(pid, 0)
    finally:
        stop = subprocess.run([sys.executable, "-m", "shardkv", "stop", "--port", str(port), "--dir", work],
                              capture_output=True, text=True, timeout=20)
    assert stop.returncode == 0, stop.stderr
    assert not wait_for(lambda: redis.Redis(port=port, socket_connect_timeout=0.2).ping(), 1)


def test_debug_digest_through_router_equals_a_single_server(deployment, r):
    from shardkv.config import Config
    from shardkv.server import Server
    from tests.commands.conftest import Session
    cfg = Config()
    cfg.set("enable-debug-command", "yes", startup=True)
    single = Session(Server(cfg))
    for i in range(40):
        r.set(f"d{i}", i)
        single.run("SET", f"d{i}", str(i))
    assert r.execute_command("DEBUG", "DIGEST") == single.run("DEBUG", "DIGEST")[1:-2]


def _raw_pipeline(port, commands):
    """Sends every command in one write on a fresh connection and returns
    the replies, parsed by redis-py's RESP2 parser."""
    from redis.connection import Connection
    conn = Connection(port=port)
    conn.connect()
    try:
        conn.send_packed_command([b"".join(b"".join(conn.pack_command(*cmd)) for cmd in commands)])
        return [conn.read_response(disable_decoding=True) for _ in commands]
    finally:
        conn.disconnect()


def test_switch_to_own_connections_keeps_the_clients_command_order(deployment):
    # the SETs travel on the connections shared by stateless clients; CLIENT
    # SETNAME makes this client take its own connections, and the GETs after
    # it must still see every SET before it
    keys = [f"order:{i}" for i in range(300)]
    commands = [("SET", k, str(i)) for i, k in enumerate(keys)]
    commands += [("CLIENT", "SETNAME", "switcher"), ("CLIENT", "GETNAME")]
    commands += [("GET", k) for k in keys]
    replies = _raw_pipeline(deployment.port, commands)
    assert replies[:300] == [b"OK"] * 300
    assert replies[300:302] == [b"OK", b"switcher"]
    assert replies[302:] == [str(i).encode() for i in range(300)]


def test_clients_sharing_worker_connections_get_only_their_own_replies(deployment):
    import threading
    errors = []

    def client(n):
        try:
            c = redis.Redis(port=deployment.port)
            for round_ in range(20):
                pipe = c.pipeline(transaction=False)
                for i in range(50):
                    pipe.set(f"mine:{n}:{i}", f"{n}:{round_}:{i}")
                    pipe.get(f"mine:{n}:{i}")
                out = pipe.execute()
                expected = [x for i in range(50) for x in (True, f"{n}:{round_}:{i}".encode())]
                if out != expected:
                    errors.append((n, round_))
            c.close()
        except Exception as e:   # reported below, not lost in the thread
            errors.append(e)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_a_client_leaving_with_replies_in_flight_does_not_disturb_others(deployment, r):
    s = socket.create_connection(("127.0.0.1", deployment.port))
    s.sendall(b"".join(b"*3\r\n$3\r\nSET\r\n$6\r\ngone:%d\r\n$1\r\nx\r\n" % (i % 10) for i in range(2000)))
    s.close()
    assert r.set("after-gone", "1") and r.get("after-gone") == b"1"
    assert r.mget([f"gone:{i}" for i in range(3)]) is not None
