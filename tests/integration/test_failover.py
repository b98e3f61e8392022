"""Replicas and failover of `shardkv start`: the supervisor runs a replica per
shard, shows it in the topology, promotes it when its primary dies (or on
`shardkv failover`), re-targets the routers and starts a new replica.

One deployment (2 shards, 1 replica each) serves the module; each test that
fails a shard over waits until the deployment is whole again (every shard a
primary and a synced replica) before the next one starts."""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest
import redis

from shardkv.native import _native

pytestmark = pytest.mark.integration

SHARDS = 2
HOST = "127.0.0.1"


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout=10.0, period=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if predicate():
                return True
        except (redis.RedisError, OSError, KeyError, IndexError, StopIteration):
            pass
        time.sleep(period)
    return False


def env():
    from tests.integration.conftest import subprocess_env
    return subprocess_env()


class Deployment:
    def __init__(self, shards=SHARDS, replicas=1, extra=()):
        self.dir = tempfile.mkdtemp(prefix="shardkv-fo-")
        self.port = free_port()
        self.log = open(os.path.join(self.dir, "log"), "w+")
        self.pids = set()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "shardkv", "start", "--shards", str(shards), "--replicas", str(replicas),
             "--port", str(self.port), "--worker-port", "0", "--dir", self.dir, "--bind", HOST,
             "--directive", "save", "", *extra],
            stdout=self.log, stderr=subprocess.STDOUT, env=env())
        assert wait_for(lambda: self.state() is not None and redis.Redis(port=self.port).ping(), 60), \
            self.log_text()

    def state(self):
        try:
            with open(os.path.join(self.dir, f"shardkv-{self.port}.state.json")) as f:
                state = json.load(f)
        except (FileNotFoundError, ValueError):
            return None
        self.pids.update(p["pid"] for p in state["processes"] if p["pid"])
        return state

    def workers(self, role=None, shard=None):
        return [p for p in self.state()["processes"] if p["role"] != "router"
                and (role is None or p["role"] == role) and (shard is None or p["shard"] == shard)]

    def primary(self, shard):
        return self.workers("primary", shard)[0]

    def client(self, p, **kw):
        return redis.Redis(host=p["host"], port=p["port"], **kw)

    def reader(self, p):
        """A connection that reads from a replica too (READONLY)."""
        r = redis.Redis(host=p["host"], port=p["port"], single_connection_client=True)
        r.execute_command("READONLY")
        return r

    def whole(self):
        """Every shard: a primary, and replicas whose link to it is up."""
        for shard in range(SHARDS):
            primary = self.primary(shard)
            if self.client(primary).info("replication")["role"] != "master":
                return False
            for r in self.workers("replica", shard):
                info = self.client(r).info("replication")
                if info.get("master_link_status") != "up" or info.get("master_port") != primary["port"]:
                    return False
        return True

    def cli(self, *args, timeout=60):
        return subprocess.run([sys.executable, "-m", "shardkv", *args, "--port", str(self.port), "--dir", self.dir],
                              capture_output=True, text=True, timeout=timeout, env=env())

    def log_text(self):
        self.log.flush()
        with open(self.log.name) as f:
            return f.read()

    def stop(self):
        self.state()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # whatever the supervisor left behind (it should leave nothing)
        for pid in self.pids:
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if self.dir.encode() in f.read() or str(self.port).encode() in f.read():
                        os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        self.log.close()


@pytest.fixture(scope="module")
def deployment():
    d = Deployment()
    try:
        assert wait_for(d.whole, 30), d.log_text()
        yield d
    finally:
        d.stop()


def key_in_shard(shard, prefix="k"):
    """A hash tag whose slot belongs to shard (even split of the slots)."""
    lo, hi = shard * 16384 // SHARDS, (shard + 1) * 16384 // SHARDS - 1
    tag = next(f"{prefix}{i}" for i in range(10000) if lo <= _native.key_slot(f"{prefix}{i}".encode()) <= hi)
    return "{" + tag + "}"


def slots_primary(client, slot):
    for entry in client.execute_command("CLUSTER", "SLOTS"):
        if entry[0] <= slot <= entry[1]:
            return entry[2][1], [n[1] for n in entry[3:]]
    raise AssertionError(slot)


class Writer(threading.Thread):
    """Writes key<n> = n through the router, one after the other, and
    remembers which writes were acknowledged (and which WAIT 1 confirmed)."""

    def __init__(self, port, tag, wait=False):
        super().__init__(daemon=True)
        self.r = redis.Redis(port=port, socket_timeout=5)
        self.tag, self.wait = tag, wait
        self.acked, self.confirmed, self.errors = [], [], []
        self.ack_times = []
        self.last_ok = time.monotonic()
        self.stopping = False

    def run(self):
        n = 0
        while not self.stopping:
            key = f"{self.tag}:{n}"
            try:
                self.r.set(key, n)
                self.acked.append(key)
                self.last_ok = time.monotonic()
                self.ack_times.append(self.last_ok)
                if self.wait and self.r.execute_command("WAIT", 1, 1000) >= 1:
                    self.confirmed.append(key)
            except (redis.RedisError, OSError) as e:
                self.errors.append((time.monotonic(), str(e)))
                time.sleep(0.005)
            n += 1

    def back_after(self, t):
        """When writes succeeded again after they failed, past time t."""
        failed = next((when for when, _ in self.errors if when > t), None)
        if failed is None:
            return None
        return next((when for when in self.ack_times if when > failed), None)

    def stop(self):
        self.stopping = True
        self.join(10)
        self.r.close()


# ---------------------------------------------------------------- no replication needed

def test_router_retargets_a_shard_on_sighup(start_shardkv, tmp_path):
    """The routes file and SIGHUP: in-flight commands on the old worker fail
    with an error reply (never hang), later ones reach the new worker."""
    a, b = start_shardkv(), start_shardkv()
    routes = tmp_path / "routes"
    routes.write_text(f"{HOST}:{a.port}\n")
    port = free_port()
    log = open(tmp_path / "router.log", "w+")
    router = subprocess.Popen([sys.executable, "-m", "shardkv", "router", "--port", str(port), "--bind", HOST,
                               "--shards", f"{HOST}:{a.port}", "--routes-file", str(routes)],
                              stdout=log, stderr=subprocess.STDOUT, env=env())
    try:
        assert wait_for(lambda: redis.Redis(port=port).ping(), 20)
        r = redis.Redis(port=port, socket_timeout=5)
        r.set("x", "on a")
        blocked = redis.Redis(port=port, socket_timeout=10)
        outcome = []
        t = threading.Thread(target=lambda: outcome.append(_capture(lambda: blocked.blpop("list", 0))))
        t.start()
        assert wait_for(lambda: redis.Redis(port=a.port).info("clients")["blocked_clients"] == 1, 5)
        subscriber = socket.create_connection((HOST, port), timeout=5)
        subscriber.sendall(b"SUBSCRIBE news\r\n")
        assert subscriber.recv(100).startswith(b"*3\r\n$9\r\nsubscribe\r\n")
        routes.write_text(f"{HOST}:{b.port}\n")
        router.send_signal(signal.SIGHUP)
        t.join(5)
        assert not t.is_alive() and isinstance(outcome[0], redis.ResponseError), outcome
        # its subscriptions lived on the old worker: it is disconnected, to subscribe again
        assert subscriber.recv(100) == b""
        subscriber.close()
        assert wait_for(lambda: r.get("x") is None, 5)      # b has no x
        r.set("y", "on b")
        assert redis.Redis(port=b.port).get("y") == b"on b"
        assert redis.Redis(port=a.port).get("y") is None
        assert router.poll() is None
        blocked.close()
    finally:
        router.terminate()
        router.wait(10)
        log.close()


def as_dict(reply):
    """A RESP2 map (a flat list of pairs) as a dict."""
    return reply if isinstance(reply, dict) else dict(zip(reply[::2], reply[1::2], strict=True))


def _capture(fn):
    try:
        return fn()
    except Exception as e:
        return e


def test_replicas_zero_refuses_manual_failover():
    d = Deployment(shards=1, replicas=0)
    try:
        assert [p["role"] for p in d.workers()] == ["primary"]
        out = d.cli("failover", "--shard", "0")
        assert out.returncode != 0 and "--replicas 0" in out.stderr
    finally:
        d.stop()


# ---------------------------------------------------------------- with replicas

def test_replicas_appear_in_the_topology_and_status(deployment):
    state = deployment.state()
    assert state["replicas"] == 1
    assert sorted(p["role"] for p in deployment.workers()) == ["primary", "primary", "replica", "replica"]
    r = redis.Redis(port=deployment.port)
    slots = r.execute_command("CLUSTER", "SLOTS")
    assert len(slots) == SHARDS
    for shard in range(SHARDS):
        primary, replicas = slots_primary(r, shard * 16384 // SHARDS)
        assert primary == deployment.primary(shard)["port"]
        assert replicas == [p["port"] for p in deployment.workers("replica", shard)]
    shards = r.execute_command("CLUSTER", "SHARDS")
    roles = sorted(as_dict(n)[b"role"] for s in shards for n in as_dict(s)[b"nodes"])
    assert roles == [b"master", b"master", b"replica", b"replica"]
    out = deployment.cli("status")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert sum(1 for line in lines if line.startswith("replica") and "link up" in line) == SHARDS, out.stdout
    assert sum(1 for line in lines if line.startswith("primary") and "1 replicas" in line) == SHARDS, out.stdout
    replica = deployment.workers("replica", 1)[0]
    with open(f"/proc/{replica['pid']}/cmdline", "rb") as f:
        title = f.read().replace(b"\0", b" ").strip()
    assert title == b"shardkv shard 1/2 replica %s:%d" % (HOST.encode(), replica["port"])
    # a replica redirects writers to its primary, and serves reads after READONLY
    key = key_in_shard(1) + ":ro"
    r.set(key, "v")
    assert r.execute_command("WAIT", 1, 2000) == 1
    raw = socket.create_connection((HOST, replica["port"]))
    raw.sendall(b"GET " + key.encode() + b"\r\n")
    assert raw.recv(200) == b"-MOVED %d %s:%d\r\n" % (_native.key_slot(key.encode()), HOST.encode(),
                                                      deployment.primary(1)["port"])
    raw.close()
    assert deployment.reader(replica).get(key) == b"v"
    with pytest.raises(redis.exceptions.MovedError):
        deployment.reader(replica).execute_command("SET", key, "w")    # writes still go to the primary


def test_wait_through_the_router_counts_every_shard(deployment):
    r = redis.Redis(port=deployment.port)
    r.set(key_in_shard(0) + ":w", 1)
    r.set(key_in_shard(1) + ":w", 1)
    assert r.execute_command("WAIT", 1, 2000) == 1
    assert r.execute_command("WAIT", 2, 200) == 1      # only one replica per shard: times out at 1


def test_wait_through_the_router_covers_writes_on_shared_connections(deployment):
    """A client whose writes went over the router's shared connections (no
    command yet that gave it its own) still waits for them."""
    replica = deployment.workers("replica", 0)[0]
    key = key_in_shard(0) + ":shared"
    with socket.create_connection((HOST, deployment.port), timeout=10) as s:
        os.kill(replica["pid"], signal.SIGSTOP)
        try:
            s.sendall(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$1\r\n1\r\n" % (len(key), key.encode()))
            assert s.recv(64) == b"+OK\r\n"
            s.sendall(b"*3\r\n$4\r\nWAIT\r\n$1\r\n1\r\n$3\r\n300\r\n")
            assert s.recv(64) == b":0\r\n"
        finally:
            os.kill(replica["pid"], signal.SIGCONT)
    assert wait_for(deployment.whole, 30)


def test_manual_failover_loses_no_acknowledged_write(deployment):
    tag = key_in_shard(0, "m")
    old = deployment.primary(0)
    replica = deployment.workers("replica", 0)[0]
    writer = Writer(deployment.port, tag)
    writer.start()
    assert wait_for(lambda: len(writer.acked) > 50, 10)
    out = deployment.cli("failover", "--shard", "0")
    assert out.returncode == 0, out.stderr + deployment.log_text()
    assert wait_for(lambda: len(writer.acked) > 0 and time.monotonic() - writer.last_ok < 0.1, 5)
    time.sleep(0.3)
    writer.stop()
    new = deployment.primary(0)
    assert new["port"] == replica["port"] and deployment.workers("replica", 0)[0]["port"] == old["port"]
    on_new = deployment.client(new)
    missing = [k for k in writer.acked if on_new.get(k) is None]
    assert not missing, (len(missing), len(writer.acked), missing[:5])
    assert deployment.client(old).info("replication")["role"] == "slave"
    r = redis.Redis(port=deployment.port)
    assert slots_primary(r, 0)[0] == new["port"]
    assert wait_for(deployment.whole, 20), deployment.log_text()
    # the old primary, now a replica, holds the same data
    assert wait_for(lambda: deployment.reader(old).get(writer.acked[-1]) is not None, 5)


def test_sigkill_of_a_primary_fails_over_and_keeps_confirmed_writes(deployment):
    tag = key_in_shard(0, "f")
    old = deployment.primary(0)
    replica = deployment.workers("replica", 0)[0]
    writer = Writer(deployment.port, tag, wait=True)
    writer.start()
    assert wait_for(lambda: len(writer.confirmed) > 50, 10)
    confirmed = list(writer.confirmed)
    killed = time.monotonic()
    os.kill(old["pid"], signal.SIGKILL)
    assert wait_for(lambda: writer.back_after(killed) is not None, 10)
    back = writer.back_after(killed) - killed
    writer.stop()
    # the time itself (about 30 ms here, the issue asks for 2 s) is measured by
    # scripts/bench-failover, not asserted: a busy CI machine must not fail this
    assert back < 10.0, (back, writer.errors[-3:])
    new = deployment.primary(0)
    assert new["port"] == replica["port"]
    on_new = deployment.client(new)
    assert [k for k in confirmed if on_new.get(k) is None] == []
    r = redis.Redis(port=deployment.port)
    assert slots_primary(r, 0)[0] == new["port"]
    # a new replica on the dead primary's port follows the new primary
    assert wait_for(deployment.whole, 20), deployment.log_text()
    assert deployment.workers("replica", 0)[0]["port"] == old["port"]
    # shown again once the supervisor saw it synced and the workers reloaded nodes.conf
    assert wait_for(lambda: slots_primary(r, 0)[1] == [old["port"]], 10)
    print(f"failover after SIGKILL: writes back after {back * 1000:.0f} ms")


def test_cluster_client_keeps_working_after_a_failover(deployment):
    from redis.cluster import RedisCluster
    rc = RedisCluster(host=HOST, port=deployment.port, socket_timeout=2)
    try:
        tag = key_in_shard(1, "c")
        for i in range(20):
            rc.set(f"{tag}:{i}", i)
        assert rc.execute_command("WAIT", 1, 2000, target_nodes=RedisCluster.PRIMARIES) is not None
        old = deployment.primary(1)
        os.kill(old["pid"], signal.SIGKILL)
        killed = time.monotonic()

        def works():
            try:
                rc.set(f"{tag}:after", "yes")
                return rc.get(f"{tag}:after") == b"yes"
            except (redis.RedisError, OSError):
                return False
        assert wait_for(works, 15), deployment.log_text()
        print(f"RedisCluster writes back after {(time.monotonic() - killed) * 1000:.0f} ms")
        assert [rc.get(f"{tag}:{i}") for i in range(20)] == [str(i).encode() for i in range(20)]
        assert rc.get_node_from_key(f"{tag}:x").port == deployment.primary(1)["port"]
        assert wait_for(deployment.whole, 20), deployment.log_text()
    finally:
        rc.close()
