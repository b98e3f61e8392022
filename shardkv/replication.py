"""Replication, both ends, speaking Redis's protocol, so a shardkv shard can
replicate from a redis-server and the other way round.

The primary side. Every write leaves the dispatcher through the command
feed (core.pxi, propagate); once a backlog exists the core encodes those
writes into `repl_outbox`, and once per loop pass `deliver` moves the new
bytes to the backlog, a ring of the last `repl-backlog-size` bytes of the
stream, and to the output of each online replica. `master_repl_offset` counts every byte
ever put in the stream (writes, and the PINGs and REPLCONF GETACKs the
primary adds itself). A replica attaches with PSYNC <replid> <offset>: if
the id is ours (or the one we had before a promotion, up to the offset
where it ended) and the backlog still holds the offset, the answer is
+CONTINUE and the missing bytes; otherwise +FULLRESYNC <replid> <offset>
and a snapshot. The snapshot is written by a forked child straight to the
replicas' sockets (disk-less, `$EOF:<mark>` framing when the replica
announced `capa eof`), while the parent keeps the stream bytes that arrive
meanwhile for each replica and sends them once the child is done.

The replica side. `MasterLink` connects to the primary, runs the handshake
(PING, AUTH, REPLCONF listening-port and capa, PSYNC) and receives the
snapshot without blocking the event loop: clients keep reading the old
data. Then the socket becomes the master client (flag MASTER): the gate
obeys it without checks and without replies, and the core copies the raw
bytes of each of its commands to `repl_outbox` and counts them in the
offset: they go on to this node's backlog
and replicas, so a replica's stream is its primary's stream byte for byte
and a promoted replica can continue its peers' streams. The replica
reports its offset with REPLCONF ACK every second and when asked (GETACK).
"""

from __future__ import annotations

import logging
import os
import select
import socket
import time

from shardkv import errors
from shardkv.errors import ReplyError
from shardkv.native import _native
from shardkv.persistence import rdb

log = logging.getLogger("shardkv")
F = _native.CLIENT_FLAGS
MASTER = F["MASTER"]
REPLICA = F["REPLICA"]
REPLY_OFF = F["REPLY_OFF"]
ROUTED = F["ROUTED"]
encode = _native.py_encode_command
PING_COMMAND = encode([b"PING"])
GETACK_COMMAND = encode([b"REPLCONF", b"GETACK", b"*"])
NO_REPLID = "0" * 40
CONNECT_TIMEOUT = 2.0
ACK_PERIOD = 1.0
RECV_SIZE = 1 << 16
EOF_MARK_LEN = 40


def new_replid():
    return os.urandom(20).hex()


class Backlog:
    """The last `size` bytes of the replication stream, in a ring.
    `end` is the offset of the last byte held; the first is end-histlen+1."""

    def __init__(self, size, end):
        self.size = size
        self.buf = bytearray(size)
        self.idx = 0          # where the next byte goes
        self.histlen = 0
        self.end = end

    @property
    def first_offset(self):
        return self.end - self.histlen + 1

    def append(self, data):
        n = len(data)
        size = self.size
        if n >= size:
            self.buf[:] = data[n - size:]
            self.idx = 0
        else:
            first = min(n, size - self.idx)
            self.buf[self.idx:self.idx + first] = data[:first]
            if first < n:
                self.buf[:n - first] = data[first:]
            self.idx = (self.idx + n) % size
        self.histlen = min(self.histlen + n, size)
        self.end += n

    def covers(self, offset):
        """Whether the stream from offset (the first byte a replica lacks) is here."""
        return self.first_offset <= offset <= self.end + 1

    def read_from(self, offset):
        count = self.end - offset + 1
        if count <= 0:
            return b""
        start = (self.idx - count) % self.size
        if start + count <= self.size:
            return bytes(self.buf[start:start + count])
        return bytes(self.buf[start:]) + bytes(self.buf[:count - (self.size - start)])

    def resized(self, size):
        other = Backlog(size, self.end - min(self.histlen, size))
        other.append(self.read_from(self.end - min(self.histlen, size) + 1))
        return other


class ReplicaInfo:
    """A replica attached to this node (its client has the REPLICA flag)."""

    def __init__(self, client, capa, port, ip):
        self.client = client
        self.capa = capa
        self.port = port
        self.ip = ip
        self.state = "wait_bgsave"     # then send_bulk, online
        self.pending = None           # stream bytes held while the snapshot travels
        self.ack_offset = 0
        self.ack_time = time.monotonic()
        self.pre_psync = False        # attached with SYNC: no +FULLRESYNC line, no EOF mark
        self.waiting_since = time.monotonic()


class Replication:
    def __init__(self, server):
        self.s = server
        self.replid = new_replid()
        self.replid2 = NO_REPLID
        self.second_replid_offset = -1
        self.backlog = None
        self.replicas = {}            # client id -> ReplicaInfo
        self.handshakes = {}          # client id -> REPLCONF options before PSYNC
        self.sync_child = []          # ReplicaInfo the running child sends a snapshot to
        self.waiters = []             # (client, offset, numreplicas) blocked in WAIT
        self.getack_requested = False
        self.stat_sync_full = 0
        self.stat_sync_partial_ok = 0
        self.stat_sync_partial_err = 0      # PSYNCs with a history we could not continue
        self.last_ping = time.monotonic()
        # the replica side
        self.master_host = None
        self.master_port = 0
        self.link = None              # MasterLink, until the stream starts
        self.master_client = None
        self.cached = False           # whether replid/offset may continue a stream (PSYNC)
        self.link_down_since = None
        self.last_connect_try = 0.0
        self.last_ack = 0.0

    # ------------------------------------------------------------ offsets
    @property
    def offset(self):
        return self.s.master_repl_offset

    def create_backlog(self):
        """From here on the command feed goes into the stream (the core's
        flush_feed writes a primary's writes to repl_outbox; a replica's
        process_input copies its primary's commands there)."""
        if self.backlog is None:
            self.backlog = Backlog(self.s.config["repl-backlog-size"], self.offset)
            self.s.repl_feed_on = True
            self.s.feed_db = -1

    # ------------------------------------------------------------ the stream
    def append(self, data):
        """Puts data of our own (PING, REPLCONF GETACK) in the stream: it
        counts in the offset at once and reaches the backlog and the
        replicas with the rest (deliver)."""
        self.s.repl_outbox.add_encoded(data)
        self.s.master_repl_offset += len(data)

    def deliver(self):
        """Once per loop pass (and before the backlog is read or a snapshot
        forked): the stream's new bytes to the backlog and the replicas."""
        s = self.s
        if not len(s.repl_outbox):
            return
        data = s.repl_outbox.take()
        if self.backlog is not None:
            self.backlog.append(data)
        for r in self.replicas.values():
            if r.state == "online":
                c = r.client
                c.out.add_encoded(data)
                s.wake_writer(c)
                if self._over_limit(r):
                    self._drop(r, "for overcoming of output buffer limits")
            elif r.pending is not None:
                r.pending += data

    def _over_limit(self, r):
        hard, soft, secs = self.s.config["client-output-buffer-limit"]["slave"]
        used = r.client.output_pending
        if hard and used >= hard:
            return True
        if soft and used >= soft:
            since = getattr(r, "soft_since", None)
            if since is None:
                r.soft_since = time.monotonic()
            elif time.monotonic() - since > secs:
                return True
        else:
            r.soft_since = None
        return False

    def _drop(self, r, why):
        log.warning("Client id=%d (replica %s:%d) closed %s.", r.client.id, r.ip, r.port, why)
        self.s.close_client(r.client)

    # ------------------------------------------------------------ REPLCONF / PSYNC
    def replconf(self, c, options):
        """REPLCONF option value ...; True when a reply is due (+OK)."""
        hs = self.handshakes.setdefault(c.id, {"capa": set(), "port": 0, "ip": None})
        for name, value in options:
            name = name.lower()
            if name == b"listening-port":
                port = _int_or_none(value)
                if port is None:
                    raise ReplyError(errors.NOT_INTEGER)
                hs["port"] = port
                r = self.replicas.get(c.id)
                if r is not None:
                    r.port = port
            elif name == b"ip-address":
                hs["ip"] = value.decode("latin-1")
            elif name == b"capa":
                hs["capa"].add(value.lower())
            elif name == b"ack":
                # a replica's offset: no reply, ever
                r = self.replicas.get(c.id)
                offset = _int_or_none(value)
                if r is not None and offset is not None:
                    if offset > r.ack_offset:
                        r.ack_offset = offset
                    r.ack_time = time.monotonic()
                    if self.waiters:
                        self.serve_waiters()
                return False
            elif name == b"fack":
                return False
            elif name == b"getack":
                if c is self.master_client:
                    self.s.loop.call_later(0, self.send_ack)
                return False
            elif name in (b"rdb-only", b"rdb-filter-only", b"version", b"rdb-channel"):
                pass
            else:
                raise ReplyError(errors.unrecognized_replconf(name))
        return True

    def psync(self, c, replid, offset, pre_psync=False):
        """PSYNC (or SYNC, pre_psync): attaches c as a replica."""
        s = self.s
        if c.id in self.replicas:
            return
        if s.is_replica and self.master_client is None:
            raise ReplyError(errors.NOMASTERLINK)
        if c.output_pending:
            raise ReplyError(errors.SYNC_WITH_PENDING_OUTPUT)
        hs = self.handshakes.pop(c.id, {"capa": set(), "port": 0, "ip": None})
        ip = hs["ip"] or c.addr.rpartition(":")[0]
        r = ReplicaInfo(c, hs["capa"], hs["port"], ip)
        r.pre_psync = pre_psync
        if not pre_psync and self._try_continue(c, r, replid, offset):
            self.stat_sync_partial_ok += 1
            return
        self.stat_sync_full += 1
        if replid != "?":
            self.stat_sync_partial_err += 1
        if self.backlog is None:
            # the first replica: a new history starts here (Redis changes
            # the id with the backlog's creation)
            if not s.is_replica:
                self.replid = new_replid()
                self.replid2 = NO_REPLID
                self.second_replid_offset = -1
            self.create_backlog()
        c.flags |= REPLICA
        self.replicas[c.id] = r
        log.info("Replica %s:%d asks for synchronization; full resync", ip, r.port)
        delay = s.config["repl-diskless-sync-delay"]
        s.loop.call_later(delay * 1000 if delay > 0 else 0, self.start_sync)

    def _try_continue(self, c, r, replid, offset):
        if replid != self.replid and (replid != self.replid2 or offset > self.second_replid_offset):
            return False
        self.deliver()
        if self.backlog is None or not self.backlog.covers(offset):
            return False
        c.flags |= REPLICA
        r.state = "online"
        r.ack_offset = offset - 1
        self.replicas[c.id] = r
        if b"psync2" in r.capa:
            c.out.add_encoded(b"+CONTINUE %s\r\n" % self.replid.encode())
        else:
            c.out.add_encoded(b"+CONTINUE\r\n")
        c.out.add_encoded(self.backlog.read_from(offset))
        self.s.wake_writer(c)
        log.info("Partial resynchronization request from %s:%d accepted: %d bytes of backlog sent",
                 r.ip, r.port, self.offset - offset + 1)
        return True

    # ------------------------------------------------------------ full sync
    def start_sync(self):
        """Forks the child that sends a snapshot to every replica waiting for
        one (those that arrived within repl-diskless-sync-delay share it)."""
        s = self.s
        p = s.persistence
        if self.sync_child:
            return      # the next one starts when this child is reaped
        targets = [r for r in self.replicas.values() if r.state == "wait_bgsave" and r.client.fd >= 0]
        if not targets:
            return
        delay = s.config["repl-diskless-sync-delay"]
        if delay > 0 and time.monotonic() - min(r.waiting_since for r in targets) < delay - 0.05:
            return
        if p.child_pid:
            return      # a BGSAVE or AOF rewrite runs: the cron retries when it ends
        s.flush_propagation()
        self.deliver()
        offset = self.offset
        # the stream after the snapshot starts with a SELECT
        s.feed_db = -1
        ready = []
        for r in targets:
            c = r.client
            head = c.out.take()
            if not r.pre_psync:
                head += b"+FULLRESYNC %s %d\r\n" % (self.replid.encode(), offset)
            try:
                _write_all(c.fd, head, 5.0)
            except OSError:
                s.close_client(c)
                continue
            r.state = "send_bulk"
            r.pending = bytearray()
            ready.append(r)
        if not ready:
            return
        fds = [r.client.fd for r in ready]
        eof = all(b"eof" in r.capa and not r.pre_psync for r in ready)
        timeout = s.config["repl-timeout"]
        aux = {b"repl-stream-db": b"0", b"repl-id": self.replid.encode(), b"repl-offset": b"%d" % offset}
        try:
            pid = p.fork_child("sync", lambda: _send_snapshot(s, fds, eof, timeout, aux))
        except OSError as e:
            log.warning("Can't fork for the replicas' snapshot: %s", e)
            for r in ready:
                s.close_client(r.client)
            return
        self.sync_child = ready
        log.info("Starting BGSAVE for SYNC with target: replicas sockets (pid %d, offset %d)", pid, offset)

    def sync_done(self, ok):
        """The snapshot child ended (called when the persistence cron reaps it)."""
        s = self.s
        done, self.sync_child = self.sync_child, []
        for r in done:
            c = r.client
            if c.fd < 0 or self.replicas.get(c.id) is not r:
                continue
            if not ok:
                self._drop(r, "after a failed snapshot transfer")
                continue
            r.state = "online"
            r.ack_time = time.monotonic()
            if r.pending:
                c.out.add_encoded(bytes(r.pending))
            r.pending = None
            s.wake_writer(c)
            log.info("Synchronization with replica %s:%d succeeded", r.ip, r.port)
        # replicas that came during the transfer get the next snapshot
        self.start_sync()

    def client_closed(self, c):
        self.handshakes.pop(c.id, None)
        r = self.replicas.pop(c.id, None)
        if r is not None:
            log.info("Connection with replica %s:%d lost.", r.ip, r.port)
        if c is self.master_client:
            self.master_client = None
            self.cached = True
            self.link_down_since = time.monotonic()
            log.warning("Connection with master lost.")
            if self.master_host is not None:
                self.s.loop.call_later(0, self.connect)

    # ------------------------------------------------------------ WAIT
    def acked(self, offset):
        return sum(1 for r in self.replicas.values() if r.state == "online" and r.ack_offset >= offset)

    def wait(self, c, numreplicas, timeout_ms, in_transaction):
        # a router's client may have written over the router's shared
        # connections: this connection cannot know its offset, so it waits
        # for everything written so far
        offset = self.offset if c.flags & ROUTED else c.woff
        count = self.acked(offset)
        if count >= numreplicas or in_transaction:
            return count
        self.waiters.append((c, offset, numreplicas))
        self.getack_requested = True

        def on_timeout():
            c.out.add(self.acked(offset))
        return self.s.blocking.block(c, [], timeout_ms, None, on_timeout)

    def serve_waiters(self):
        blocking = self.s.blocking
        still = []
        for c, offset, need in self.waiters:
            w = blocking.by_client.get(c.id)
            if w is None or w.done or c.closed:
                continue
            count = self.acked(offset)
            if count >= need:
                c.out.add(count)
                blocking.release(c)
            else:
                still.append((c, offset, need))
        self.waiters = still

    def before_sleep(self):
        if self.getack_requested:
            self.getack_requested = False
            if self.replicas and not self.s.is_replica:
                self.append(GETACK_COMMAND)
        self.deliver()

    # ------------------------------------------------------------ cron
    def cron(self):
        s = self.s
        now = time.monotonic()
        timeout = s.config["repl-timeout"]
        if self.master_host is not None:
            if self.master_client is None and self.link is None and now - self.last_connect_try >= 1.0:
                self.connect()
            elif self.link is not None and now - self.link.last_io > timeout:
                log.warning("Timeout connecting to the MASTER...")
                self.link.fail("timeout")
            elif self.master_client is not None:
                if s.now_ms - self.master_client.last_interaction_ms > timeout * 1000:
                    log.warning("MASTER timeout: no data nor PING received...")
                    s.close_client(self.master_client)
                elif now - self.last_ack >= ACK_PERIOD:
                    self.send_ack()
        if self.replicas and not s.is_replica:
            if now - self.last_ping >= s.config["repl-ping-replica-period"]:
                self.last_ping = now
                self.append(PING_COMMAND)
            for r in list(self.replicas.values()):
                if r.state == "online" and not r.pre_psync and now - r.ack_time > timeout:
                    self._drop(r, "timed out")
        if any(r.state == "wait_bgsave" for r in self.replicas.values()):
            self.start_sync()

    # ------------------------------------------------------------ the replica side
    def set_master(self, host, port):
        """REPLICAOF host port."""
        s = self.s
        was_primary = not s.is_replica
        self._disconnect_master()
        self.deliver()
        self.master_host, self.master_port = host, port
        s.is_replica = True
        s.replica_read_only = s.config["replica-read-only"]
        if was_primary:
            # our own history may continue on the new primary's (after a
            # failover the new primary knows our id as its secondary id)
            self.cached = self.backlog is not None or s.master_repl_offset > 0
        self._disconnect_replicas()
        self.link_down_since = time.monotonic()
        s.loop.call_later(0, self.connect)

    def unset_master(self):
        """REPLICAOF NO ONE: promotion. The data stays; a new history starts
        that our replicas (and our former peers) can continue with PSYNC."""
        s = self.s
        if not s.is_replica:
            return
        self._disconnect_master()
        self.deliver()
        self.master_host = None
        self.master_port = 0
        self.replid2 = self.replid
        self.second_replid_offset = self.offset + 1
        self.replid = new_replid()
        s.is_replica = False
        s.feed_db = -1
        self.create_backlog()
        self.link_down_since = None
        # they must hear of the new id: they reconnect and continue
        self._disconnect_replicas()
        log.info("MASTER MODE enabled; new replication id %s, secondary id %s up to offset %d",
                 self.replid, self.replid2, self.second_replid_offset)

    def _disconnect_master(self):
        if self.link is not None:
            self.link.close()
            self.link = None
        if self.master_client is not None:
            c = self.master_client
            self.master_client = None
            self.cached = True
            self.s.close_client(c)

    def _disconnect_replicas(self):
        for r in list(self.replicas.values()):
            self.s.close_client(r.client)

    def connect(self):
        if self.master_host is None or self.link is not None or self.master_client is not None:
            return
        self.last_connect_try = time.monotonic()
        link = MasterLink(self, self.master_host, self.master_port)
        self.link = link
        link.start()

    def link_failed(self, link):
        if self.link is link:
            self.link = None

    def full_sync_loaded(self, link, replid, offset, payload):
        """The snapshot arrived: it replaces the dataset, and the stream starts."""
        s = self.s
        p = s.persistence
        snap = rdb.load_snapshot(payload, rdb.Limits(s.config), databases=len(s.dbs),
                                 check_crc=s.config["rdbchecksum"], skip_expired=False, log=log.warning)
        from shardkv.commands.keys import flush_database
        for db in s.dbs:
            flush_database(s, db)
        s.after_flush()
        engine = getattr(s, "_scripting", None)
        if engine is not None:
            engine.flush_functions()
        p.apply_snapshot(snap)
        s.dirty += 1
        self.replid = replid
        self.replid2 = NO_REPLID
        self.second_replid_offset = -1
        s.master_repl_offset = offset
        s.repl_outbox.take()    # the old history's tail: gone with it
        self.backlog = None
        self.create_backlog()
        self._disconnect_replicas()
        log.info("MASTER <-> REPLICA sync: Finished with success (%d keys, offset %d)", snap.keys, offset)
        if p.aof is not None:
            p.aof.start_rewrite()

    def stream_started(self, link, leftover):
        """The handshake is over: the link's socket becomes the master client."""
        s = self.s
        self.link = None
        fd = link.sock.detach()
        c = s.adopt_socket(fd, MASTER | REPLY_OFF | ROUTED)
        self.master_client = c
        self.link_down_since = None
        self.cached = True
        self.send_ack()
        s.inject_input(c, leftover)

    def continued(self, new_replid):
        """+CONTINUE: the primary goes on with the stream; its id may be new."""
        self.deliver()
        if new_replid and new_replid != self.replid:
            self.replid2 = self.replid
            self.second_replid_offset = self.offset + 1
            self.replid = new_replid
            self._disconnect_replicas()
        self.create_backlog()

    def send_ack(self):
        c = self.master_client
        if c is None or c.fd < 0:
            return
        self.last_ack = time.monotonic()
        c.out.add_encoded(encode([b"REPLCONF", b"ACK", b"%d" % self.offset]))
        self.s.wake_writer(c)

    # ------------------------------------------------------------ ROLE / INFO
    def state_name(self):
        """The replica's link state as ROLE names it."""
        if self.master_client is not None:
            return "connected"
        if self.link is None:
            return "connect"
        return {"connecting": "connecting", "transfer": "sync"}.get(self.link.state, "handshake")

    def role(self):
        s = self.s
        if s.is_replica:
            return [b"slave", self.master_host.encode(), self.master_port, self.state_name().encode(),
                    self.offset if self.master_client is not None else -1]
        return [b"master", self.offset,
                [[r.ip.encode(), b"%d" % r.port, b"%d" % r.ack_offset]
                 for r in self.replicas.values()]]

    def info_fields(self):
        s = self.s
        self.deliver()
        now = time.monotonic()
        out = [("role", "slave" if s.is_replica else "master")]
        if s.is_replica:
            up = self.master_client is not None
            link = self.link
            out += [("master_host", self.master_host), ("master_port", str(self.master_port)),
                    ("master_link_status", "up" if up else "down"),
                    ("master_last_io_seconds_ago",
                     str(int((s.now_ms - self.master_client.last_interaction_ms) / 1000)) if up else "-1"),
                    ("master_sync_in_progress", "1" if link is not None and link.state == "transfer" else "0"),
                    ("slave_read_repl_offset", str(self.offset)),
                    ("slave_repl_offset", str(self.offset))]
            if link is not None and link.state == "transfer":
                total = link.transfer_size
                read = link.transfer_read
                out += [("master_sync_total_bytes", str(total)), ("master_sync_read_bytes", str(read)),
                        ("master_sync_left_bytes", str(total - read if total >= 0 else -1)),
                        ("master_sync_perc", "%.2f" % (read * 100 / total if total > 0 else 0)),
                        ("master_sync_last_io_seconds_ago", str(int(now - link.last_io)))]
            out += [("replicas_repl_buffer_size", "0"), ("replicas_repl_buffer_peak", "0")]
            if not up:
                out.append(("master_link_down_since_seconds",
                            str(int(now - self.link_down_since)) if self.link_down_since is not None else "-1"))
            out += [("slave_priority", "100"), ("slave_read_only", "1" if s.config["replica-read-only"] else "0"),
                    ("replica_announced", "1")]
        out.append(("connected_slaves", str(len(self.replicas))))
        for i, r in enumerate(self.replicas.values()):
            lag = int(now - r.ack_time) if r.state == "online" else 0
            out.append((f"slave{i}", f"ip={r.ip},port={r.port},state={r.state},offset={r.ack_offset},"
                                     f"lag={lag},type=replica"))
        b = self.backlog
        out += [("replicas_waiting_psync", "0"), ("master_failover_state", "no-failover"),
                ("master_replid", self.replid), ("master_replid2", self.replid2),
                ("master_repl_offset", str(self.offset)), ("second_repl_offset", str(self.second_replid_offset)),
                ("repl_backlog_active", "1" if b is not None else "0"),
                ("repl_backlog_size", str(s.config["repl-backlog-size"])),
                ("repl_backlog_first_byte_offset", str(b.first_offset if b is not None else 0)),
                ("repl_backlog_histlen", str(b.histlen if b is not None else 0))]
        return out

    def config_changed(self, name, value):
        if name == "repl-backlog-size" and self.backlog is not None and value != self.backlog.size:
            self.backlog = self.backlog.resized(value)
        elif name == "replica-read-only":
            self.s.replica_read_only = value


class MasterLink:
    """A replica's connection to its primary, from connect() until the stream
    starts: the handshake, PSYNC, and the snapshot transfer. Read by the event
    loop (add_reader); the few handshake lines are sent with short blocking
    writes."""

    def __init__(self, repl, host, port):
        self.repl = repl
        self.host = host
        self.port = port
        self.sock = None
        self.buf = bytearray()
        self.state = "connecting"
        self.steps = []               # what each awaited reply line is for
        self.last_io = time.monotonic()
        self.transfer_size = -1
        self.transfer_read = 0
        self.eof_mark = None
        self.payload = None
        self.fullsync = None          # (replid, offset) of +FULLRESYNC

    def start(self):
        s = self.repl.s
        log.info("Connecting to MASTER %s:%d", self.host, self.port)
        try:
            sock = socket.create_connection((self.host, self.port), timeout=CONNECT_TIMEOUT)
        except OSError as e:
            log.warning("Error condition on socket for SYNC: %s", e)
            self.repl.link_failed(self)
            return
        sock.setblocking(False)
        self.sock = sock
        s.loop.add_reader(sock.fileno(), self.readable)
        self.state = "handshake"
        cmds = [[b"PING"]]
        self.steps = ["ping"]
        self.send(cmds)

    def send(self, cmds):
        data = b"".join(encode(c) for c in cmds)
        try:
            self.sock.settimeout(CONNECT_TIMEOUT)
            self.sock.sendall(data)
            self.sock.setblocking(False)
        except OSError as e:
            self.fail(f"write failed: {e}")

    def fail(self, why):
        log.warning("MASTER <-> REPLICA sync failed: %s", why)
        self.close()
        self.repl.link_failed(self)

    def close(self):
        if self.sock is not None:
            try:
                self.repl.s.loop.remove_reader(self.sock.fileno())
            except (OSError, ValueError, KeyError):
                pass
            self.sock.close()
            self.sock = None

    def readable(self):
        if self.sock is None:
            return
        try:
            data = self.sock.recv(RECV_SIZE)
        except BlockingIOError:
            return
        except OSError as e:
            self.fail(str(e))
            return
        if not data:
            self.fail("connection closed by the master")
            return
        self.last_io = time.monotonic()
        self.buf += data
        try:
            self.advance()
        except rdb.RdbError as e:
            self.fail(f"the master's snapshot does not load: {e}")

    def _line(self):
        i = self.buf.find(b"\n")
        if i < 0:
            return None
        line = bytes(self.buf[:i]).rstrip(b"\r")
        del self.buf[:i + 1]
        return line

    def advance(self):
        while self.sock is not None:
            if self.state == "handshake":
                line = self._line()
                if line is None:
                    return
                if not line:
                    continue        # a newline the primary sends to keep the link alive
                if not self.handshake_reply(line):
                    return
            elif self.state == "transfer":
                if not self.transfer():
                    return
            else:
                return

    def handshake_reply(self, line):
        step = self.steps.pop(0) if self.steps else None
        repl = self.repl
        s = repl.s
        if step == "ping":
            if line.startswith(b"-") and not line.startswith((b"-NOAUTH", b"-NOPERM", b"-ERR operation not permitted")):
                self.fail(f"Error reply to PING from master: '{line.decode('latin-1')}'")
                return False
            cmds = []
            if s.config["masterauth"]:
                user = s.config["masteruser"]
                cmds.append([b"AUTH"] + ([user.encode()] if user else []) + [s.config["masterauth"].encode()])
                self.steps.append("auth")
            cmds.append([b"REPLCONF", b"listening-port", b"%d" % s.port])
            cmds.append([b"REPLCONF", b"capa", b"eof", b"capa", b"psync2"])
            self.steps += ["port", "capa"]
            self.send(cmds)
            return True
        if step == "auth":
            if line.startswith(b"-"):
                self.fail(f"Unable to AUTH to MASTER: {line.decode('latin-1')}")
                return False
            return True
        if step == "port":
            if line.startswith(b"-"):
                log.info("(Non critical) Master does not understand REPLCONF listening-port: %s",
                         line.decode("latin-1"))
            return True
        if step == "capa":
            if line.startswith(b"-"):
                log.info("(Non critical) Master does not understand REPLCONF capa: %s", line.decode("latin-1"))
            if repl.cached:
                args = [repl.replid.encode(), b"%d" % (repl.offset + 1)]
            else:
                args = [b"?", b"-1"]
            self.send([[b"PSYNC"] + args])
            self.steps.append("psync")
            return True
        if step == "psync":
            return self.psync_reply(line)
        self.fail(f"unexpected reply from master: {line[:64]!r}")
        return False

    def psync_reply(self, line):
        repl = self.repl
        if line.startswith(b"+FULLRESYNC"):
            words = line.split()
            if len(words) < 3:
                self.fail("master replied with wrong +FULLRESYNC syntax")
                return False
            self.fullsync = (words[1].decode("latin-1"), int(words[2]))
            log.info("Full resync from master: %s:%d", *self.fullsync)
            self.state = "transfer"
            return True
        if line.startswith(b"+CONTINUE"):
            words = line.split()
            new_id = words[1].decode("latin-1") if len(words) > 1 else None
            log.info("Successful partial resynchronization with master%s",
                     f" (new replication id {new_id})" if new_id and new_id != repl.replid else "")
            repl.continued(new_id)
            self.finish(bytes(self.buf))
            return False
        if line.startswith((b"-NOMASTERLINK", b"-LOADING")):
            log.info("Master is currently unable to PSYNC but should be in the future: %s", line.decode("latin-1"))
        else:
            log.warning("Unexpected reply to PSYNC from master: %s", line.decode("latin-1"))
        self.fail("PSYNC refused")
        return False

    def transfer(self):
        """Reads the snapshot: `$<len>` or `$EOF:<mark>` framing."""
        if self.payload is None:
            line = self._line()
            if line is None:
                return False
            if not line:
                return True         # keep-alive newline before the payload
            if not line.startswith(b"$"):
                self.fail(f"bad protocol from MASTER, the first byte is not '$': {line[:64]!r}")
                return False
            if line.startswith(b"$EOF:"):
                self.eof_mark = line[5:5 + EOF_MARK_LEN]
                if len(self.eof_mark) != EOF_MARK_LEN:
                    self.fail("bad EOF mark from master")
                    return False
            else:
                self.transfer_size = int(line[1:])
            self.payload = bytearray()
        if self.eof_mark is not None:
            self.payload += self.buf
            self.buf.clear()
            self.transfer_read = len(self.payload)
            if len(self.payload) < EOF_MARK_LEN or self.payload[-EOF_MARK_LEN:] != self.eof_mark:
                return False
            data = bytes(self.payload[:-EOF_MARK_LEN])
            leftover = b""
        else:
            need = self.transfer_size - len(self.payload)
            take = self.buf[:need]
            self.payload += take
            del self.buf[:len(take)]
            self.transfer_read = len(self.payload)
            if len(self.payload) < self.transfer_size:
                return False
            data = bytes(self.payload)
            leftover = bytes(self.buf)
        replid, offset = self.fullsync
        self.payload = None
        self.repl.full_sync_loaded(self, replid, offset, data)
        self.finish(leftover)
        return False

    def finish(self, leftover):
        self.repl.s.loop.remove_reader(self.sock.fileno())
        self.state = "connected"
        self.repl.stream_started(self, leftover)
        self.sock = None


def _int_or_none(b):
    try:
        return int(b)
    except ValueError:
        return None


def _write_all(fd, data, timeout):
    """Writes data to a non-blocking fd, waiting up to timeout seconds for room."""
    view = memoryview(data)
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    while view:
        try:
            n = os.write(fd, view)
            view = view[n:]
            continue
        except BlockingIOError:
            pass
        if not poller.poll(timeout * 1000):
            raise TimeoutError("replica socket not writable")


class _FanOut:
    """The snapshot child's output: every chunk goes to every replica still
    reading; a replica that fails is dropped, the rest go on."""

    def __init__(self, fds, timeout):
        self.fds = list(fds)
        self.timeout = timeout

    def write(self, data):
        for fd in list(self.fds):
            try:
                _write_all(fd, data, self.timeout)
            except OSError:
                self.fds.remove(fd)
        if not self.fds:
            raise OSError("no replica left to send the snapshot to")


def _send_snapshot(server, fds, eof, timeout, aux):
    """In the forked child: the snapshot, framed, to every replica socket."""
    out = _FanOut(fds, timeout)
    cfg = server.config
    if eof:
        mark = os.urandom(EOF_MARK_LEN // 2).hex().encode()
        out.write(b"$EOF:" + mark + b"\r\n")
        rdb.write_snapshot(server, out, compress=cfg["rdbcompression"], checksum=cfg["rdbchecksum"],
                           used_mem=server.used_memory(), aux=aux)
        out.write(mark)
    else:
        import io
        buf = io.BytesIO()
        rdb.write_snapshot(server, buf, compress=cfg["rdbcompression"], checksum=cfg["rdbchecksum"],
                           used_mem=server.used_memory(), aux=aux)
        data = buf.getvalue()
        out.write(b"$%d\r\n" % len(data))
        out.write(data)
