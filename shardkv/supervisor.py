"""`shardkv start`: the supervisor. It runs N worker processes (shard servers,
one per slot range), R replica processes per shard and M router processes,
restarts any that dies (with back-off), fails a shard over to its most
up-to-date replica when its primary dies or stops answering, speaks the
systemd notify protocol, and stops everything on SIGTERM/SIGINT or
`shardkv stop`. It owns the topology: every worker's nodes.conf (rewritten
after a failover; the workers load it again) and the routes file the
routers read on SIGHUP. `shardkv status` reads the state file it keeps and
asks every process for its numbers; `shardkv failover` asks it, over the
control socket in --dir, for a manual failover."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from shardkv.cluster import Node, write_nodes_conf
from shardkv.router import even_slot_ranges, write_routes
from shardkv.server import notify_systemd

STOP_TIMEOUT = 8.0
START_TIMEOUT = 15.0
HEALTH_PERIOD = 0.1        # seconds between two ROLE requests to a worker


def log(msg, who="supervisor"):
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} shardkv[{os.getpid()}] {who}: {msg}",
          file=sys.stderr, flush=True)


def ping(host, port, timeout=0.5):
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:
        return False


class ReplyError(Exception):
    pass


class Conn:
    """A minimal blocking RESP2 client: the supervisor asks its workers
    ROLE, REPLICAOF, CONFIG SET, CLIENT PAUSE (redis-py is only a test
    dependency)."""

    def __init__(self, host, port, timeout=1.0, password=None):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.file = self.sock.makefile("rb")
        if password:
            self.call("AUTH", password)

    def call(self, *args):
        words = [a if isinstance(a, bytes) else str(a).encode() for a in args]
        self.sock.sendall(b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in words))
        return self._read()

    def _read(self):
        line = self.file.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError("connection closed")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode("latin-1")
        if kind == b"-":
            raise ReplyError(rest.decode("latin-1"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self.file.read(n + 2)[:-2].decode("latin-1")
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._read() for _ in range(n)]
        raise ConnectionError(f"unexpected reply {line[:40]!r}")

    def close(self):
        try:
            self.file.close()
            self.sock.close()
        except OSError:
            pass


def memory_args(args, shards):
    """`--maxmemory TOTAL` is the deployment's limit: each worker gets an
    even share (at least one byte, since 0 would mean no limit)."""
    out = []
    total = getattr(args, "maxmemory", None)
    if total:
        out += ["--maxmemory", str(max(total // shards, 1))]
    policy = getattr(args, "maxmemory_policy", None)
    if policy:
        out += ["--maxmemory-policy", policy]
    return out


def free_port(host):
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class Child:
    role: str                  # "router", "primary" or "replica" (a failover swaps the last two)
    name: str                  # what logs and status call it
    host: str
    port: int
    argv: list = field(default_factory=list)   # a worker's is built at each start
    shard: int = -1
    node: Node | None = None   # a worker's line in nodes.conf
    router_port: int = 0       # a worker's TCP port for the routers
    router_socket: str | None = None
    proc: subprocess.Popen | None = None
    started: float = 0.0
    backoff: float = 0.1
    restart_at: float = 0.0
    restarts: int = 0
    # what its monitor thread saw since its last start
    generation: int = 0
    ready: bool = False        # has answered
    last_ok: float = 0.0       # when it last answered
    synced: bool = False       # a replica whose link to its primary has been up
    offset: int = -1           # its replication offset (ROLE)

    @property
    def slots(self):
        if self.node is None or not self.node.is_primary:
            return ""
        return ",".join(f"{a}-{b}" for a, b in self.node.slots)

    @property
    def route(self):
        """How the routers reach this worker."""
        return f"unix:{self.router_socket}" if self.router_socket else f"{self.host}:{self.router_port}"

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self):
        # only the supervisor talks to systemd (NotifyAccess=main)
        env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
        self.generation += 1
        self.ready = self.synced = False
        self.offset = -1
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, env=env)
        self.started = time.monotonic()
        log(f"started {self.name} {self.role} pid {self.proc.pid} on {self.host}:{self.port}")


class Supervisor:
    def __init__(self, args):
        self.args = args
        self.bind = args.bind.split()[0]
        self.children: list[Child] = []
        self.stopping = False
        self.state_path = state_file(args.dir, args.port)
        self.routes_path = os.path.join(os.path.abspath(args.dir), f"shardkv-{args.port}.routes")
        self.nshards = n = args.shards
        self.nreplicas = args.replicas
        self.failover_timeout = getattr(args, "failover_timeout", 5000) / 1000
        self.worker_config = worker_config(args)
        self.password = self.worker_config["requirepass"] or None
        self.control = None
        self.control_path = control_socket_path(args.dir, args.port)
        self.ranges = ranges = even_slot_ranges(n)
        # primaries on the first N ports, then the replicas, replica j of
        # shard i on worker_port + N * (j + 1) + i
        count = n * (1 + self.nreplicas)
        if args.worker_port == 0:
            ports = [free_port(self.bind) for _ in range(count)]
            router_ports = [free_port(self.bind) for _ in range(count)]
        else:
            ports = [args.worker_port + k for k in range(count)]
            router_ports = [p + 10000 for p in ports]
        if max(router_ports) > 65535:
            raise SystemExit("shardkv: --worker-port too high: workers use their port + 10000 too, and "
                             f"{count} ports from --worker-port")
        for k, (port, rport) in enumerate(zip(ports, router_ports, strict=True)):
            i = k % n
            primary = k < n
            node = Node(id=os.urandom(20).hex(), host=self.bind, port=port, bus_port=rport,
                        flags=["master"] if primary else ["slave"], epoch=i + 1,
                        slots=ranges[i] if primary else [],
                        primary_id="-" if primary else self.children[i].node.id,
                        shard_id=os.urandom(20).hex() if primary else self.children[i].node.shard_id)
            self.children.append(Child("primary" if primary else "replica", f"shard {i}/{n}", self.bind, port,
                                       shard=i, node=node, router_port=rport,
                                       router_socket=router_socket_path(args.dir, port)))
        for r in range(args.routers):
            self.children.append(Child("router", f"router {r}", self.bind, args.port))
        self.write_topology()

    # ------------------------------------------------------------ topology
    def workers(self):
        return [c for c in self.children if c.role != "router"]

    def routers(self):
        return [c for c in self.children if c.role == "router"]

    def primary(self, shard):
        return next(c for c in self.children if c.role == "primary" and c.shard == shard)

    def replicas(self, shard):
        return [c for c in self.children if c.role == "replica" and c.shard == shard]

    def nodes(self):
        return [c.node for c in self.workers()]

    def write_topology(self):
        """Every worker's nodes.conf and the routers' routes file, as the
        topology stands now."""
        nodes = self.nodes()
        for c in self.workers():
            write_nodes_conf(os.path.join(self.args.dir, f"nodes-{c.port}.conf"), nodes, c.node)
        write_routes(self.routes_path, self.routes())

    def routes(self):
        return ",".join(self.primary(i).route for i in range(self.nshards))

    def signal_routers(self):
        """Routers read the routes file again on SIGHUP. One still starting
        (SIGHUP not yet handled nor ignored) reads it when it runs."""
        for c in self.routers():
            if c.alive() and _handles(c.proc.pid, signal.SIGHUP):
                try:
                    c.proc.send_signal(signal.SIGHUP)
                except OSError:
                    pass

    def worker_argv(self, c):
        """A worker's command line, for its role now: a primary keeps the
        shard's files; a replica follows the shard's primary and keeps no
        files (its own dbfilename, so a full sync never writes the shard's)."""
        i, n, args = c.shard, self.nshards, self.args
        argv = [sys.executable, "-m", "shardkv", "server"] + ([args.config] if args.config else [])
        if c.role == "primary":
            first, last = self.ranges[i][0]
            title = f"shardkv shard {i}/{n} primary {c.host}:{c.port} slots {first}-{last}"
        else:
            title = f"shardkv shard {i}/{n} replica {c.host}:{c.port}"
        argv += ["--port", str(c.port), "--bind", self.bind, "--dir", args.dir, "--title", title,
                 "--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{c.port}.conf",
                 "--shard-router-port", str(c.router_port),
                 "--dbfilename", f"dump-shard{i}.rdb", "--appenddirname", f"appendonlydir-shard{i}"]
        if c.router_socket:
            argv += ["--shard-router-socket", c.router_socket]
        for directive in args.directive or []:
            argv += ["--" + directive[0]] + directive[1:]
        argv += memory_args(args, n)
        if self.nreplicas:
            # a primary starts a full sync at once, not after Redis's 5 s wait
            argv += ["--repl-diskless-sync-delay", "0"]
            # replicas authenticate with the workers' password unless told otherwise
            if self.password and "masterauth" in self.worker_config.values \
                    and not self.worker_config["masterauth"]:
                argv += ["--masterauth", self.password]
        if c.role == "replica":
            p = self.primary(i)
            for name, value in self.replica_persistence(c):
                argv += ["--" + name, value]
            argv += ["--replicaof", p.host, str(p.port)]
        return argv

    def primary_persistence(self, c):
        """What a primary of shard i writes: the shard's files, as configured."""
        cfg = self.worker_config
        return [("dbfilename", f"dump-shard{c.shard}.rdb"),
                ("save", " ".join(f"{s} {n}" for s, n in cfg["save"])),
                ("appendonly", "yes" if cfg["appendonly"] else "no")]

    @staticmethod
    def replica_persistence(c):
        """A replica writes none of the shard's files (appendonly off first)."""
        return [("appendonly", "no"), ("save", ""), ("dbfilename", f"replica-{c.port}.rdb")]

    def start_child(self, c):
        if c.role != "router":
            c.argv = self.worker_argv(c)
        else:
            c.argv = [sys.executable, "-m", "shardkv", "router", "--port", str(self.args.port),
                      "--bind", self.args.bind, "--shards", self.routes(), "--routes-file", self.routes_path,
                      "--title", f"shardkv router {self.bind}:{self.args.port}"
                      + (f" #{c.name.split()[1]}" if self.args.routers > 1 else "")]
        c.start()

    def conn(self, c, timeout=1.0):
        return Conn(c.host, c.port, timeout=timeout, password=self.password)

    # ------------------------------------------------------------ state
    def write_state(self):
        state = {"supervisor": os.getpid(), "port": self.args.port, "control": self.control_path,
                 "shards": self.nshards, "replicas": self.nreplicas, "processes": [
                     {"role": c.role, "name": c.name, "pid": c.proc.pid if c.proc else None,
                      "host": c.host, "port": c.port, "slots": c.slots, "shard": c.shard,
                      "id": c.node.id if c.node else None} for c in self.children]}
        tmp = self.state_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(state, f)
        os.replace(tmp, self.state_path)

    def wait_ready(self, children):
        deadline = time.monotonic() + START_TIMEOUT
        for c in children:
            while not ping(c.host, c.port):
                if c.proc.poll() is not None:
                    raise SystemExit(f"shardkv: {c.name} {c.role} exited with {c.proc.returncode} while starting")
                if time.monotonic() > deadline:
                    raise SystemExit(f"shardkv: {c.name} {c.role} did not answer PING within {START_TIMEOUT:.0f}s")
                time.sleep(0.05)

    # ------------------------------------------------------------ run
    def run(self):
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        try:
            primaries = [c for c in self.workers() if c.role == "primary"]
            for c in primaries:
                self.start_child(c)
            self.wait_ready(primaries)
            # replicas once their primary answers (it has loaded the shard's data)
            rest = [c for c in self.children if c.role != "primary"]
            for c in rest:
                self.start_child(c)
            self.wait_ready(rest)
            self.control = listen_control(self.control_path)
        except SystemExit:
            self.stop_all()
            raise
        for c in self.workers() if self.nreplicas else ():
            threading.Thread(target=self.monitor, args=(c,), daemon=True, name=f"monitor {c.port}").start()
        self.write_state()
        status = f"{self.nshards} shards, {self.nreplicas} replicas each, behind {self.bind}:{self.args.port}"
        log(f"ready: {status}")
        notify_systemd(f"READY=1\nSTATUS=Ready: {status}\nMAINPID={os.getpid()}")
        watchdog = int(os.environ.get("WATCHDOG_USEC", "0")) / 1e6
        last_watchdog = 0.0
        while not self.stopping:
            self.check_children()
            self.check_health()
            if watchdog and time.monotonic() - last_watchdog > watchdog / 2:
                notify_systemd("WATCHDOG=1")
                last_watchdog = time.monotonic()
            self.serve_control(0.05)
        self.stop_all()
        return 0

    def monitor(self, c):
        """A worker's health, seen from a thread of its own: ROLE every
        HEALTH_PERIOD on one connection. The main loop reads what it saw."""
        conn, gen = None, -1
        timeout = min(1.0, max(self.failover_timeout / 2, 0.05))
        while not self.stopping:
            if gen != c.generation or not c.alive():
                if conn is not None:
                    conn.close()
                conn, gen = None, c.generation
                if not c.alive():
                    time.sleep(HEALTH_PERIOD)
                    continue
            try:
                if conn is None:
                    conn = self.conn(c, timeout)
                reply = conn.call("ROLE")
                if gen == c.generation:
                    c.last_ok = time.monotonic()
                    c.ready = True
                    if reply[0] == "master":
                        c.offset = int(reply[1])
                    elif reply[0] == "slave":
                        c.offset = int(reply[4])
                        if reply[3] == "connected":
                            c.synced = True
            except ReplyError:
                if gen == c.generation:
                    c.last_ok = time.monotonic()      # it answers: alive (LOADING, NOAUTH...)
                    c.ready = True
            except (OSError, ValueError, IndexError, TypeError):
                if conn is not None:
                    conn.close()
                conn = None
            time.sleep(HEALTH_PERIOD)
        if conn is not None:
            conn.close()

    def check_children(self):
        now = time.monotonic()
        for c in self.children:
            if c.proc is None:
                if now >= c.restart_at:
                    self.start_child(c)
                    c.restarts += 1
                    self.write_state()
                    notify_systemd(f"STATUS=restarted {c.name} {c.role} ({c.restarts} restarts)")
                continue
            code = c.proc.poll()
            if code is None:
                if now - c.started > 10:
                    c.backoff = 0.1
                continue
            if c.role == "primary" and self.nreplicas and not self.stopping:
                log(f"{c.name} primary (pid {c.proc.pid}) exited with {code}")
                c.proc = None
                if self.failover(c.shard, reason=f"its primary exited with {code}"):
                    c.restart_at = now     # back at once, as a replica of the new primary
                    continue
            log(f"{c.name} {c.role} (pid {c.proc.pid if c.proc else '-'}) exited with {code}; "
                f"restarting in {c.backoff:.1f}s")
            c.proc = None
            c.restart_at = now + c.backoff
            c.backoff = min(c.backoff * 2, 5.0)
            if c.role == "replica" and not c.node.failed:
                c.node.flags.append("fail")
                self.write_topology()

    def check_health(self):
        now = time.monotonic()
        changed = False
        for c in self.workers():
            if c.role == "replica" and c.node.failed and c.alive() and c.synced:
                c.node.flags.remove("fail")      # back and synced: clients may read from it again
                changed = True
            elif c.role == "primary" and self.nreplicas and c.alive() and c.ready \
                    and now - c.last_ok > self.failover_timeout:
                log(f"{c.name} primary (pid {c.proc.pid}) answered nothing for {now - c.last_ok:.1f}s")
                if self.failover(c.shard, reason="its primary stopped answering"):
                    c.restart_at = now
                else:
                    c.last_ok = now      # try again after another timeout
        if changed:
            self.write_topology()

    # ------------------------------------------------------------ failover
    def candidates(self, shard):
        """The shard's replicas that could take over, most up-to-date
        first: alive, answering, and synced with their primary since they
        started (a replica still in its first sync holds nothing)."""
        found = []
        for c in self.replicas(shard):
            if not c.alive() or not c.synced:
                continue
            try:
                conn = self.conn(c, 0.5)
                try:
                    reply = conn.call("ROLE")
                finally:
                    conn.close()
                found.append((int(reply[4]) if reply[0] == "slave" else int(reply[1]), c))
            except (OSError, ReplyError, ValueError, IndexError):
                continue
        found.sort(key=lambda e: -e[0])
        return [c for _, c in found]

    def failover(self, shard, reason):
        """Automatic failover: the primary is dead or not answering. Its
        most up-to-date replica becomes the primary; False when none can."""
        old = self.primary(shard)
        candidates = self.candidates(shard)
        if not candidates:
            log(f"shard {shard}: {reason}, and no replica is in sync to take over")
            return False
        if old.alive():
            # it must not serve writes any more: fence it
            log(f"shard {shard}: killing the unresponsive primary pid {old.proc.pid}")
            old.proc.kill()
            old.proc.wait()
            old.proc = None
        started = time.monotonic()
        for new in candidates:
            try:
                conn = self.conn(new)
                try:
                    conn.call("REPLICAOF", "NO", "ONE")
                    self.configure(conn, self.primary_persistence(new))
                finally:
                    conn.close()
                break
            except (OSError, ReplyError) as e:
                log(f"shard {shard}: cannot promote {new.host}:{new.port}: {e}")
        else:
            return False
        self.switch(shard, old, new, old_failed=True)
        log(f"shard {shard}: {reason}; {new.host}:{new.port} is its primary now "
            f"({(time.monotonic() - started) * 1000:.0f} ms)")
        notify_systemd(f"STATUS=failover of shard {shard} to {new.host}:{new.port}")
        return True

    def switch(self, shard, old, new, old_failed):
        """The topology after a promotion: new serves the slots under a new
        epoch, old becomes its replica (down until it is back, if
        old_failed), the routers re-target, the other replicas follow."""
        epoch = max(n.epoch for n in self.nodes()) + 1
        new.node.flags = ["master"]
        new.node.primary_id = "-"
        new.node.slots, old.node.slots = old.node.slots, []
        new.node.epoch = epoch
        old.node.flags = ["slave", "fail"] if old_failed else ["slave"]
        new.role, old.role = "primary", "replica"
        for c in self.replicas(shard):
            c.node.primary_id = new.node.id
            c.node.epoch = epoch
        self.write_topology()
        self.signal_routers()
        self.write_state()
        for c in self.replicas(shard):
            if c is old or not c.alive():
                continue
            try:
                conn = self.conn(c)
                try:
                    conn.call("REPLICAOF", new.host, str(new.port))
                finally:
                    conn.close()
            except (OSError, ReplyError) as e:
                log(f"shard {shard}: replica {c.host}:{c.port} cannot follow the new primary ({e}); restarting it")
                c.proc.kill()

    def configure(self, conn, settings):
        for name, value in settings:
            try:
                conn.call("CONFIG", "SET", name, value)
            except ReplyError as e:
                log(f"CONFIG SET {name} {value!r}: {e}")

    def manual_failover(self, shard, replica=None, timeout=10.0):
        """`shardkv failover`: as CLUSTER FAILOVER, no write is lost. The
        primary holds its writers (CLIENT PAUSE WRITE), the replica catches
        up with its offset, is promoted, the routers re-target, and the old
        primary becomes a replica of the new one before its writers go on
        (they get READONLY or MOVED: nothing they send lands on it)."""
        if not 0 <= shard < self.nshards:
            raise ValueError(f"no shard {shard} (shards 0 to {self.nshards - 1})")
        if not self.nreplicas:
            raise ValueError("this deployment runs no replicas (--replicas 0)")
        old = self.primary(shard)
        if not old.alive() or not old.ready:
            raise ValueError(f"shard {shard}'s primary is not running; the supervisor fails it over by itself")
        candidates = self.candidates(shard)
        if replica is not None:
            candidates = [c for c in candidates if f"{c.host}:{c.port}" == replica or str(c.port) == replica]
        if not candidates:
            raise ValueError(f"shard {shard} has no replica in sync" + (f" named {replica}" if replica else ""))
        new = candidates[0]
        started = time.monotonic()
        po = self.conn(old, timeout=timeout + 2)
        rc = self.conn(new, timeout=timeout + 2)
        try:
            po.call("CLIENT", "PAUSE", int(timeout * 1000) + 5000, "WRITE")
            try:
                deadline = time.monotonic() + timeout
                while True:
                    target = int(po.call("ROLE")[1])
                    have = int(rc.call("ROLE")[4])
                    if have >= target:
                        break
                    if time.monotonic() > deadline:
                        raise ValueError(f"replica {new.host}:{new.port} did not catch up within {timeout}s "
                                         f"(offset {have} of {target}); nothing changed")
                    time.sleep(0.005)
                # the old primary lets go of the shard's files before the new one writes them
                self.configure(po, self.replica_persistence(old))
                rc.call("REPLICAOF", "NO", "ONE")
                self.configure(rc, self.primary_persistence(new))
                self.switch(shard, old, new, old_failed=False)
                po.call("REPLICAOF", new.host, str(new.port))
            finally:
                try:
                    po.call("CLIENT", "UNPAUSE")
                except (OSError, ReplyError):
                    pass
        finally:
            po.close()
            rc.close()
        took = (time.monotonic() - started) * 1000
        log(f"shard {shard}: manual failover to {new.host}:{new.port} ({took:.0f} ms)")
        notify_systemd(f"STATUS=manual failover of shard {shard} to {new.host}:{new.port}")
        return f"shard {shard}: {new.host}:{new.port} is the primary now, {old.host}:{old.port} its replica " \
               f"({took:.0f} ms)"

    # ------------------------------------------------------------ control socket
    def serve_control(self, wait):
        """Waits up to `wait` seconds for a request on the control socket and
        serves it: one JSON line in, one JSON line out."""
        if self.control is None:
            time.sleep(wait)
            return
        try:
            readable, _, _ = select.select([self.control], [], [], wait)
        except InterruptedError:
            return
        if not readable:
            return
        try:
            conn, _ = self.control.accept()
        except OSError:
            return
        with conn:
            try:
                uid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[1]
                if uid not in (0, os.getuid()):
                    raise ValueError("permission denied")
                conn.settimeout(5)
                request = json.loads(_read_line(conn))
                if request.get("cmd") != "failover":
                    raise ValueError(f"unknown request {request.get('cmd')!r}")
                reply = {"ok": True, "message": self.manual_failover(
                    int(request["shard"]), request.get("replica"), float(request.get("timeout", 10)))}
            except (ValueError, KeyError, OSError, ReplyError) as e:
                reply = {"ok": False, "message": str(e)}
            try:
                conn.settimeout(5)
                conn.sendall(json.dumps(reply).encode() + b"\n")
            except OSError:
                pass

    def _on_signal(self, signum, frame):
        log(f"received {signal.Signals(signum).name}, stopping")
        self.stopping = True

    def stop_all(self):
        notify_systemd("STOPPING=1")
        self.stopping = True
        procs = [c for c in self.children if c.proc is not None and c.proc.poll() is None]
        # routers first, so no client writes reach a stopping worker; then
        # replicas, so none takes a full sync from a stopping primary
        order = {"router": 0, "replica": 1, "primary": 2}
        for c in sorted(procs, key=lambda c: order[c.role]):
            c.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for c in procs:
            try:
                c.proc.wait(max(deadline - time.monotonic(), 0.01))
            except subprocess.TimeoutExpired:
                log(f"{c.name} {c.role} did not stop in time; killing it")
                c.proc.kill()
                c.proc.wait()
        for path in (self.state_path, self.routes_path, getattr(self, "control_path", None)):
            if path and not path.startswith("\0"):
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
        if self.control is not None:
            self.control.close()
        log("stopped")


def worker_config(args):
    """The configuration every worker starts with (the config file, then
    --directive), as the supervisor needs it: the password, the
    persistence a promoted replica takes on."""
    from shardkv.config import Config
    config = Config()
    if args.config:
        config.load_file(args.config)
    for words in args.directive or []:
        config.apply_words(words, "(--directive)", 0, "--directive " + " ".join(words))
    return config


def _handles(pid, signum):
    """True when pid catches or ignores signum (so sending it cannot kill it)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        mask = int(fields["SigCgt"], 16) | int(fields["SigIgn"], 16)
    except (OSError, KeyError, ValueError):
        return False
    return bool(mask & (1 << (signum - 1)))


def _read_line(sock):
    """One request or reply of the control socket: a JSON line."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def control_socket_path(directory, port):
    """The supervisor's control socket (`shardkv failover`): in --dir, or an
    abstract socket when that path is too long for sun_path."""
    path = os.path.join(os.path.abspath(directory), f"shardkv-{port}.control.sock")
    return path if len(path.encode()) < 100 else f"\0shardkv-{port}-{os.getpid()}.control"


def listen_control(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if not path.startswith("\0") and os.path.exists(path):
        os.unlink(path)
    s.bind(path)
    if not path.startswith("\0"):
        os.chmod(path, 0o600)
    s.listen(8)
    return s


def state_file(directory, port):
    return os.path.join(os.path.abspath(directory), f"shardkv-{port}.state.json")


def check_layout(directory, shards):
    """Data files of an earlier run belong to shards by index (dump-shard<i>.rdb,
    appendonlydir-shard<i>): their slots are only right for the same number
    of shards. Another number would need resharding, which does not exist
    yet: refuse it, and record the number for the next start."""
    path = os.path.join(directory, "shardkv-layout.json")
    if os.path.exists(path):
        with open(path) as f:
            before = json.load(f).get("shards")
        if before is not None and before != shards:
            raise SystemExit(f"shardkv: {directory} holds the data of {before} shards; starting {shards} "
                             f"would need resharding, which shardkv cannot do yet (start with --shards "
                             f"{before}, or use another --dir)")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"shards": shards}, f)
    os.replace(tmp, path)


def router_socket_path(directory, worker_port):
    """The unix socket a worker listens on for the routers, or None when the
    path would be longer than sun_path holds."""
    path = os.path.join(os.path.abspath(directory), f"shardkv-{worker_port}.router.sock")
    return path if len(path.encode()) < 100 else None


def daemonize(pidfile, logfile):
    if os.fork():
        os._exit(0)
    os.setsid()
    if os.fork():
        os._exit(0)
    fd = os.open(logfile or os.devnull, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    if pidfile:
        with open(pidfile, "w") as f:
            f.write(f"{os.getpid()}\n")


def start(args):
    if args.replicas < 0:
        raise SystemExit("shardkv: --replicas must be 0 or more")
    if args.failover_timeout < 1:
        raise SystemExit("shardkv: --failover-timeout must be at least 1 ms")
    if args.shards < 1 or args.shards > 16384:
        raise SystemExit("shardkv: --shards must be between 1 and 16384")
    os.makedirs(args.dir, exist_ok=True)
    check_layout(args.dir, args.shards)
    if os.path.exists(state_file(args.dir, args.port)):
        with open(state_file(args.dir, args.port)) as f:
            pid = json.load(f).get("supervisor")
        if pid and _alive(pid):
            raise SystemExit(f"shardkv: already running on port {args.port} (supervisor pid {pid})")
    if args.daemonize:
        daemonize(args.pidfile or os.path.join(os.path.abspath(args.dir), f"shardkv-{args.port}.pid"),
                  args.logfile)
    try:
        import setproctitle
        setproctitle.setproctitle(f"shardkv supervisor {args.bind.split()[0]}:{args.port}")
    except ImportError:
        pass
    return Supervisor(args).run()


def _alive(pid):
    """True while pid runs; a zombie (exited, not yet reaped) counts as gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rpartition(")")[2].split()[0] == "Z":
                return False
    except OSError:
        pass
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def read_state(args):
    path = state_file(args.dir, args.port)
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise SystemExit(f"shardkv: nothing running on port {args.port} (no {path})") from None


def stop(args):
    state = read_state(args)
    pid = state["supervisor"]
    if not _alive(pid):
        os.unlink(state_file(args.dir, args.port))
        print(f"shardkv: supervisor {pid} was not running; removed its state file")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT + 2
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(pid):
        raise SystemExit(f"shardkv: supervisor {pid} did not stop within {STOP_TIMEOUT + 2:.0f}s")
    print(f"shardkv: stopped (supervisor pid {pid})")
    return 0


def _info(host, port):
    """A worker's INFO as a dict of strings, or None if it does not answer."""
    try:
        conn = Conn(host, port, timeout=1)
        try:
            text = conn.call("INFO")
        finally:
            conn.close()
    except (OSError, ReplyError):
        return None
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line and not line.startswith("#"))


def _keys(info):
    return sum(int(v.split(",")[0].partition("=")[2] or 0) for k, v in info.items()
               if k.startswith("db") and k[2:].isdigit())


def status(args):
    state = read_state(args)
    rows = [("ROLE", "NAME", "PID", "ADDRESS", "SLOTS", "KEYS", "OPS/S", "MEMORY", "REPLICATION")]
    for p in state["processes"]:
        keys = ops = mem = repl = "-"
        if p["role"] != "router":
            info = _info(p["host"], p["port"])
            if info is None:
                keys = ops = mem = "down"
            else:
                keys = str(_keys(info))
                ops = info.get("instantaneous_ops_per_sec", "0")
                mem = info.get("used_memory_human", "-")
                if info.get("role") == "master":
                    repl = f"{info.get('connected_slaves', '0')} replicas, offset {info.get('master_repl_offset', '-')}"
                elif info.get("role") == "slave":
                    repl = (f"of {info.get('master_host')}:{info.get('master_port')}, link "
                            f"{info.get('master_link_status', '-')}, offset {info.get('slave_repl_offset', '-')}")
        else:
            keys = "-" if ping(p["host"], p["port"]) else "down"
        rows.append((p["role"], p["name"], str(p["pid"]), f"{p['host']}:{p['port']}", p["slots"] or "-",
                     keys, ops, mem, repl))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print(f"supervisor pid {state['supervisor']}")
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    return 0


def failover(args):
    """`shardkv failover --shard K`: asks the supervisor, over its control
    socket, to hand shard K over to a replica (see manual_failover)."""
    state = read_state(args)
    path = state.get("control")
    if not path or not _alive(state["supervisor"]):
        raise SystemExit(f"shardkv: the supervisor on port {args.port} is not running")
    request = {"cmd": "failover", "shard": args.shard, "replica": args.replica, "timeout": args.timeout}
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(args.timeout + 30)
            s.connect(path)
            s.sendall(json.dumps(request).encode() + b"\n")
            reply = json.loads(_read_line(s))
    except (OSError, ValueError) as e:
        raise SystemExit(f"shardkv: no answer from the supervisor: {e}") from None
    if not reply.get("ok"):
        raise SystemExit(f"shardkv: failover refused: {reply.get('message')}")
    print(f"shardkv: {reply['message']}")
    return 0
