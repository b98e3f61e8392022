"""One shard server process: the Python half of the shard. It owns the
configuration, the listening socket, the cron (active expiry, client
timeouts, statistics) and everything INFO reports; the Cython half
(ShardCore in cython_ext/core.pxi) owns the clients, the gate and call()."""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import time
from collections import deque

from shardkv import REDIS_VERSION, __version__
from shardkv.blocking import Blocker
from shardkv.peers import Peers
from shardkv.pubsub import PubSub
from shardkv.replication import Replication
from shardkv.tracking import Tracking
from shardkv.commands.observability import LatencyMonitor, record_slow_command
from shardkv.commands.table import build_dispatch_table
from shardkv.config import Config
from shardkv import eviction
from shardkv.native import _native
from shardkv.persistence.snapshot import Persistence

log = logging.getLogger("shardkv")

NO_TOUCH = _native.CLIENT_FLAGS["NO_TOUCH"]
BLOCKED = _native.CLIENT_FLAGS["BLOCKED"]
ROUTED = _native.CLIENT_FLAGS["ROUTED"]
MASTER_CLIENT = _native.CLIENT_FLAGS["MASTER"]
REPLICA_CLIENT = _native.CLIENT_FLAGS["REPLICA"]
WRITE_FLAG = 1 << 0
MAY_REPLICATE_FLAG = 1 << 15


class SlowLog:
    def __init__(self):
        self.entries = deque()
        self.next_id = 0

    def add(self, client, argv, duration_us, max_len):
        args = []
        for a in argv[:31]:
            args.append(a if len(a) <= 128 else a[:128] + b"... (%d more bytes)" % (len(a) - 128))
        if len(argv) > 32:
            args.append(b"... (%d more arguments)" % (len(argv) - 31))
        elif len(argv) == 32:
            args.append(argv[31])
        self.entries.appendleft([self.next_id, int(time.time()), duration_us, args,
                                 (client.addr or "").encode(), (client.name or b"")])
        self.next_id += 1
        while len(self.entries) > max_len:
            self.entries.pop()


class Server(_native.ShardCore):
    """A shard server: config, socket, cron, INFO."""

    def __init__(self, config: Config | None = None):
        self.config = config or Config()
        self.commands = build_dispatch_table()
        self.exec_cmd = self.commands[b"exec"]
        self.start_time = time.time()
        self.start_monotonic = time.monotonic()
        self.run_id = os.urandom(20).hex()
        self.listen_socket = None
        self.slowlog = SlowLog()
        self.latency_events = {}
        self.persistence = Persistence(self)
        self.cluster_enabled = False
        self.maxmemory = 0
        self.clients_paused_until = 0
        self.pause_mode = None
        self.paused_clients = []
        self.pause_timer = None
        self.stat_ops_samples = deque(maxlen=16)
        self.last_ops_sample = (time.monotonic(), 0)
        self.shutdown_requested = None
        self.cron_handle = None
        self.config.listeners.append(self.config_changed)
        self.latency = LatencyMonitor()
        for name in ("requirepass", "maxclients", "proto-max-bulk-len", "client-output-buffer-limit",
                     "slowlog-log-slower-than", "client-query-buffer-limit", "maxmemory",
                     "list-max-listpack-size"):
            self.config_changed(name, self.config[name], None)
        self.slowlog_hook = self._slow_command
        self.blocking = Blocker(self)
        self.pubsub = PubSub(self)
        self.peers = Peers(self)
        self.tracking = Tracking(self)
        self.repl = Replication(self)
        self.replica_read_only = self.config["replica-read-only"]
        self.pubsub.set_event_flags(self.config["notify-keyspace-events"])
        self.before_sleep_hook = self._before_sleep
        eviction.install(self)
        self.topology = None
        if self.config["cluster-enabled"]:
            self.load_topology()

    def load_topology(self):
        from shardkv.cluster import Topology
        path = os.path.join(self.config["dir"], self.config["cluster-config-file"])
        try:
            stamp = _file_stamp(path)
            self.topology = Topology.load(path)
        except (OSError, ValueError) as e:
            raise SystemExit(f"shardkv: cannot load the cluster topology {path}: {e}") from None
        self.cluster_enabled = True
        self.cluster_mode = True
        self._apply_topology(stamp)
        # the supervisor rewrites nodes.conf (atomically, by rename) when the
        # topology changes; a stat every 100 ms notices it
        self.loop.call_later(TOPOLOGY_CHECK_MS, self.reload_topology)

    def _apply_topology(self, stamp):
        self.topology_stamp = stamp
        self.slot_targets = self.topology.slot_targets()
        self.replica_read_slots = self.topology.replica_read_slots()

    def reload_topology(self):
        """Loads nodes.conf again if it changed since the last load; a file
        that cannot be read keeps the topology served now."""
        from shardkv.cluster import Topology
        path = os.path.join(self.config["dir"], self.config["cluster-config-file"])
        try:
            stamp = _file_stamp(path)
            if stamp != self.topology_stamp:
                before = self.topology.myself
                self.topology = Topology.load(path)
                self._apply_topology(stamp)
                self.peers.reset()
                me = self.topology.myself
                if before.flags != me.flags or before.slots != me.slots:
                    log.info("cluster topology changed: this node is now %s",
                             "a primary" if me.is_primary else "a replica")
                    _retitle(me)
        except (OSError, ValueError) as e:
            log.warning("cannot reload the cluster topology %s: %s", path, e)
        self.loop.call_later(TOPOLOGY_CHECK_MS, self.reload_topology)

    # ------------------------------------------------------------ config
    def config_changed(self, name, value, old):
        if name == "requirepass":
            self.requirepass = value.encode() if value else None
        elif name == "maxclients":
            self.maxclients = value
        elif name == "list-max-listpack-size":
            self.list_fill = value
        elif name == "notify-keyspace-events" and hasattr(self, "pubsub"):
            self.pubsub.set_event_flags(value)
        elif name == "proto-max-bulk-len":
            self.proto_max_bulk_len = value
            for c in self.clients.values():
                c.parser.max_bulk_len = value
        elif name == "client-query-buffer-limit":
            self.query_buffer_limit = value
        elif name == "client-output-buffer-limit":
            self.obuf_hard, self.obuf_soft, self.obuf_soft_seconds = value["normal"]
        elif name in ("slowlog-log-slower-than", "latency-monitor-threshold"):
            self._update_slow_threshold()
        elif name == "hz" and self.cron_handle is not None:
            pass  # the next cron tick picks the new period up
        elif name in ("appendonly", "save", "stop-writes-on-bgsave-error"):
            self.persistence.config_changed(name, value)
        elif name in ("repl-backlog-size", "replica-read-only") and hasattr(self, "repl"):
            self.repl.config_changed(name, value)

    def lfu_enabled(self):
        return self.lfu_mode

    def _slow_command(self, client, argv, duration):
        record_slow_command(self, client, client.current_cmd, argv, duration)

    def _update_slow_threshold(self):
        """call() reports commands at least this slow (µs), or none if -1."""
        limits = []
        if self.config["slowlog-log-slower-than"] >= 0:
            limits.append(self.config["slowlog-log-slower-than"])
        if self.config["latency-monitor-threshold"] > 0:
            limits.append(self.config["latency-monitor-threshold"] * 1000)
        self.slowlog_threshold = min(limits) if limits else -1

    # ------------------------------------------------------------ sockets
    def listen(self):
        """Binds every address of `bind` on `port` (0 picks a free port)."""
        port = self.config["port"]
        addrs = self.config["bind"].split() or ["127.0.0.1"]
        self.listen_sockets = []
        self.unix_paths = []
        for addr in addrs:
            optional = addr.startswith("-")
            addr = addr.lstrip("-")
            family = socket.AF_INET6 if ":" in addr else socket.AF_INET
            s = socket.socket(family, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((addr, port))
            except OSError as e:
                s.close()
                if optional:
                    continue
                raise SystemExit(f"shardkv: could not bind {addr}:{port}: {e.strerror}") from None
            s.listen(self.config["tcp-backlog"])
            s.setblocking(False)
            if port == 0:
                port = s.getsockname()[1]
                self.config.values["port"] = port
            self.listen_sockets.append(s)
            self.listen_fd(s.fileno())
        self.port = port
        router_port = self.config["shard-router-port"]
        if router_port:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((addrs[0].lstrip("-"), router_port))
            except OSError as e:
                s.close()
                raise SystemExit(f"shardkv: could not bind the router port {router_port}: {e.strerror}") from None
            s.listen(self.config["tcp-backlog"])
            s.setblocking(False)
            self.listen_sockets.append(s)
            self.listen_fd(s.fileno())
        for key in ("unixsocket", "shard-router-socket"):
            if self.config[key]:
                self.listen_unix(self.config[key], self.config["unixsocketperm"])
        return port

    def listen_unix(self, path, perm):
        """A unix socket listener; a stale socket file from an earlier run is replaced."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            if os.path.exists(path):
                os.unlink(path)
            s.bind(path)
            if perm:
                os.chmod(path, perm)
        except OSError as e:
            s.close()
            raise SystemExit(f"shardkv: could not bind the unix socket {path}: {e.strerror}") from None
        s.listen(self.config["tcp-backlog"])
        s.setblocking(False)
        self.listen_sockets.append(s)
        self.unix_paths.append(path)
        self.listen_fd(s.fileno())

    def client_connected(self, c):
        try:
            s = socket.socket(fileno=os.dup(c.fd))
            try:
                peer = s.getpeername()
                local = s.getsockname()
            finally:
                s.close()
            if isinstance(local, str):
                # a unix socket: Redis names both ends by the socket's path
                c.addr = c.laddr = f"{local}:0"
                if local == self.config["shard-router-socket"]:
                    c.flags |= ROUTED
                return
            c.addr = _format_addr(peer)
            c.laddr = _format_addr(local)
            if local[1] == self.config["shard-router-port"]:
                c.flags |= ROUTED
        except OSError:
            c.addr = c.laddr = "?:0"

    def _before_sleep(self):
        if self.blocking.ready:
            self.blocking.serve_ready()
        if self.tracking.bcast_pending:
            self.tracking.before_sleep()
        # the AOF is written (and with appendfsync always, fsynced) here,
        # before the loop flushes this pass's replies
        if len(self.repl_outbox) or self.repl.getack_requested:
            self.repl.before_sleep()
        aof = self.persistence.aof
        if aof is not None and aof.buf:
            aof.before_sleep()

    def after_flushall(self):
        self.persistence.after_flushall()
        self.after_flush()

    def after_flush(self):
        """FLUSHALL or FLUSHDB: tracking clients drop what they cached."""
        if self.tracking.clients:
            self.tracking.flushed()

    def key_modified(self, db, key):
        """The modified_hook while some client blocks or tracks keys."""
        self.blocking.key_modified(db, key)
        if self.tracking.clients:
            self.tracking.key_modified(key)

    def after_swapdb(self, a, b):
        self.blocking.databases_swapped(a, b)

    def unblock_client(self, c, with_error):
        return self.blocking.unblock(c, with_error)

    def on_client_reset(self, c):
        """RESET: the client listens to nothing and tracks nothing any more."""
        self.pubsub.forget(c)
        self.tracking.disable(c)

    def client_closed(self, c):
        self.blocking.forget(c)
        self.pubsub.forget(c)
        self.tracking.forget(c)
        self.repl.client_closed(c)
        if c in self.paused_clients:
            self.paused_clients.remove(c)

    # ------------------------------------------------------------ cron
    def cron(self):
        """Runs hz times a second: clocks, active expiry, idle clients,
        instantaneous statistics."""
        self.tick()
        hz = max(self.config["hz"], 1)
        if self.active_expire_enabled and not self.is_replica and not self.expire_deletes_paused:
            budget_us = int(1_000_000 / hz * 0.25)
            for db in self.dbs:
                if len(db.expires):
                    self.active_expire_cycle(db, budget_us)
        timeout = self.config["timeout"]
        if timeout:
            now = self.now_ms
            for c in list(self.clients.values()):
                if c.flags & (BLOCKED | MASTER_CLIENT | REPLICA_CLIENT):
                    continue    # replication links have timeouts of their own
                if now - c.last_interaction_ms > timeout * 1000:
                    self.close_client(c)
        mono = time.monotonic()
        last_t, last_n = self.last_ops_sample
        if mono - last_t >= 0.1:
            self.stat_ops_samples.append((self.stat_numcommands - last_n) / (mono - last_t))
            self.last_ops_sample = (mono, self.stat_numcommands)
        self.persistence.cron()
        self.repl.cron()
        eviction.cron(self)
        self.cron_handle = self.loop.call_later(1000 / hz, self.cron)

    # ------------------------------------------------------------ client pause
    def pause_clients(self, mode, until_ms):
        """CLIENT PAUSE: holds every command ("all") or the writes ("write")
        of normal clients until until_ms. A stronger or longer pause wins."""
        if self.pause_mode == "all" and mode == "write" and self.clients_paused_until > self.now_ms:
            mode = "all"
        self.pause_mode = mode
        self.clients_paused_until = max(until_ms, self.clients_paused_until)
        self.pause_hook = self._pause_gate
        # while paused nothing may change: keys past their time read as gone
        # but are not deleted, and the active expiry cycle waits
        self.expire_deletes_paused = True
        if self.pause_timer is not None:
            self.loop.cancel(self.pause_timer)
        self.pause_timer = self.loop.call_later(max(self.clients_paused_until - self.now_ms, 0),
                                                self.unpause_clients)

    def _pause_gate(self, c, cmd, argv):
        if c.flags & (MASTER_CLIENT | REPLICA_CLIENT):
            return False
        if self.pause_mode != "all" and not self._may_write(c, cmd):
            return False
        c.flags |= BLOCKED
        c.blocked = ("pause", argv)
        self.paused_clients.append(c)
        return True

    @staticmethod
    def _may_write(c, cmd):
        if cmd.flags & (WRITE_FLAG | MAY_REPLICATE_FLAG):
            return True
        if cmd.name == "exec" and c.multi_queue:
            return any(q.flags & (WRITE_FLAG | MAY_REPLICATE_FLAG) for q, _ in c.multi_queue)
        return False

    def unpause_clients(self):
        """Ends a pause: the held commands run, in the order they arrived."""
        self.clients_paused_until = 0
        self.pause_mode = None
        self.pause_hook = None
        self.expire_deletes_paused = False
        if self.pause_timer is not None:
            self.loop.cancel(self.pause_timer)
            self.pause_timer = None
        waiting, self.paused_clients = self.paused_clients, []
        for c in waiting:
            if c.closed:
                continue
            c.flags &= ~BLOCKED
            _, argv = c.blocked
            c.blocked = None
            self.process_command(c, argv)
            self.resume_client(c)
            self.wake_writer(c)

    # ------------------------------------------------------------ run
    @property
    def lastsave(self):
        return self.persistence.lastsave

    def serve_forever(self):
        self.install_signal_handlers()
        # the data comes back (AOF, else RDB) before the shard reports READY
        self.persistence.load_at_startup()
        if self.config["replicaof"]:
            host, _, port = self.config["replicaof"].rpartition(" ")
            try:
                self.repl.set_master(host.strip(), int(port))
            except ValueError:
                raise SystemExit(f"shardkv: replicaof wants <host> <port>, not {self.config['replicaof']!r}") from None
        self._serving = True
        self.cron_handle = self.loop.call_later(1, self.cron)
        log.info("shardkv %s ready to accept connections on port %s", __version__, self.port)
        notify_systemd("READY=1\nSTATUS=Ready to accept connections")
        try:
            self.run_loop()
        finally:
            self.persistence.on_exit()
            for s in self.listen_sockets:
                s.close()
            for path in getattr(self, "unix_paths", ()):
                try:
                    os.unlink(path)
                except OSError:
                    pass
        log.info("shardkv is now ready to exit, bye bye...")

    def install_signal_handlers(self):
        def on_signal(signum, frame):
            name = signal.Signals(signum).name
            log.warning("Received %s scheduling shutdown...", name)
            self.request_shutdown()
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    def request_shutdown(self):
        notify_systemd("STOPPING=1")
        self.stop_loop()

    # ------------------------------------------------------------ INFO
    def used_memory(self):
        return self.used_memory_estimate()

    def info_sections(self):
        from shardkv.info import build_info
        return build_info(self)


TOPOLOGY_CHECK_MS = 100


def _file_stamp(path):
    st = os.stat(path)
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _retitle(me):
    """Under `shardkv start` a worker's process title names its role
    (`shardkv shard 1/4 primary 127.0.0.1:7001 slots ...`): after a failover
    it names the new one."""
    try:
        import setproctitle
    except ImportError:
        return
    words = setproctitle.getproctitle().split()
    if len(words) < 5 or words[:2] != ["shardkv", "shard"]:
        return
    title = " ".join(words[:3] + ["primary" if me.is_primary else "replica", words[4]])
    if me.is_primary and me.slots:
        title += " slots " + ",".join(f"{a}-{b}" for a, b in me.slots)
    setproctitle.setproctitle(title)


def _format_addr(a):
    if isinstance(a, tuple) and len(a) >= 2:
        host = a[0]
        return f"{host}:{a[1]}"
    return str(a)


def notify_systemd(message: str):
    """sd_notify over $NOTIFY_SOCKET (Type=notify services); a no-op elsewhere."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    if path.startswith("@"):
        path = "\0" + path[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.connect(path)
            # never block the server on a slow or full notify socket
            s.send(message.encode(), socket.MSG_DONTWAIT)
    except OSError as e:
        print(f"shardkv: sd_notify failed: {e}", file=sys.stderr)


__all__ = ["Server", "REDIS_VERSION"]
