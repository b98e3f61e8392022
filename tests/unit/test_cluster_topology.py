"""The cluster topology with replicas (shardkv/cluster.py): nodes.conf as the
supervisor writes it and a worker reads it, what each worker serves, and the
CLUSTER commands that show it, on a socketless server."""

import os

from shardkv.cluster import Node, Topology, parse_nodes_conf, write_nodes_conf
from shardkv.config import Config
from shardkv.native import _native
from shardkv.server import Server


def deployment():
    """Two shards, one replica each, as the supervisor lays them out."""
    p0 = Node(id="a" * 40, host="127.0.0.1", port=7000, bus_port=17000, flags=["master"], epoch=1,
              slots=[(0, 8191)], shard_id="s" * 40)
    p1 = Node(id="b" * 40, host="127.0.0.1", port=7001, bus_port=17001, flags=["master"], epoch=2,
              slots=[(8192, 16383)], shard_id="t" * 40)
    r0 = Node(id="c" * 40, host="127.0.0.1", port=7002, bus_port=17002, flags=["slave"], epoch=1,
              primary_id=p0.id, shard_id=p0.shard_id)
    r1 = Node(id="d" * 40, host="127.0.0.1", port=7003, bus_port=17003, flags=["slave"], epoch=2,
              primary_id=p1.id, shard_id=p1.shard_id)
    return [p0, p1, r0, r1]


def load_as(tmp_path, nodes, me):
    path = tmp_path / "nodes.conf"
    write_nodes_conf(str(path), nodes, me)
    return Topology.load(str(path))


def test_replica_lines_round_trip(tmp_path):
    nodes = deployment()
    t = load_as(tmp_path, nodes, nodes[2])
    text = (tmp_path / "nodes.conf").read_text()
    assert f"{'c' * 40} 127.0.0.1:7002@17002 myself,slave {'a' * 40} 0 0 1 connected\n" in text
    assert text.endswith("vars currentEpoch 2 lastVoteEpoch 0\n")
    assert t.myself.id == "c" * 40 and t.myself.is_replica and not t.myself.is_primary
    assert [n.port for n in t.primaries()] == [7000, 7001]
    assert [n.port for n in t.replicas_of(t.primaries()[0])] == [7002]
    assert [(n.id, n.flags, n.primary_id, n.slots) for n in parse_nodes_conf(text)] == \
        [(n.id, (["myself"] if n is nodes[2] else []) + n.flags, n.primary_id, n.slots) for n in nodes]


def test_a_replica_redirects_every_slot_to_the_primaries_and_reads_its_own(tmp_path):
    nodes = deployment()
    t = load_as(tmp_path, nodes, nodes[2])
    targets = t.slot_targets()
    assert targets[0] == targets[8191] == "127.0.0.1:7000"
    assert targets[8192] == targets[16383] == "127.0.0.1:7001"
    reads = t.replica_read_slots()
    assert len(reads) == 16384 and reads[:8192] == b"\x01" * 8192 and reads[8192:] == bytes(8192)


def test_a_primary_serves_its_slots_and_reads_nothing_as_a_replica(tmp_path):
    nodes = deployment()
    t = load_as(tmp_path, nodes, nodes[1])
    targets = t.slot_targets()
    assert targets[0] == "127.0.0.1:7000" and targets[8192] is None and targets[16383] is None
    assert t.replica_read_slots() == bytes(16384)


def test_a_failed_replica_serves_no_reads(tmp_path):
    nodes = deployment()
    nodes[2].flags.append("fail")
    t = load_as(tmp_path, nodes, nodes[2])
    assert t.myself.failed and t.replica_read_slots() == bytes(16384)
    assert [n.port for n in t.replicas_of(t.primaries()[0], include_failed=False)] == []


def server_for(tmp_path, nodes, me):
    write_nodes_conf(str(tmp_path / "nodes.conf"), nodes, me)
    cfg = Config()
    cfg.set("dir", str(tmp_path), startup=True)
    cfg.set("cluster-enabled", "yes", startup=True)
    return Server(cfg)


def run(server, *args):
    c = server.attach_client(_native.Client())
    server.now_ms = _native.now_ms()
    return server.run_argv(c, [a if isinstance(a, bytes) else str(a).encode() for a in args])


def test_cluster_slots_lists_the_replicas_after_their_primary(tmp_path):
    nodes = deployment()
    s = server_for(tmp_path, nodes, nodes[0])
    reply = run(s, "CLUSTER", "SLOTS")
    assert reply.startswith(b"*2\r\n*4\r\n:0\r\n:8191\r\n*4\r\n$9\r\n127.0.0.1\r\n:7000\r\n")
    assert reply.count(b":7002\r\n") == 1 and reply.count(b":7003\r\n") == 1
    # a replica known to be down is left out, as Redis leaves it out
    nodes[3].flags.append("fail")
    s = server_for(tmp_path, nodes, nodes[0])
    assert b":7003\r\n" not in run(s, "CLUSTER", "SLOTS")


def test_cluster_shards_names_replicas_and_their_health(tmp_path):
    nodes = deployment()
    nodes[3].flags.append("fail")
    s = server_for(tmp_path, nodes, nodes[2])
    reply = run(s, "CLUSTER", "SHARDS")
    assert reply.count(b"$4\r\nrole\r\n$7\r\nreplica\r\n") == 2
    assert reply.count(b"$4\r\nrole\r\n$6\r\nmaster\r\n") == 2
    assert reply.count(b"$6\r\nhealth\r\n$6\r\nonline\r\n") == 3
    assert reply.count(b"$6\r\nhealth\r\n$4\r\nfail\r\n") == 1


def test_cluster_nodes_and_replicas(tmp_path):
    nodes = deployment()
    s = server_for(tmp_path, nodes, nodes[2])
    text = run(s, "CLUSTER", "NODES")
    assert b"myself,slave " + b"a" * 40 in text
    assert run(s, "CLUSTER", "REPLICAS", "a" * 40) == \
        b"*1\r\n$%d\r\n%s\r\n" % (len(nodes[2].line(nodes[2])), nodes[2].line(nodes[2]).encode())
    assert run(s, "CLUSTER", "REPLICAS", "c" * 40) == b"-ERR The specified node is not a master\r\n"
    assert run(s, "CLUSTER", "SLAVES", "e" * 40) == b"-ERR Unknown node " + b"e" * 40 + b"\r\n"
    assert b"cluster_known_nodes:4" in run(s, "CLUSTER", "INFO")
    assert b"cluster_size:2" in run(s, "CLUSTER", "INFO")


def test_a_worker_picks_up_a_rewritten_nodes_conf(tmp_path):
    nodes = deployment()
    s = server_for(tmp_path, nodes, nodes[2])
    assert s.slot_targets[0] == "127.0.0.1:7000" and s.replica_read_slots[0] == 1
    # the failover: the replica serves shard 0 under a new epoch, the old primary follows it
    nodes[2].flags, nodes[2].primary_id, nodes[2].slots, nodes[2].epoch = ["master"], "-", [(0, 8191)], 3
    nodes[0].flags, nodes[0].primary_id, nodes[0].slots = ["slave", "fail"], nodes[2].id, []
    write_nodes_conf(str(tmp_path / "nodes.conf"), nodes, nodes[2])
    os.utime(tmp_path / "nodes.conf", ns=(1, 1))   # another stamp even within one clock tick
    s.reload_topology()
    assert s.topology.myself.is_primary and s.slot_targets[0] is None and s.slot_targets[8192] == "127.0.0.1:7001"
    assert s.replica_read_slots == bytes(16384)
    assert b"cluster_current_epoch:3" in run(s, "CLUSTER", "INFO")
    # an unreadable file keeps what is served
    (tmp_path / "nodes.conf").write_text("garbage\n")
    s.reload_topology()
    assert s.topology.myself.is_primary
