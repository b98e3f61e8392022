"""`shardkv start`: the supervisor. It runs N worker processes (shard servers,
one per slot range) and M router processes, restarts any that dies (with
back-off), speaks the systemd notify protocol, and stops everything on
SIGTERM/SIGINT or `shardkv stop`. `shardkv status` reads the state file it
keeps and asks every process for its numbers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

from shardkv.cluster import Node, write_nodes_conf
from shardkv.router import even_slot_ranges
from shardkv.server import notify_systemd

STOP_TIMEOUT = 8.0
START_TIMEOUT = 15.0


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
    role: str                  # "router" or "primary"
    name: str                  # what logs and status call it
    host: str
    port: int
    argv: list
    slots: str = ""
    proc: subprocess.Popen | None = None
    started: float = 0.0
    backoff: float = 0.1
    restart_at: float = 0.0
    restarts: int = 0
    extra: dict = field(default_factory=dict)

    def start(self):
        # only the supervisor talks to systemd (NotifyAccess=main)
        env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, env=env)
        self.started = time.monotonic()
        log(f"started {self.name} pid {self.proc.pid} on {self.host}:{self.port}")


class Supervisor:
    def __init__(self, args):
        self.args = args
        self.bind = args.bind.split()[0]
        self.children: list[Child] = []
        self.stopping = False
        self.state_path = state_file(args.dir, args.port)
        n = args.shards
        ranges = even_slot_ranges(n)
        worker_ports, router_ports = [], []
        for i in range(n):
            if args.worker_port == 0:
                worker_ports.append(free_port(self.bind))
                router_ports.append(free_port(self.bind))
            else:
                worker_ports.append(args.worker_port + i)
                router_ports.append(args.worker_port + i + 10000)
        if max(router_ports) > 65535:
            raise SystemExit("shardkv: --worker-port too high: workers also listen on their port + 10000")
        # the topology every worker serves to cluster clients (CLUSTER SLOTS,
        # MOVED), as Redis-format nodes.conf files, one per worker
        self.nodes = [Node(id=os.urandom(20).hex(), host=self.bind, port=p, bus_port=rp,
                           flags=["master"], epoch=i + 1, slots=ranges[i], shard_id=os.urandom(20).hex())
                      for i, (p, rp) in enumerate(zip(worker_ports, router_ports, strict=True))]
        router_sockets = [router_socket_path(args.dir, p) for p in worker_ports]
        py = [sys.executable, "-m", "shardkv"]
        for i, port in enumerate(worker_ports):
            first, last = ranges[i][0]
            conf = f"nodes-{port}.conf"
            write_nodes_conf(os.path.join(args.dir, conf), self.nodes, self.nodes[i])
            title = f"shardkv shard {i}/{n} primary {self.bind}:{port} slots {first}-{last}"
            argv = py + ["server"] + ([args.config] if args.config else []) + [
                "--port", str(port), "--bind", self.bind, "--dir", args.dir, "--title", title,
                "--cluster-enabled", "yes", "--cluster-config-file", conf,
                "--shard-router-port", str(router_ports[i]),
                # each shard's own snapshot and append-only file in the shared --dir
                "--dbfilename", f"dump-shard{i}.rdb", "--appenddirname", f"appendonlydir-shard{i}"]
            if router_sockets[i]:
                argv += ["--shard-router-socket", router_sockets[i]]
            for directive in args.directive or []:
                argv += ["--" + directive[0]] + directive[1:]
            argv += memory_args(args, n)
            self.children.append(Child("primary", f"shard {i}/{n}", self.bind, port, argv,
                                       slots=f"{first}-{last}"))
        # the routers reach the workers over unix sockets where the path fits
        # (a third less kernel time per batch than loopback TCP), else TCP
        shards = ",".join(f"unix:{path}" if path else f"{self.bind}:{p}"
                          for p, path in zip(router_ports, router_sockets, strict=True))
        for r in range(args.routers):
            title = f"shardkv router {self.bind}:{args.port}" + (f" #{r}" if args.routers > 1 else "")
            argv = py + ["router", "--port", str(args.port), "--bind", args.bind, "--shards", shards,
                         "--title", title]
            self.children.append(Child("router", f"router {r}", self.bind, args.port, argv))

    def workers(self):
        return [c for c in self.children if c.role != "router"]

    def write_state(self):
        state = {"supervisor": os.getpid(), "port": self.args.port, "processes": [
            {"role": c.role, "name": c.name, "pid": c.proc.pid if c.proc else None,
             "host": c.host, "port": c.port, "slots": c.slots} for c in self.children]}
        tmp = self.state_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(state, f)
        os.replace(tmp, self.state_path)

    def wait_ready(self, children):
        deadline = time.monotonic() + START_TIMEOUT
        for c in children:
            while not ping(c.host, c.port):
                if c.proc.poll() is not None:
                    raise SystemExit(f"shardkv: {c.name} exited with {c.proc.returncode} while starting")
                if time.monotonic() > deadline:
                    raise SystemExit(f"shardkv: {c.name} did not answer PING within {START_TIMEOUT:.0f}s")
                time.sleep(0.05)

    def run(self):
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        try:
            for c in self.workers():
                c.start()
            self.wait_ready(self.workers())
            for c in self.children:
                if c.role == "router":
                    c.start()
            self.wait_ready([c for c in self.children if c.role == "router"])
        except SystemExit:
            self.stop_all()
            raise
        self.write_state()
        status = f"{len(self.workers())} shards behind {self.bind}:{self.args.port}"
        log(f"ready: {status}")
        notify_systemd(f"READY=1\nSTATUS=Ready: {status}\nMAINPID={os.getpid()}")
        watchdog = int(os.environ.get("WATCHDOG_USEC", "0")) / 1e6
        last_watchdog = 0.0
        while not self.stopping:
            self.check_children()
            if watchdog and time.monotonic() - last_watchdog > watchdog / 2:
                notify_systemd("WATCHDOG=1")
                last_watchdog = time.monotonic()
            time.sleep(0.05)
        self.stop_all()
        return 0

    def check_children(self):
        now = time.monotonic()
        for c in self.children:
            if c.proc is None:
                if now >= c.restart_at:
                    c.start()
                    c.restarts += 1
                    self.write_state()
                    notify_systemd(f"STATUS=restarted {c.name} ({c.restarts} restarts)")
                continue
            code = c.proc.poll()
            if code is None:
                if now - c.started > 10:
                    c.backoff = 0.1
                continue
            log(f"{c.name} (pid {c.proc.pid}) exited with {code}; restarting in {c.backoff:.1f}s")
            c.proc = None
            c.restart_at = now + c.backoff
            c.backoff = min(c.backoff * 2, 5.0)

    def _on_signal(self, signum, frame):
        log(f"received {signal.Signals(signum).name}, stopping")
        self.stopping = True

    def stop_all(self):
        notify_systemd("STOPPING=1")
        procs = [c for c in self.children if c.proc is not None and c.proc.poll() is None]
        # routers first, so no client writes reach a stopping worker
        for c in sorted(procs, key=lambda c: c.role != "router"):
            c.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for c in procs:
            try:
                c.proc.wait(max(deadline - time.monotonic(), 0.01))
            except subprocess.TimeoutExpired:
                log(f"{c.name} did not stop in time; killing it")
                c.proc.kill()
                c.proc.wait()
        try:
            os.unlink(self.state_path)
        except FileNotFoundError:
            pass
        log("stopped")


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
    if args.replicas:
        raise SystemExit("shardkv: --replicas > 0 arrives with replication; use --replicas 0 for now")
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
    import redis
    try:
        r = redis.Redis(host=host, port=port, socket_timeout=1)
        info = r.info()
        r.close()
        return info
    except Exception:
        return None


def status(args):
    state = read_state(args)
    rows = [("ROLE", "NAME", "PID", "ADDRESS", "SLOTS", "KEYS", "OPS/S", "MEMORY")]
    for p in state["processes"]:
        keys = ops = mem = "-"
        if p["role"] != "router":
            info = _info(p["host"], p["port"])
            if info is None:
                keys = ops = mem = "down"
            else:
                keys = str(sum(v.get("keys", 0) for k, v in info.items() if k.startswith("db")
                               and isinstance(v, dict)))
                ops = str(info.get("instantaneous_ops_per_sec", 0))
                mem = info.get("used_memory_human", "-")
        else:
            keys = "-" if ping(p["host"], p["port"]) else "down"
        rows.append((p["role"], p["name"], str(p["pid"]), f"{p['host']}:{p['port']}", p["slots"] or "-",
                     keys, ops, mem))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print(f"supervisor pid {state['supervisor']}")
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    return 0
