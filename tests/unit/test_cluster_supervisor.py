"""The supervisor's side of the topology, without processes: the port
layout of primaries and replicas, each worker's command line for its role,
the nodes.conf files and the routes file, and the topology after a
promotion."""

import os

from shardkv.cli import cluster_args
from shardkv.cluster import Topology
from shardkv.router import read_routes
from shardkv.supervisor import Supervisor, control_socket_path


def supervisor(tmp_path, *extra):
    args = cluster_args("shardkv start", ["--shards", "2", "--replicas", "1", "--port", "6400",
                                          "--worker-port", "7400", "--dir", str(tmp_path), *extra],
                        with_start=True)
    return Supervisor(args)


def topology_of(tmp_path, port):
    return Topology.load(os.path.join(tmp_path, f"nodes-{port}.conf"))


def option(argv, name):
    i = len(argv) - 1 - argv[::-1].index(name)     # the last one wins, as in the worker
    return argv[i + 1]


def test_replicas_take_the_ports_after_the_primaries(tmp_path):
    s = supervisor(tmp_path)
    assert [(c.role, c.shard, c.port, c.router_port) for c in s.workers()] == [
        ("primary", 0, 7400, 17400), ("primary", 1, 7401, 17401),
        ("replica", 0, 7402, 17402), ("replica", 1, 7403, 17403)]
    assert [c.role for c in s.routers()] == ["router"]


def test_every_worker_gets_the_whole_topology(tmp_path):
    s = supervisor(tmp_path)
    for c in s.workers():
        t = topology_of(tmp_path, c.port)
        assert t.myself.port == c.port and len(t.nodes) == 4
        assert [n.port for n in t.primaries()] == [7400, 7401]
        assert [n.port for n in t.replicas_of(t.primaries()[1])] == [7403]
    assert topology_of(tmp_path, 7402).myself.is_replica
    # the routers reach the primaries by their unix socket, or TCP router port
    assert read_routes(s.routes_path, 2) == [c.router_socket or ("127.0.0.1", c.router_port)
                                             for c in s.workers()[:2]]


def test_a_replica_follows_its_primary_and_keeps_no_files(tmp_path):
    s = supervisor(tmp_path, "--directive", "appendonly", "yes", "--directive", "save", "60 1")
    replica = s.replicas(1)[0]
    argv = s.worker_argv(replica)
    assert argv[argv.index("--replicaof") + 1:argv.index("--replicaof") + 3] == ["127.0.0.1", "7401"]
    assert option(argv, "--appendonly") == "no" and option(argv, "--save") == ""
    assert option(argv, "--dbfilename") == "replica-7403.rdb"
    assert option(argv, "--repl-diskless-sync-delay") == "0"
    assert option(argv, "--title") == "shardkv shard 1/2 replica 127.0.0.1:7403"
    primary = s.worker_argv(s.primary(1))
    assert "--replicaof" not in primary and option(primary, "--dbfilename") == "dump-shard1.rdb"
    assert option(primary, "--appendonly") == "yes"
    # what a promoted replica takes on: the shard's files, as configured
    assert s.primary_persistence(replica) == [("dbfilename", "dump-shard1.rdb"), ("save", "60 1"),
                                              ("appendonly", "yes")]


def test_no_replicas_no_replication_options(tmp_path):
    args = cluster_args("shardkv start", ["--shards", "1", "--replicas", "0", "--port", "6400",
                                          "--worker-port", "7400", "--dir", str(tmp_path)], with_start=True)
    s = Supervisor(args)
    assert [c.role for c in s.workers()] == ["primary"]
    argv = s.worker_argv(s.workers()[0])
    assert "--replicaof" not in argv and "--repl-diskless-sync-delay" not in argv


def test_a_promotion_rewrites_every_nodes_conf_and_the_routes(tmp_path):
    s = supervisor(tmp_path)
    old, new = s.primary(0), s.replicas(0)[0]
    s.switch(0, old, new, old_failed=True)
    assert s.primary(0) is new and s.replicas(0) == [old]
    for c in s.workers():
        t = topology_of(tmp_path, c.port)
        primary = next(n for n in t.primaries() if n.port == 7402)
        assert primary.slots == [(0, 8191)] and primary.epoch == 3
        dead = next(n for n in t.nodes if n.port == 7400)
        assert dead.is_replica and dead.failed and dead.primary_id == primary.id and not dead.slots
    assert topology_of(tmp_path, 7402).slot_targets()[0] is None
    assert topology_of(tmp_path, 7400).slot_targets()[0] == "127.0.0.1:7402"
    assert s.routes().split(",")[0] == new.route
    # the dead primary comes back as a replica of the new one, with no files
    argv = s.worker_argv(old)
    assert "7402" in argv[argv.index("--replicaof"):] and option(argv, "--dbfilename") == "replica-7400.rdb"


def test_control_socket_path_fits_sun_path(tmp_path):
    assert control_socket_path(str(tmp_path), 6379) == str(tmp_path / "shardkv-6379.control.sock")
    long_dir = "/tmp/" + "d" * 120
    assert control_socket_path(long_dir, 6379).startswith("\0shardkv-6379-")
