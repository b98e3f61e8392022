"""The front router process: routes each command to the worker that owns its
keys' slot (the forwarding itself is Cython: cython_ext/router.pxi). This
module decides, from the command table, how each command is routed, and
re-targets shards after a failover: the supervisor rewrites the routes file
(the `--shards` list of the current primaries) and sends SIGHUP."""

from __future__ import annotations

import logging
import os
import signal
import socket

from shardkv.commands.table import all_commands
from shardkv.native import _native

log = logging.getLogger("shardkv")
K = _native.ROUTE_KINDS

# Commands whose reply the router assembles from several shards, or that
# change connection state on every shard.
SPECIAL = {
    "select": "state", "hello": "state", "auth": "state", "reset": "state",
    "client|setname": "state", "client|setinfo": "state", "client|no-touch": "state",
    "client|no-evict": "state", "readonly": "state", "readwrite": "state",
    "client|tracking": "state", "client|caching": "all_ok",
    "dbsize": "sum", "keys": "keys", "randomkey": "randomkey", "scan": "scan",
    "flushdb": "all_ok", "flushall": "all_ok", "config|set": "all_ok",
    "config|resetstat": "all_ok", "swapdb": "all_ok", "info": "info",
    "save": "all_ok", "bgsave": "all_ok", "bgrewriteaof": "all_ok",
    # every worker delivers to its own subscribers; the counts add up
    "publish": "sum",
    # acknowledged by the replicas of every shard: the smallest count
    "wait": "min",
    "subscribe": "subscribe", "unsubscribe": "subscribe", "psubscribe": "subscribe",
    "punsubscribe": "subscribe", "ssubscribe": "subscribe", "sunsubscribe": "subscribe",
    "del": "split_sum", "unlink": "split_sum", "exists": "split_sum", "touch": "split_sum",
    "mget": "mget", "mset": "mset",
    "multi": "multi", "exec": "exec", "discard": "discard", "watch": "watch",
    "unwatch": "unwatch", "quit": "quit",
    "client|reply": "client_reply",
    "debug": "debug",
    "cluster|countkeysinslot": "slot", "cluster|getkeysinslot": "slot",
    # scripts and libraries must exist on every shard, so that EVALSHA and
    # FCALL work wherever their keys land
    "script|load": "all_ok", "script|flush": "all_ok",
    "function|load": "all_ok", "function|delete": "all_ok", "function|flush": "all_ok",
    "function|restore": "all_ok",
}
# Commands that cannot work through the router yet, with the reason.
REFUSED = {
    "client|kill": "ERR CLIENT KILL is not supported through the shardkv router; connect to a shard",
    "client|pause": "ERR CLIENT PAUSE is not supported through the shardkv router; connect to a shard",
    "shutdown": "ERR SHUTDOWN is not supported through the shardkv router; use shardkv stop",
    "replicaof": "ERR REPLICAOF is not supported through the shardkv router; use shardkv failover",
    "slaveof": "ERR SLAVEOF is not supported through the shardkv router; use shardkv failover",
    "failover": "ERR FAILOVER is not supported through the shardkv router; use shardkv failover",
}


def build_routes():
    """bytes name -> Route, for every command and subcommand container."""
    routes = {}
    for name, decl in all_commands().items():
        route = _route_for(name, decl)
        if decl.subcommands:
            # a container is routed by its subcommand
            route.subroutes = {sub.encode(): _route_for(f"{name}|{sub}", sd)
                               for sub, sd in decl.subcommands.items()}
        for n in (name.encode(), name.upper().encode()):
            routes[n] = route
    return routes


# Route kinds, and commands, that need the client's own worker connections
# (see the top of cython_ext/router.pxi): they change or reveal connection
# state, or may hold the connection.
NEEDS_OWN_CONNECTION_KINDS = {"state", "multi", "watch"}
NEEDS_OWN_CONNECTION = {"client", "monitor", "wait", "waitaof", "sync", "psync", "replconf",
                        "replicaof", "slaveof", "failover", "asking"}


def _shareable(name, decl, kind):
    if kind in NEEDS_OWN_CONNECTION_KINDS or name.split("|")[0] in NEEDS_OWN_CONNECTION:
        return name == "client|reply"     # the router itself answers it
    return "blocking" not in decl.flags and "pubsub" not in decl.flags


def _route_for(name, decl):
    route = _plain_route_for(name, decl)
    route.pubsub_context = "pubsub_context" in decl.internal
    return route


def _plain_route_for(name, decl):
    if name in REFUSED:
        return _native.Route(K["refused"], refusal=f"-{REFUSED[name]}\r\n".encode(), shareable=True)
    if name in SPECIAL:
        kind = SPECIAL[name]
        return _native.Route(K[kind], decl.first_key, decl.last_key, decl.key_step, decl,
                             shareable=_shareable(name, decl, kind))
    if "movablekeys" in decl.flags or decl.getkeys is not None:
        return _native.Route(K["movable"], decl=decl, shareable=_shareable(name, decl, "movable"))
    if decl.first_key > 0:
        return _native.Route(K["keyed"], decl.first_key, decl.last_key, decl.key_step, decl,
                             shareable=_shareable(name, decl, "keyed"))
    return _native.Route(K["any"], decl=decl, shareable=_shareable(name, decl, "any"))


def gate_check(argv):
    """The worker gate's lookup and arity checks, for commands the router
    answers or queues itself; the error reply, or None."""
    from shardkv.commands.table import find_decl
    decl = find_decl(argv[0])
    if decl is None:
        text = _native.unknown_command_text(argv)
    else:
        if decl.subcommands and len(argv) >= 2:
            sub = decl.subcommands.get(argv[1].decode("latin-1").lower())
            if sub is None:
                return _error_reply(_native.unknown_subcommand_text(argv))
            decl = sub
        if (decl.arity > 0 and len(argv) == decl.arity) or (decl.arity < 0 and len(argv) >= -decl.arity):
            return None
        text = f"ERR wrong number of arguments for '{decl.name}' command"
    return _error_reply(text)


def _error_reply(text):
    return ("-" + text.replace("\r", " ").replace("\n", " ") + "\r\n").encode("latin-1")


def even_slot_ranges(n):
    """16384 slots split evenly over n shards: [(first, last)] per shard."""
    return [[(i * 16384 // n, (i + 1) * 16384 // n - 1)] for i in range(n)]


class RouterServer(_native.Router):
    def __init__(self, shard_addrs, bind="127.0.0.1", port=6379, routes_file=None):
        self.routes = build_routes()
        self.queue_check = gate_check
        self.routes_file = routes_file
        shard_addrs = list(shard_addrs)
        if routes_file:
            # newer than --shards when a failover happened before this start
            shard_addrs = read_routes(routes_file, len(shard_addrs)) or shard_addrs
        self.set_topology(shard_addrs, even_slot_ranges(len(shard_addrs)))
        self.bind = bind
        self.port = port
        self.sockets = []

    def reload_routes(self):
        """SIGHUP: the shards' workers as the routes file names them now."""
        if not self.routes_file:
            return
        addrs = read_routes(self.routes_file, self.nshards)
        if addrs is None:
            return
        for i, addr in enumerate(addrs):
            if self.retarget(i, addr):
                log.info("shard %d now served by %s", i, addr if isinstance(addr, str) else "%s:%d" % addr)

    def listen(self):
        for addr in self.bind.split():
            family = socket.AF_INET6 if ":" in addr else socket.AF_INET
            s = socket.socket(family, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            # several routers may share the port (--routers M)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            try:
                s.bind((addr, self.port))
            except OSError as e:
                raise SystemExit(f"shardkv router: could not bind {addr}:{self.port}: {e.strerror}") from None
            s.listen(511)
            s.setblocking(False)
            if self.port == 0:
                self.port = s.getsockname()[1]
            self.sockets.append(s)
            self.listen_fd(s.fileno())
        return self.port

    def serve_forever(self):
        signal.signal(signal.SIGTERM, lambda *_: self.stop())
        signal.signal(signal.SIGINT, lambda *_: self.stop())
        # the handler only schedules the reload: the loop runs it between passes
        signal.signal(signal.SIGHUP, lambda *_: self.loop.call_later(0, self.reload_routes))
        self.loop.call_later(0, self.reload_routes)   # a SIGHUP may have come during start-up
        log.info("router ready on port %s, %d shards", self.port, self.nshards)
        try:
            self.run()
        finally:
            for s in self.sockets:
                s.close()


def read_routes(path, nshards):
    """The routes file: one line, the `--shards` list. None when it is
    missing or does not name nshards workers (that would be resharding)."""
    try:
        with open(path) as f:
            addrs = parse_shards(f.read().strip())
    except (OSError, ValueError) as e:
        log.warning("cannot read the routes file %s: %s", path, e)
        return None
    if len(addrs) != nshards:
        log.warning("routes file %s names %d shards, not %d: ignored", path, len(addrs), nshards)
        return None
    return addrs


def write_routes(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text + "\n")
    os.replace(tmp, path)


def parse_shards(text):
    """`host:port` or `unix:/path` per shard, comma-separated."""
    out = []
    for item in text.split(","):
        item = item.strip()
        if item.startswith("unix:"):
            out.append(item[5:])
            continue
        host, _, port = item.rpartition(":")
        out.append((host or "127.0.0.1", int(port)))
    return out
