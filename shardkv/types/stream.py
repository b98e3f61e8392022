"""The stream value: what XADD creates and the commands of
shardkv/commands/streams.py work on, with its consumer groups.

Entry IDs are (ms, seq) pairs packed into one int, ms << 64 | seq, so that
comparing, incrementing and bisecting IDs is plain integer work.

Entries live in nodes laid out as Valkey lays out its radix-tree nodes: a
node is opened by an entry whose fields become the node's "master fields",
and takes further entries until it holds stream-node-max-entries entries
(live or deleted) or its listpack would reach stream-node-max-bytes. The
listpack size is computed with Valkey's encoding rules (see lp_* below)
but never built. The node boundaries are visible: approximate trimming
(MAXLEN ~ / MINID ~) only removes whole nodes, and XINFO STREAM reports
the number of nodes and of radix tree nodes. Within a node the IDs are an
append-only pair of arrays (ms, seq: 16 bytes an entry) and the payloads
a parallel list of packed blobs (None once an entry is deleted, as Valkey
only flags it); an entry with the node's master fields stores only its
values. XADD is O(1) amortized and a range read costs one bisect over the
node keys, one inside a node, then the entries returned (plus the
tombstones crossed, which Valkey crosses too).

Consumer groups keep Valkey's state: last delivered ID, entries-read
counter (-1 when unknown), the group's pending entries list and each
consumer's, sharing one Nack per pending entry. PELs are SortedDicts
keyed by ID, for the ordered walks XPENDING and XAUTOCLAIM make."""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right

from sortedcontainers import SortedDict

from shardkv.native import _native

parse_int = _native.parse_int

U64 = (1 << 64) - 1
MAX_ID = (1 << 128) - 1
# listpack limits: Valkey's STREAM_LISTPACK_MAX_SIZE
LISTPACK_MAX_SIZE = 1 << 30
INVALID_ENTRIES_READ = -1

FLAG_DELETED = 1
FLAG_SAMEFIELDS = 2


def pack(ms, seq):
    return (ms << 64) | seq


def id_bytes(i):
    return b"%d-%d" % (i >> 64, i & U64)


# ---------------------------------------------------------------- listpack sizes

def _backlen(n):
    if n <= 127:
        return 1
    if n < 16383:
        return 2
    if n < 2097151:
        return 3
    if n < 268435455:
        return 4
    return 5


def lp_int_size(v):
    """Bytes a listpack spends on the integer v (encoding + back length)."""
    if 0 <= v <= 127:
        n = 1
    elif -4096 <= v <= 4095:
        n = 2
    elif -32768 <= v <= 32767:
        n = 3
    elif -8388608 <= v <= 8388607:
        n = 4
    elif -2147483648 <= v <= 2147483647:
        n = 5
    else:
        n = 9
    return n + 1


def lp_str_size(s):
    """Bytes a listpack spends on the element s: as an integer when it reads
    as a canonical 64-bit integer (lpStringToInt64), else as a string."""
    n = len(s)
    if 0 < n <= 20:
        v = parse_int(s)
        if v is not None:
            return lp_int_size(v)
    if n <= 63:
        e = 1 + n
    elif n <= 4095:
        e = 2 + n
    else:
        e = 5 + n
    return e + _backlen(e)


def _signed64(v):
    v &= U64
    return v - (1 << 64) if v >> 63 else v


# one-byte length prefixes of the payload blobs
_LEN1 = [bytes((n,)) for n in range(128)]


def _encode(values, same):
    """A payload blob: a flag byte (0: values only, the fields are the
    node's master fields; 1: fields and values), then each element with a
    varint length prefix."""
    parts = [b"\x00" if same else b"\x01"]
    for x in values:
        n = len(x)
        if n < 128:
            parts.append(_LEN1[n])
        else:
            pre = bytearray()
            while n >= 128:
                pre.append((n & 127) | 128)
                n >>= 7
            pre.append(n)
            parts.append(bytes(pre))
        parts.append(x)
    return b"".join(parts)


def _decode(blob, fields):
    """The flat (f1, v1, f2, v2...) list of a payload blob."""
    out = []
    pos, end = 1, len(blob)
    while pos < end:
        n = blob[pos]
        pos += 1
        if n & 128:
            n &= 127
            shift = 7
            while True:
                b = blob[pos]
                pos += 1
                n |= (b & 127) << shift
                if not b & 128:
                    break
                shift += 7
        out.append(blob[pos:pos + n])
        pos += n
    if blob[0] == 0:
        flat = [None] * (2 * len(out))
        flat[0::2] = fields
        flat[1::2] = out
        return flat
    return out


class Node:
    """One radix-tree node: a listpack of entries sharing a master entry."""

    __slots__ = ("key", "fields", "ms", "seq", "vals", "live", "deleted", "rest")

    def __init__(self, key, fields):
        self.key = key              # the master ID (first entry's ID)
        self.fields = fields        # master fields
        self.ms = array("Q")        # entry IDs, live or deleted
        self.seq = array("Q")
        self.vals = []              # payload blobs, None when deleted
        self.live = 0
        self.deleted = 0
        # listpack bytes apart from the live/deleted counters: header and
        # end byte, master entry fields and terminator, every entry
        self.rest = 7 + lp_int_size(len(fields)) + sum(lp_str_size(f) for f in fields) + 2

    def lp_bytes(self):
        return self.rest + lp_int_size(self.live) + lp_int_size(self.deleted)

    def id_at(self, j):
        return (self.ms[j] << 64) | self.seq[j]

    def first_id(self):
        return self.id_at(0)

    def last_id(self):
        return self.id_at(len(self.ms) - 1)

    def left(self, i):
        """Index of the first ID >= i."""
        ms, seq = self.ms, self.seq
        m = i >> 64
        lo = bisect_left(ms, m)
        hi = bisect_right(ms, m, lo)
        return bisect_left(seq, i & U64, lo, hi)

    def right(self, i):
        """Index of the first ID > i."""
        ms, seq = self.ms, self.seq
        m = i >> 64
        lo = bisect_left(ms, m)
        hi = bisect_right(ms, m, lo)
        return bisect_right(seq, i & U64, lo, hi)

    def find(self, i):
        """Index of ID i (live or deleted), or -1."""
        j = self.left(i)
        if j < len(self.ms) and self.ms[j] == i >> 64 and self.seq[j] == i & U64:
            return j
        return -1

    def copy(self):
        n = Node.__new__(Node)
        n.key, n.fields, n.vals = self.key, self.fields, list(self.vals)
        n.ms, n.seq = array("Q", self.ms), array("Q", self.seq)
        n.live, n.deleted, n.rest = self.live, self.deleted, self.rest
        return n


class Nack:
    """A pending entry: who has it, when it was last delivered, how often."""

    __slots__ = ("consumer", "delivery_time", "delivery_count")

    def __init__(self, consumer, now):
        self.consumer = consumer
        self.delivery_time = now
        self.delivery_count = 1


class Consumer:
    __slots__ = ("name", "pel", "seen_time", "active_time")

    def __init__(self, name, now):
        self.name = name
        self.pel = SortedDict()
        self.seen_time = now
        self.active_time = -1


class Group:
    __slots__ = ("last_id", "entries_read", "pel", "consumers")

    def __init__(self, last_id, entries_read):
        self.last_id = last_id
        self.entries_read = entries_read
        self.pel = SortedDict()         # id -> Nack
        self.consumers = {}             # name -> Consumer

    def sorted_consumers(self):
        return [self.consumers[k] for k in sorted(self.consumers)]

    def create_consumer(self, name, now):
        if name in self.consumers:
            return None
        cons = self.consumers[name] = Consumer(name, now)
        return cons

    def delete_consumer(self, cons):
        for i in cons.pel:
            del self.pel[i]
        del self.consumers[cons.name]

    def ack(self, i):
        nack = self.pel.pop(i, None)
        if nack is None:
            return False
        del nack.consumer.pel[i]
        return True


class StreamValue:
    TYPE_NAME = "stream"
    __slots__ = ("nodes", "keys", "length", "last_id", "first_id", "max_deleted", "entries_added",
                 "groups", "_rtn")

    def __init__(self):
        self.nodes = []         # Node, in ID order
        self.keys = []          # their master IDs, for bisect
        self.length = 0
        self.last_id = 0
        self.first_id = 0       # recorded-first-entry-id
        self.max_deleted = 0    # max-deleted-entry-id
        self.entries_added = 0
        self.groups = None      # name -> Group, once a group was created
        self._rtn = None        # radix_tree_nodes(), until the nodes change

    # ------------------------------------------------------------ protocol
    def encoding(self):
        return "stream"

    def copy(self):
        new = StreamValue()
        new.nodes = [n.copy() for n in self.nodes]
        new.keys = list(self.keys)
        new.length, new.last_id, new.first_id = self.length, self.last_id, self.first_id
        new.max_deleted, new.entries_added = self.max_deleted, self.entries_added
        if self.groups is not None:
            new.groups = {}
            for name, g in self.groups.items():
                ng = Group(g.last_id, g.entries_read)
                for cname, cons in g.consumers.items():
                    nc = ng.consumers[cname] = Consumer(cname, cons.seen_time)
                    nc.active_time = cons.active_time
                for i, nack in g.pel.items():
                    nn = Nack(ng.consumers[nack.consumer.name], nack.delivery_time)
                    nn.delivery_count = nack.delivery_count
                    ng.pel[i] = nn
                    nn.consumer.pel[i] = nn
                new.groups[name] = ng
        return new

    def digest_parts(self):
        for i, flat in self.range(0, MAX_ID):
            yield i.to_bytes(16, "big")
            for x in flat:
                yield len(x).to_bytes(4, "little") + x
        for name in sorted(self.groups or ()):
            g = self.groups[name]
            yield b"group" + name + g.last_id.to_bytes(16, "big")
            for i, nack in g.pel.items():
                yield i.to_bytes(16, "big") + nack.consumer.name

    def memory_usage(self):
        """An estimate in the spirit of Valkey's MEMORY USAGE: object and
        stream headers, radix tree nodes, listpacks, PEL entries."""
        size = 16 + 88 + self.radix_tree_nodes() * 16
        size += sum(n.lp_bytes() for n in self.nodes)
        for name, g in (self.groups or {}).items():
            size += 64 + len(name) + len(g.pel) * (16 + 40)
            for cname, cons in g.consumers.items():
                size += 56 + len(cname) + len(cons.pel) * 16
        return size

    # ------------------------------------------------------------ reading
    def __len__(self):
        return self.length

    def _node_index(self, i):
        """Index of the node that would hold ID i (the last with key <= i)."""
        return bisect_right(self.keys, i) - 1

    def range(self, start, end, count=0):
        """Live entries with start <= ID <= end, in order, at most count (0:
        all): a list of (id, flat field/value tuple)."""
        out = []
        if start > end:
            return out
        nodes = self.nodes
        ni = max(self._node_index(start), 0)
        while ni < len(nodes):
            node = nodes[ni]
            if node.key > end:
                break
            ms, seq, vals, fields = node.ms, node.seq, node.vals, node.fields
            j = node.left(start) if node.key < start else 0
            n = len(ms)
            while j < n:
                i = (ms[j] << 64) | seq[j]
                if i > end:
                    return out
                v = vals[j]
                if v is not None:
                    out.append((i, _decode(v, fields)))
                    if len(out) == count:
                        return out
                j += 1
            ni += 1
        return out

    def rev_range(self, start, end, count=0):
        """As range(), from end down to start."""
        out = []
        if start > end:
            return out
        nodes = self.nodes
        ni = self._node_index(end)
        while ni >= 0:
            node = nodes[ni]
            ms, seq, vals, fields = node.ms, node.seq, node.vals, node.fields
            j = node.right(end) - 1
            while j >= 0:
                i = (ms[j] << 64) | seq[j]
                if i < start:
                    return out
                v = vals[j]
                if v is not None:
                    out.append((i, _decode(v, fields)))
                    if len(out) == count:
                        return out
                j -= 1
            ni -= 1
        return out

    def get(self, i):
        """The fields of the live entry i, or None."""
        ni = self._node_index(i)
        if ni < 0:
            return None
        node = self.nodes[ni]
        j = node.find(i)
        if j < 0 or node.vals[j] is None:
            return None
        return _decode(node.vals[j], node.fields)

    def first_live_id(self):
        r = self.range(0, MAX_ID, 1)
        return r[0][0] if r else None

    def last_live_id(self):
        """streamLastValidID: the last live entry's ID (0 when empty)."""
        r = self.rev_range(0, MAX_ID, 1)
        return r[0][0] if r else 0

    def first_id_with_tombstones(self):
        """streamGetEdgeID(first, with tombstones): the first ID any node
        holds, or the maximal ID when there is no node."""
        return self.nodes[0].first_id() if self.nodes else MAX_ID

    def radix_tree_keys(self):
        return len(self.nodes)

    def radix_tree_nodes(self):
        """How many nodes Valkey's radix tree has for these node keys (16
        bytes each, big endian): the root, one node per key, per branching
        prefix and per child of a branching prefix."""
        if self._rtn is not None:
            return self._rtn
        keys = [k.to_bytes(16, "big") for k in self.keys]
        prefixes = {b""}
        prefixes.update(keys)
        for a, b in zip(keys, keys[1:], strict=False):
            n = 0
            while a[n] == b[n]:
                n += 1
            prefixes.add(a[:n])
            prefixes.add(a[:n + 1])
            prefixes.add(b[:n + 1])
        self._rtn = len(prefixes)
        return self._rtn

    # ------------------------------------------------------------ writing
    def append(self, i, flat, max_entries, max_bytes):
        """Adds entry i (greater than last_id) with flat = (f1, v1, f2, v2...),
        opening a new node when Valkey would."""
        node = self.nodes[-1] if self.nodes else None
        if node is not None:
            if max_bytes <= 0 or max_bytes > LISTPACK_MAX_SIZE:
                max_bytes = LISTPACK_MAX_SIZE
            total = 0
            for x in flat:
                total += len(x)
            if node.lp_bytes() + total >= max_bytes:
                node = None
            elif max_entries and node.live + node.deleted >= max_entries:
                node = None
        fields = flat[0::2]
        if node is None:
            node = Node(i, fields)
            self.nodes.append(node)
            self.keys.append(i)
            self._rtn = None
            same = True
        else:
            same = fields == node.fields
        rest = 2 + lp_int_size(_signed64((i >> 64) - (node.key >> 64)))
        rest += lp_int_size(_signed64((i & U64) - (node.key & U64)))
        nf = len(fields)
        if same:
            for v in flat[1::2]:
                rest += lp_str_size(v)
            rest += lp_int_size(nf + 3)
        else:
            rest += lp_int_size(nf)
            for x in flat:
                rest += lp_str_size(x)
            rest += lp_int_size(nf * 2 + 4)
        node.rest += rest
        node.ms.append(i >> 64)
        node.seq.append(i & U64)
        node.vals.append(_encode(flat[1::2] if same else flat, same))
        node.live += 1
        self.length += 1
        self.entries_added += 1
        self.last_id = i
        if self.length == 1:
            self.first_id = i

    def _remove_node(self, ni):
        del self.nodes[ni]
        del self.keys[ni]
        self._rtn = None

    def delete(self, i):
        """Deletes live entry i (XDEL); False if there is none."""
        ni = self._node_index(i)
        if ni < 0:
            return False
        node = self.nodes[ni]
        j = node.find(i)
        if j < 0 or node.vals[j] is None:
            return False
        if node.live == 1:
            self._remove_node(ni)
        else:
            node.vals[j] = None
            node.live -= 1
            node.deleted += 1
        self.length -= 1
        return True

    def after_deletes(self, deleted_first):
        """Updates the recorded first ID after XDEL."""
        if self.length == 0:
            self.first_id = 0
        elif deleted_first:
            self.first_id = self.first_live_id()

    def trim(self, maxlen, minid, approx, limit):
        """streamTrim: removes entries from the head until at most maxlen
        remain (maxlen not None) or none is below minid; with approx only
        whole nodes go; limit (0: none) caps the entries removed by whole
        nodes. Returns how many entries were removed."""
        deleted = 0
        nodes = self.nodes
        drop = 0        # whole nodes removed from the head
        while drop < len(nodes):
            if maxlen is not None and self.length <= maxlen:
                break
            node = nodes[drop]
            entries = node.live
            if limit and deleted + entries > limit:
                break
            if maxlen is not None:
                remove = self.length - entries >= maxlen
            else:
                remove = node.last_id() < minid
            if remove:
                drop += 1
                self.length -= entries
                deleted += entries
                continue
            if approx:
                break
            vals = node.vals
            from_node = 0
            for j in range(len(vals)):
                if maxlen is not None:
                    if self.length <= maxlen:
                        break
                elif node.id_at(j) >= minid:
                    break
                if vals[j] is not None:
                    vals[j] = None
                    from_node += 1
                    self.length -= 1
            node.live -= from_node
            node.deleted += from_node
            deleted += from_node
            break
        if drop:
            del nodes[:drop]
            del self.keys[:drop]
            self._rtn = None
        if self.length == 0:
            self.first_id = 0
        elif deleted:
            self.first_id = self.first_live_id()
        return deleted

    # ------------------------------------------------------------ groups
    def group(self, name):
        return self.groups.get(name) if self.groups else None

    def create_group(self, name, last_id, entries_read):
        if self.groups is None:
            self.groups = {}
        if name in self.groups:
            return None
        g = self.groups[name] = Group(last_id, entries_read)
        return g

    def sorted_groups(self):
        g = self.groups or {}
        return [(k, g[k]) for k in sorted(g)]

    def range_has_tombstones(self, start, end=MAX_ID):
        if not self.length or not self.max_deleted:
            return False
        return start <= self.max_deleted <= end

    def estimate_distance(self, i):
        """streamEstimateDistanceFromFirstEverEntry: the entries-read counter
        that ID i stands for, or -1 when it cannot be known."""
        if not self.entries_added:
            return 0
        if not self.length and i <= self.last_id:
            return self.entries_added
        if i and i < self.max_deleted:
            return INVALID_ENTRIES_READ
        if i == self.last_id:
            return self.entries_added
        if i > self.last_id:
            return INVALID_ENTRIES_READ
        if not self.max_deleted or self.max_deleted < self.first_id:
            if i < self.first_id:
                return self.entries_added - self.length
            if i == self.first_id:
                return self.entries_added - self.length + 1
        return INVALID_ENTRIES_READ

    def group_lag(self, g):
        """The group's lag, or None when it cannot be known."""
        if not self.entries_added:
            return 0
        if g.entries_read != INVALID_ENTRIES_READ and not self.range_has_tombstones(g.last_id):
            return self.entries_added - g.entries_read
        er = self.estimate_distance(g.last_id)
        if er != INVALID_ENTRIES_READ:
            return self.entries_added - er
        return None

    def __repr__(self):
        return f"StreamValue(length={self.length}, nodes={len(self.nodes)})"
