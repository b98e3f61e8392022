"""The cluster topology as a worker sees it: which worker serves which slots,
and which workers replicate which, read from (and written as) a Redis-format
nodes.conf. The supervisor writes one file per worker, with the `myself` flag
on that worker's line; a worker started with `cluster-enabled yes` and
`cluster-config-file` loads it, and loads it again when the supervisor
rewrites it (after a failover: a new primary with a higher epoch, replicas
following it). A primary's line carries the flag `master` and its slots; a
replica's carries `slave` and its primary's id; a node the supervisor knows
to be down also carries `fail`."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


@dataclass
class Node:
    id: str
    host: str
    port: int
    bus_port: int
    flags: list[str]
    primary_id: str = "-"
    epoch: int = 0
    slots: list[tuple[int, int]] = field(default_factory=list)
    shard_id: str = ""

    @property
    def myself(self):
        return "myself" in self.flags

    @property
    def is_primary(self):
        return "master" in self.flags

    @property
    def is_replica(self):
        return "slave" in self.flags

    @property
    def failed(self):
        return "fail" in self.flags

    def line(self, for_node=None):
        flags = [f for f in self.flags if f != "myself"]
        if for_node is self or (for_node is None and self.myself):
            flags = ["myself"] + flags
        slots = " ".join(f"{a}-{b}" if a != b else str(a) for a, b in self.slots)
        text = (f"{self.id} {self.host}:{self.port}@{self.bus_port} {','.join(flags)} "
                f"{self.primary_id} 0 0 {self.epoch} connected")
        return text + (" " + slots if slots else "")


def parse_nodes_conf(text: str) -> list[Node]:
    nodes = []
    for line in text.splitlines():
        words = line.split()
        if not words or words[0] == "vars":
            continue
        try:
            nodes.append(_parse_line(words))
        except (IndexError, ValueError):
            raise ValueError(f"bad nodes.conf line: {line[:100]!r}") from None
    return nodes


def _parse_line(words):
    addr, _, bus = words[1].partition("@")
    host, _, port = addr.rpartition(":")
    node = Node(id=words[0], host=host, port=int(port), bus_port=int(bus.split(",")[0] or 0),
                flags=words[2].split(","), primary_id=words[3], epoch=int(words[6]))
    for s in words[8:]:
        if s.startswith("["):
            continue   # slots being migrated: not used by shardkv
        a, _, b = s.partition("-")
        node.slots.append((int(a), int(b or a)))
    return node


def write_nodes_conf(path: str, nodes: list[Node], myself: Node):
    text = "".join(n.line(for_node=myself) + "\n" for n in nodes)
    text += "vars currentEpoch %d lastVoteEpoch 0\n" % max((n.epoch for n in nodes), default=0)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


class Topology:
    """The nodes of the deployment and this worker's place in it."""

    def __init__(self, nodes: list[Node]):
        self.nodes = nodes
        self.myself = next((n for n in nodes if n.myself), None)
        if self.myself is None:
            raise ValueError("nodes.conf has no line flagged myself")

    @classmethod
    def load(cls, path):
        with open(path) as f:
            return cls(parse_nodes_conf(f.read()))

    def slot_targets(self):
        """Per slot: None if served by this worker, else "host:port" of its
        worker, "" if no worker serves it."""
        targets = [""] * 16384
        for n in self.nodes:
            if not n.is_primary:
                continue
            value = None if n is self.myself else f"{n.host}:{n.port}"
            for a, b in n.slots:
                for s in range(a, b + 1):
                    targets[s] = value
        return targets

    def replica_read_slots(self):
        """Per slot, 1 where this worker is a replica of the slot's primary
        (it serves the slot's reads to clients that sent READONLY), else 0."""
        out = bytearray(16384)
        me = self.myself
        if not me.is_replica or me.failed:
            return out
        primary = self.node(me.primary_id)
        if primary is not None:
            for a, b in primary.slots:
                out[a:b + 1] = b"\x01" * (b - a + 1)
        return out

    def node(self, node_id):
        return next((n for n in self.nodes if n.id == node_id), None)

    def primaries(self):
        return [n for n in self.nodes if n.is_primary]

    def replicas_of(self, node, include_failed=True):
        return [n for n in self.nodes if n.primary_id == node.id and (include_failed or not n.failed)]

    def slots_assigned(self):
        return sum(b - a + 1 for n in self.primaries() for a, b in n.slots)
