"""Links from one worker to the other workers of its deployment, for what
Redis Cluster carries on its bus: a message published on one worker
reaches the subscribers of every worker, and PUBLISH answers with the count
of the whole deployment.

A link is an ordinary connection to the peer's router socket (or TCP router
port): there the peer behaves as a standalone server, and a PUBLISH from
such a connection is delivered to that peer's own subscribers only. So a
PUBLISH from a client of this worker is delivered here, sent to every peer,
and answered once every peer has given its count. Keyspace notifications of
this worker are also sent to the worker of slot 0, where the routers keep
their clients' subscriptions, so a subscriber on a router hears the events
of every worker.

Links are made when first needed, read by the worker's event loop (an
add_reader callback) and written with short blocking sends: the messages
are small, and a peer that does not take them within the timeout is
dropped (it counts 0 until it is reached again)."""

from __future__ import annotations

import collections
import logging
import os
import socket

from shardkv.native import _native

log = logging.getLogger("shardkv")
BLOCKED = _native.CLIENT_FLAGS["BLOCKED"]
SEND_TIMEOUT = 1.0


def encode(argv):
    return b"*%d\r\n" % len(argv) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in argv)


class Link:
    """One connection to a peer; `waiting` holds, in order, what each reply
    it owes is for (a PendingPublish, or None for a reply nobody needs)."""

    def __init__(self, peers, address):
        self.peers = peers
        self.address = address
        self.sock = None
        self.buf = bytearray()
        self.waiting = collections.deque()

    def send(self, argv, pending):
        if self.sock is None and not self._connect():
            return False
        try:
            self.sock.settimeout(SEND_TIMEOUT)
            self.sock.sendall(encode(argv))
            self.sock.setblocking(False)
        except OSError as e:
            log.warning("peer link %s dropped: %s", self.address, e)
            self.close()
            return False
        self.waiting.append(pending)
        return True

    def _connect(self):
        try:
            if isinstance(self.address, str):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            else:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(SEND_TIMEOUT)
            s.connect(self.address)
            s.setblocking(False)
        except OSError:
            return False
        self.sock = s
        self.peers.server.loop.add_reader(s.fileno(), self.readable)
        return True

    def readable(self):
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.close()
            return
        self.buf += data
        while self.waiting:
            end = _reply_end(self.buf)
            if end < 0:
                break
            reply = bytes(self.buf[:end])
            del self.buf[:end]
            pending = self.waiting.popleft()
            if pending is not None:
                pending.answer(int(reply[1:-2]) if reply[:1] == b":" else 0)

    def close(self):
        if self.sock is not None:
            try:
                self.peers.server.loop.remove_reader(self.sock.fileno())
            except (OSError, ValueError, KeyError):
                pass
            self.sock.close()
            self.sock = None
        self.buf.clear()
        waiting, self.waiting = self.waiting, collections.deque()
        for pending in waiting:
            if pending is not None:
                pending.answer(0)


def _reply_end(buf):
    """End of the first reply in buf (the peers answer PUBLISH with one
    line: an integer, or an error), -1 if incomplete."""
    i = buf.find(b"\r\n")
    return -1 if i < 0 else i + 2


class PendingPublish:
    """A client's PUBLISH waiting for the counts of the peers."""

    def __init__(self, server, client, count, peers):
        self.server = server
        self.client = client
        self.count = count
        self.remaining = peers

    def answer(self, n):
        self.count += n
        self.remaining -= 1
        if self.remaining:
            return
        c = self.client
        c.flags &= ~BLOCKED
        if c.closed:
            return
        c.out.add(self.count)
        self.server.wake_writer(c)
        self.server.resume_client(c)


class Peers:
    def __init__(self, server):
        self.server = server
        self.links = None          # built from the topology when first needed
        self.events_link = None    # the worker of slot 0, unless it is this one

    def _build(self):
        self.links = []
        topology = getattr(self.server, "topology", None)
        if topology is None:
            return
        from shardkv.supervisor import router_socket_path
        for node in topology.primaries():
            if node is topology.myself or not node.bus_port:
                continue
            path = router_socket_path(self.server.config["dir"], node.port)
            address = path if path is not None and os.path.exists(path) else (node.host, node.bus_port)
            link = Link(self, address)
            self.links.append(link)
            if any(first <= 0 <= last for first, last in node.slots):
                self.events_link = link
        if topology.myself.is_replica:
            self.events_link = None   # its primary already sends the events of these writes

    def reset(self):
        """The topology changed (a failover): links are made again, to the
        primaries of the new one, when next needed."""
        links, self.links, self.events_link = self.links or [], None, None
        for link in links:
            link.close()

    def publish(self, c, channel, message, local_count):
        """Sends a client's PUBLISH to every peer. Returns the count to
        answer now, or None when the reply waits for the peers (the client
        is held meanwhile)."""
        if self.links is None:
            self._build()
        if not self.links:
            return local_count
        argv = [b"PUBLISH", channel, message]
        # inside MULTI/EXEC or a script the reply cannot wait: the peers still
        # deliver, and the count is this worker's
        wait = self.server.call_depth <= 1
        pending = PendingPublish(self.server, c, local_count, len(self.links)) if wait else None
        sent = 0
        for link in self.links:
            if link.send(argv, pending):
                sent += 1
            elif pending is not None:
                pending.remaining -= 1
        if pending is None or not sent:
            return local_count
        c.flags |= BLOCKED
        return None

    def forward_event(self, channel, message):
        """A keyspace notification, for the routers' subscribers on the
        worker of slot 0."""
        if self.links is None:
            self._build()
        if self.events_link is not None:
            self.events_link.send([b"PUBLISH", channel, message], None)
