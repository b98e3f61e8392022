"""CLUSTER, READONLY, READWRITE, ASKING: the cluster protocol of a worker, so
cluster-aware clients (redis-py's RedisCluster, redis-cli -c) can find every
worker and talk to it directly. The topology comes from shardkv/cluster.py;
MOVED and CROSSSLOT are decided in the gate (core.pxi, cluster_redirect)."""

from shardkv import errors
from shardkv.commands.common import OK, Verbatim
from shardkv.commands.keys import help_reply
from shardkv.commands.table import command, container
from shardkv.errors import ReplyError
from shardkv.native import _native

F = _native.CLIENT_FLAGS
DISABLED = "ERR This instance has cluster support disabled"
SUB = dict(flags="loading stale", acl="slow", group="cluster")


def topology(c):
    t = getattr(c.server, "topology", None)
    if t is None:
        raise ReplyError(DISABLED)
    return t


container("cluster", -2, acl="slow", group="cluster", since="3.0.0",
          summary="A container for Redis Cluster commands.")


def _node_entry(n):
    return [n.host.encode(), n.port, n.id.encode(), {}]


@command("cluster|slots", 2, tips="nondeterministic_output", since="3.0.0",
         complexity="O(N) where N is the total number of Cluster nodes",
         summary="Maps slot ranges to the nodes that serve them.", **SUB)
def cluster_slots(c, argv):
    t = topology(c)
    out = []
    for n in t.primaries():
        # as Redis: replicas known to be down are left out
        replicas = [_node_entry(r) for r in t.replicas_of(n, include_failed=False)]
        for a, b in n.slots:
            out.append([a, b, _node_entry(n)] + replicas)
    out.sort(key=lambda e: e[0])
    return out


def _shard_node(c, t, n, role):
    # this worker knows its own offset; the others' as of nodes.conf: 0
    offset = _own_offset(c.server) if n is t.myself else 0
    return {b"id": n.id.encode(), b"port": n.port, b"ip": n.host.encode(), b"endpoint": n.host.encode(),
            b"role": role, b"replication-offset": offset, b"health": b"fail" if n.failed else b"online"}


def _own_offset(server):
    return getattr(server, "master_repl_offset", 0) or 0


@command("cluster|shards", 2, tips="nondeterministic_output", since="7.0.0",
         complexity="O(N) where N is the total number of cluster nodes",
         summary="Describes each shard: its slots and its nodes.", **SUB)
def cluster_shards(c, argv):
    t = topology(c)
    out = []
    for n in t.primaries():
        slots = []
        for a, b in n.slots:
            slots += [a, b]
        nodes = [_shard_node(c, t, n, b"master")] + [_shard_node(c, t, r, b"replica") for r in t.replicas_of(n)]
        out.append({b"slots": slots, b"nodes": nodes, b"id": (n.shard_id or n.id).encode()})
    return out


@command("cluster|nodes", 2, tips="nondeterministic_output", since="3.0.0",
         complexity="O(N) where N is the total number of Cluster nodes",
         summary="Lists the nodes in nodes.conf format.", **SUB)
def cluster_nodes(c, argv):
    t = topology(c)
    return Verbatim("".join(n.line(for_node=t.myself) + "\n" for n in t.nodes).encode())


@command("cluster|replicas", 3, tips="nondeterministic_output", since="5.0.0",
         complexity="O(N) where N is the number of replicas.",
         flags="admin stale", acl="admin slow dangerous", group="cluster",
         summary="Lists the replica nodes of a master node.")
def cluster_replicas(c, argv):
    t = topology(c)
    primary = t.node(argv[2].decode("latin-1"))
    if primary is None:
        raise ReplyError(f"ERR Unknown node {argv[2].decode('latin-1')}")
    if not primary.is_primary:
        raise ReplyError("ERR The specified node is not a master")
    return [r.line(for_node=t.myself).encode() for r in t.replicas_of(primary)]


@command("cluster|slaves", 3, tips="nondeterministic_output", since="3.0.0",
         complexity="O(N) where N is the number of replicas.",
         flags="admin stale", acl="admin slow dangerous", group="cluster",
         summary="Lists the replica nodes of a master node.")
def cluster_slaves(c, argv):
    return cluster_replicas(c, argv)


@command("cluster|info", 2, tips="nondeterministic_output", since="3.0.0",
         summary="Reports the state of the cluster.", **SUB)
def cluster_info(c, argv):
    t = topology(c)
    assigned = t.slots_assigned()
    epoch = max((n.epoch for n in t.nodes), default=0)
    fields = [
        ("cluster_state", "ok" if assigned == 16384 else "fail"),
        ("cluster_slots_assigned", assigned), ("cluster_slots_ok", assigned),
        ("cluster_slots_pfail", 0), ("cluster_slots_fail", 0),
        ("cluster_known_nodes", len(t.nodes)), ("cluster_size", len(t.primaries())),
        ("cluster_current_epoch", epoch), ("cluster_my_epoch", t.myself.epoch),
        ("cluster_stats_messages_sent", 0), ("cluster_stats_messages_received", 0),
        ("total_cluster_links_buffer_limit_exceeded", 0),
    ]
    return Verbatim("".join(f"{k}:{v}\r\n" for k, v in fields).encode())


@command("cluster|myid", 2, since="3.0.0", summary="Returns this node's id.", **SUB)
def cluster_myid(c, argv):
    return topology(c).myself.id.encode()


@command("cluster|myshardid", 2, tips="nondeterministic_output", since="7.2.0",
         summary="Returns the id of this node's shard.", **SUB)
def cluster_myshardid(c, argv):
    me = topology(c).myself
    return (me.shard_id or me.id).encode()


@command("cluster|keyslot", 3, flags="stale", acl="slow", group="cluster", since="3.0.0",
         complexity="O(N) where N is the number of bytes in the key",
         summary="Returns the hash slot of a key.")
def cluster_keyslot(c, argv):
    topology(c)
    return _native.key_slot(argv[2])


def _slot_arg(b, message="ERR Invalid slot"):
    n = _native.parse_int(b)
    if n is None or n < 0 or n > 16383:
        raise ReplyError(message)
    return n


def _keys_in_slot(c, slot):
    db = c.server.dbs[0]
    for key in db.data.keys():
        if _native.key_slot(key) == slot:
            yield key


@command("cluster|countkeysinslot", 3, flags="stale", acl="slow", group="cluster", since="3.0.0",
         summary="Counts the keys of a hash slot on this node.")
def cluster_countkeysinslot(c, argv):
    topology(c)
    slot = _slot_arg(argv[2])
    return sum(1 for _ in _keys_in_slot(c, slot))


@command("cluster|getkeysinslot", 4, flags="stale", acl="slow", group="cluster", since="3.0.0",
         tips="nondeterministic_output",
         complexity="O(N) where N is the number of requested keys",
         summary="Returns up to count keys of a hash slot on this node.")
def cluster_getkeysinslot(c, argv):
    topology(c)
    slot = _native.parse_int(argv[2])
    count = _native.parse_int(argv[3])
    if slot is None or count is None:
        raise ReplyError(errors.NOT_INTEGER)
    if slot < 0 or slot > 16383 or count < 0:
        raise ReplyError("ERR Invalid slot or number of keys")
    out = []
    for key in _keys_in_slot(c, slot):
        if len(out) >= count:
            break
        out.append(key)
    return out


@command("cluster|help", 2, flags="loading stale", acl="slow", group="cluster", since="5.0.0",
         summary="Describes the CLUSTER subcommands.")
def cluster_help(c, argv):
    return help_reply("CLUSTER", [
        "COUNTKEYSINSLOT <slot>", "    Number of keys of <slot> on this node.",
        "GETKEYSINSLOT <slot> <count>", "    Up to <count> keys of <slot> on this node.",
        "INFO", "    State of the cluster.",
        "KEYSLOT <key>", "    Hash slot of <key>.",
        "MYID / MYSHARDID", "    Id of this node / of its shard.",
        "NODES", "    Nodes in nodes.conf format.",
        "REPLICAS <node-id>", "    Replicas of the master <node-id>.",
        "SHARDS", "    Shards with their slots and nodes.",
        "SLOTS", "    Slot ranges and the nodes that serve them.",
    ])


@command("readonly", 1, flags="loading stale fast", acl="fast connection", group="cluster",
         since="3.0.0", summary="Lets this connection read from a replica of the slot's shard.")
def readonly(c, argv):
    topology(c)
    c.flags |= F["READONLY"]
    return OK


@command("readwrite", 1, flags="loading stale fast", acl="fast connection", group="cluster",
         since="3.0.0", summary="Ends READONLY for this connection.")
def readwrite(c, argv):
    topology(c)
    c.flags &= ~F["READONLY"]
    return OK


@command("asking", 1, flags="fast", acl="fast connection", group="cluster", since="3.0.0",
         summary="Lets the next command reach a slot being imported here.")
def asking(c, argv):
    topology(c)
    c.flags |= F["ASKING"]
    return OK
