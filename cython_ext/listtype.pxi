# The list value: what LPUSH creates and the commands of
# shardkv/commands/lists.py work on. It is compiled because pushes and pops
# are hot commands (hot.pxi runs LPUSH/RPUSH/LPOP/RPOP on it in C); the
# rest of the list commands call it from Python. shardkv/types/list.py
# re-exports it.
#
# A ListValue is a sequence of nodes, each a Python list of bytes elements,
# laid out exactly as Valkey 9.1 lays out the same list, because the layout
# decides what OBJECT ENCODING answers:
#
# * listpack: one node holding every element. It becomes a quicklist when an
#   addition would take it past one node's limit (list-max-listpack-size:
#   negative = bytes per node, 8 KB for the default -2; positive = elements
#   per node, with an 8 KB safety limit).
# * quicklist: a chain of nodes filled and split by quicklist.c's rules
#   (pushes start a new node when the end node is full, LINSERT/LSET split
#   full nodes and merge neighbours, elements above the node limit live alone
#   in "plain" nodes). It goes back to listpack when a removal leaves a single
#   packed node at no more than half the limit.
#
# Every node tracks the byte size its listpack would have (`sz`), computed
# from the listpack entry encoding of each element, since those sizes decide
# when nodes fill up. The node structure is also what keeps the operations
# cheap: a push or pop touches one end node, LINDEX/LSET walk whole nodes from
# the nearer end and then index one node, and nothing copies the list.
#
# Where Valkey consults the list-max-listpack-size directive the caller passes
# it (`fill`); a quicklist keeps the value it was created with, as Valkey's
# does.

import sys as _sys

DEF LP_EMPTY = 7                  # listpack header (6 bytes) and end marker (1)
LP_EMPTY_BYTES = LP_EMPTY
DEF SIZE_SAFETY = 8192            # bytes; also the limit of a count-limited node
SIZE_SAFETY_LIMIT = SIZE_SAFETY
DEF SIZE_ESTIMATE_OVERHEAD = 8    # quicklist's allowance for an entry's header
FILL_MAX = 32767                  # quicklist stores fill in 16 signed bits
cdef Py_ssize_t OPTIMIZATION_LEVEL[5]
OPTIMIZATION_LEVEL[:] = [4096, 8192, 16384, 32768, 65536]   # bytes per node for fill -1..-5


cdef inline Py_ssize_t _encoded_entry_size(Py_ssize_t n):
    """Listpack entry bytes of an n-byte string: encoding, data, back length
    (which takes 7 bits of the length per byte)."""
    cdef Py_ssize_t enc
    if n < 64:
        return n + 2
    enc = n + 2 if n < 4096 else n + 5
    if enc < 128:
        return enc + 1
    if enc < 16384:
        return enc + 2
    if enc < 2097152:
        return enc + 3
    if enc < 268435456:
        return enc + 4
    return enc + 5


cdef inline int _int_entry_size(long long i):
    if 0 <= i <= 127:
        return 2
    if -4096 <= i <= 4095:
        return 3
    if -32768 <= i <= 32767:
        return 4
    if -8388608 <= i <= 8388607:
        return 5
    if -2147483648 <= i <= 2147483647:
        return 6
    return 10


cpdef Py_ssize_t entry_size(object v) except -1:
    """Bytes an element takes in a listpack. Canonical 64-bit integers are
    stored as integers."""
    cdef long long i
    cdef const char *p
    cdef Py_ssize_t n
    if type(v) is not bytes:
        v = bytes(v)
    n = PyBytes_GET_SIZE(v)
    p = PyBytes_AS_STRING(v)
    if 0 < n <= 20 and (p[0] == c'-' or c'0' <= p[0] <= c'9') and parse_ll(p, n, &i):
        return _int_entry_size(i)
    return _encoded_entry_size(n)


def is_int_entry(object v):
    """True if the listpack stores v as an integer (and a pop from a
    quicklist gives it back as an integer object)."""
    cdef long long i
    if type(v) is not bytes:
        v = bytes(v)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(v)
    cdef const char *p = PyBytes_AS_STRING(v)
    return 0 < n <= 20 and (p[0] == c'-' or c'0' <= p[0] <= c'9') and parse_ll(p, n, &i)


cdef inline Py_ssize_t _neg_fill_limit(int fill):
    cdef int level = -fill - 1
    return OPTIMIZATION_LEVEL[level if level < 4 else 4]


cpdef bint exceeds_limit(int fill, Py_ssize_t new_sz, Py_ssize_t new_count):
    """quicklistNodeExceedsLimit: would a node of new_sz bytes and new_count
    elements be over the limit `fill` sets?"""
    if fill < 0:
        return new_sz > _neg_fill_limit(fill)
    if new_sz > SIZE_SAFETY:
        return True
    return new_count > (fill or 1)


cpdef bint is_large(Py_ssize_t sz, int fill):
    """An element this long gets a plain node of its own."""
    if fill >= 0:
        return sz > SIZE_SAFETY
    return sz > _neg_fill_limit(fill)


def neg_fill_limit(int fill):
    return _neg_fill_limit(fill)


cdef class Node(list):
    """One quicklist node: a list of its elements, with the byte size of
    their listpack (or of the element, for a plain node) and whether it is
    plain. Being the list itself saves an object per node."""
    cdef public Py_ssize_t sz
    cdef public bint plain

    def __init__(self, items=(), Py_ssize_t sz=LP_EMPTY, bint plain=False):
        list.__init__(self, items)
        self.sz = sz
        self.plain = plain

    @classmethod
    def packed(cls, items):
        cdef Py_ssize_t total = LP_EMPTY
        for v in items:
            total += entry_size(v)
        return cls(items, total)

    @staticmethod
    def plain_node(v):
        return Node((v,), len(v), True)

    def copy(self):
        return Node(self, self.sz, self.plain)

    def __reduce__(self):
        return (Node, (list(self), self.sz, self.plain))


cdef class ListValue:
    """A list of bytes elements (see the comment at the top)."""

    TYPE_NAME = "list"
    cdef public list nodes
    cdef public Py_ssize_t count
    cdef public bint quick
    cdef public int fill

    def __init__(self):
        self.nodes = [Node()]
        self.count = 0
        self.quick = False
        self.fill = -2

    # ------------------------------------------------------------ protocol
    def encoding(self):
        return "quicklist" if self.quick else "listpack"

    def copy(self):
        cdef ListValue other = ListValue.__new__(ListValue)
        other.nodes = [(<Node>n).copy() for n in self.nodes]
        other.count = self.count
        other.quick = self.quick
        other.fill = self.fill
        return other

    def digest_parts(self):
        for node in self.nodes:
            for v in node:
                yield b"%d:" % len(v)
                yield v

    def memory_usage(self):
        """Bytes of Python objects: exact for the containers, elements
        measured on up to 5 nodes and scaled to all (as Redis samples)."""
        total = _sys.getsizeof(self) + _sys.getsizeof(self.nodes)
        sampled = elements = 0
        for i, node in enumerate(self.nodes):
            total += _sys.getsizeof(node)
            if i < 5:
                sampled += len(node)
                elements += sum(map(_sys.getsizeof, node))
        if sampled:
            total += elements * self.count // sampled
        return total

    def __len__(self):
        return self.count

    def __iter__(self):
        for node in self.nodes:
            yield from node

    def debug_layout(self):
        """(node count, total listpack bytes) as DEBUG OBJECT's ql_nodes
        and ql_uncompressed_size report them for a quicklist."""
        return len(self.nodes), sum(n.sz for n in self.nodes)

    # ------------------------------------------------------------ encoding
    cpdef grow_check(self, int fill, Py_ssize_t add_bytes, Py_ssize_t add_count):
        """Before adding add_count elements of add_bytes raw bytes (Valkey's
        listTypeTryConversionAppend): a listpack that would pass the limit
        becomes a quicklist whose first node is the listpack."""
        cdef Node node
        if self.quick:
            return
        node = <Node>self.nodes[0]
        if exceeds_limit(fill, node.sz + add_bytes, self.count + add_count):
            self.quick = True
            self.fill = max(min(fill, FILL_MAX), -5)
            if not self.count:
                self.nodes = []

    cpdef shrink_check(self, int fill):
        """After a removal (listTypeTryConversion SHRINKING): a quicklist
        left with one packed node at no more than half the limit becomes a
        listpack again."""
        cdef Node node
        if not self.quick or len(self.nodes) != 1:
            return
        node = <Node>self.nodes[0]
        if node.plain:
            return
        if fill < 0:
            if node.sz > _neg_fill_limit(fill) // 2:
                return
        elif self.count > (fill or 1) // 2:
            return
        self.quick = False

    # ------------------------------------------------------------ reading
    def locate(self, i):
        """(node index, offset in node) of element i, 0 <= i < count,
        walking from the nearer end."""
        nodes = self.nodes
        if len(nodes) == 1:
            return 0, i
        if i <= (self.count - 1) // 2:
            acc = 0
            for ni, node in enumerate(nodes):
                n = len(node)
                if acc + n > i:
                    return ni, i - acc
                acc += n
        else:
            acc = self.count
            for ni in range(len(nodes) - 1, -1, -1):
                acc -= len(nodes[ni])
                if acc <= i:
                    return ni, i - acc
        raise IndexError(i)

    def index(self, i):
        """Element i (negative counts from the tail), or None."""
        if i < 0:
            i += self.count
        if i < 0 or i >= self.count:
            return None
        ni, off = self.locate(i)
        return self.nodes[ni][off]

    def range(self, start, stop):
        """Elements start..stop inclusive, 0 <= start <= stop < count."""
        if len(self.nodes) == 1:
            return self.nodes[0][start:stop + 1]
        ni, off = self.locate(start)
        need = stop - start + 1
        out = []
        nodes = self.nodes
        while need > 0:
            node = nodes[ni]
            if off == 0 and len(node) <= need:
                out += node
                need -= len(node)
            else:
                chunk = node[off:off + need]
                out += chunk
                need -= len(chunk)
            ni += 1
            off = 0
        return out

    def matches(self, value, reverse=False):
        """Positions of the elements equal to value, from the head (ascending)
        or from the tail (descending), lazily."""
        if not reverse:
            base = 0
            for node in self.nodes:
                j = -1
                while True:
                    try:
                        j = node.index(value, j + 1)
                    except ValueError:
                        break
                    yield base + j
                base += len(node)
        else:
            base = self.count
            for node in reversed(self.nodes):
                n = len(node)
                base -= n
                if value not in node:
                    continue
                rev = node[::-1]
                j = -1
                while True:
                    try:
                        j = rev.index(value, j + 1)
                    except ValueError:
                        break
                    yield base + n - 1 - j

    # ------------------------------------------------------------ pushing
    cdef bint _allow_insert(self, object node, Py_ssize_t sz):
        """_quicklistNodeAllowInsert: may an element of sz raw bytes join node?"""
        cdef Node n
        if node is None:
            return False
        n = <Node>node
        if n.plain or is_large(sz, self.fill):
            return False
        return not exceeds_limit(self.fill, n.sz + sz + SIZE_ESTIMATE_OVERHEAD, len(n) + 1)

    cpdef push_head(self, object v):
        cdef Node node
        cdef list nodes = self.nodes
        self.count += 1
        if not self.quick:
            node = <Node>nodes[0]
            node.insert(0, v)
            node.sz += entry_size(v)
            return
        if is_large(len(v), self.fill):
            nodes.insert(0, Node.plain_node(v))
        elif nodes and self._allow_insert(nodes[0], len(v)):
            node = <Node>nodes[0]
            node.insert(0, v)
            node.sz += entry_size(v)
        else:
            nodes.insert(0, Node((v,), LP_EMPTY_BYTES + entry_size(v)))

    cpdef push_tail(self, object v):
        cdef Node node
        cdef list nodes = self.nodes
        self.count += 1
        if not self.quick:
            node = <Node>nodes[0]
            node.append(v)
            node.sz += entry_size(v)
            return
        if is_large(len(v), self.fill):
            nodes.append(Node.plain_node(v))
        elif nodes and self._allow_insert(nodes[len(nodes) - 1], len(v)):
            node = <Node>nodes[len(nodes) - 1]
            node.append(v)
            node.sz += entry_size(v)
        else:
            nodes.append(Node((v,), LP_EMPTY_BYTES + entry_size(v)))

    def push(self, v, head):
        if head:
            self.push_head(v)
        else:
            self.push_tail(v)

    # ------------------------------------------------------------ removing
    cdef object _drop_from(self, Py_ssize_t ni, Py_ssize_t off):
        """Removes one element of node ni (off -1: its last); a node left
        empty goes (in a quicklist)."""
        cdef Node node = <Node>self.nodes[ni]
        v = node.pop(off)
        self.count -= 1
        if len(node):
            node.sz -= entry_size(v)
        elif self.quick:
            del self.nodes[ni]
        else:
            node.sz = LP_EMPTY_BYTES
        return v

    cpdef list pop_range(self, bint head, Py_ssize_t count):
        """Pops up to count elements from one end; the tail's come last first."""
        cdef Py_ssize_t n = count if count < self.count else self.count
        cdef list out
        if head:
            out = self.range(0, n - 1)
            self.delete_range(0, n)
        else:
            out = self.range(self.count - n, self.count - 1)
            out.reverse()
            self.delete_range(self.count - n, self.count)
        return out

    cpdef object pop_head(self):
        return self._drop_from(0, 0)

    cpdef object pop_tail(self):
        return self._drop_from(len(self.nodes) - 1, -1)

    def pop(self, head):
        return self.pop_head() if head else self.pop_tail()

    def delete_range(self, start, stop):
        """Removes the elements at positions start <= i < stop; nodes left
        empty go, nothing is merged (quicklistDelRange)."""
        if start >= stop:
            return
        if len(self.nodes) == 1:
            self.count -= stop - start
            node = self.nodes[0]
            gone = node[start:stop]
            del node[start:stop]
            if node:
                node.sz -= sum(map(entry_size, gone))
            elif self.quick:
                self.nodes = []
            else:
                node.sz = LP_EMPTY_BYTES
            return
        nodes = self.nodes
        ni, off = self.locate(start)
        self.count -= stop - start
        first_whole = ni
        remaining = stop - start
        if off:
            node = nodes[ni]
            take = min(len(node) - off, remaining)
            gone = node[off:off + take]
            del node[off:off + take]
            node.sz -= sum(map(entry_size, gone))
            remaining -= take
            first_whole = ni + 1
        last = first_whole
        while remaining and remaining >= len(nodes[last]):
            remaining -= len(nodes[last])
            last += 1
        if remaining:
            node = nodes[last]
            gone = node[:remaining]
            del node[:remaining]
            node.sz -= sum(map(entry_size, gone))
        del nodes[first_whole:last]

    def remove(self, value, limit, from_tail):
        """LREM: removes up to `limit` elements equal to value (all if 0),
        scanning from the head or the tail. Returns how many went."""
        removed = 0
        esz = entry_size(value)
        nodes = self.nodes
        order = range(len(nodes) - 1, -1, -1) if from_tail else range(len(nodes))
        emptied = []
        for ni in order:
            node = nodes[ni]
            n = node.count(value)
            if not n:
                continue
            if limit:
                n = min(n, limit - removed)
            if n == len(node):
                node.clear()
            elif from_tail:
                keep = []
                left = n
                for v in reversed(node):
                    if left and v == value:
                        left -= 1
                    else:
                        keep.append(v)
                keep.reverse()
                node[:] = keep
            else:
                keep = []
                left = n
                for v in node:
                    if left and v == value:
                        left -= 1
                    else:
                        keep.append(v)
                node[:] = keep
            removed += n
            if node:
                node.sz -= esz * n
            elif self.quick:
                emptied.append(ni)
            else:
                node.sz = LP_EMPTY_BYTES
            if limit and removed >= limit:
                break
        for ni in sorted(emptied, reverse=True):
            del nodes[ni]
        self.count -= removed
        return removed

    # ------------------------------------------------------------ LSET, LINSERT
    def replace(self, i, v):
        """LSET: element i (0 <= i < count) becomes v."""
        nodes = self.nodes
        ni, off = self.locate(i)
        node = nodes[ni]
        if not self.quick:
            node.sz += entry_size(v) - entry_size(node[off])
            node[off] = v
            return
        fill = self.fill
        large = is_large(len(v), fill)
        if not node.plain and not large:
            node.sz += entry_size(v) - entry_size(node[off])
            node[off] = v
        elif node.plain:
            if large:
                node[0] = v
                node.sz = len(v)
            else:
                self._insert_at(ni, 0, v, True)
                self.count -= 1
                del nodes[self._pos(node)]
        else:
            # a packed node gets a large element: split it after the entry,
            # put the element in a plain node between the halves, drop the
            # old entry and merge what allows it
            split = None
            if off != len(node) - 1:
                split = self._split(node, off, True)
            new = Node.plain_node(v)
            at = self._pos(node)
            nodes.insert(at + 1, new)
            if split is not None:
                nodes.insert(at + 2, split)
            if len(node) == 1:
                del nodes[at]
            else:
                old = node.pop()
                node.sz -= entry_size(old)
                self._merge_around(new)

    def insert(self, pos, v, after):
        """LINSERT: v goes before or after the element at pos."""
        if not self.quick:
            node = self.nodes[0]
            node.insert(pos + 1 if after else pos, v)
            node.sz += entry_size(v)
            self.count += 1
            return
        ni, off = self.locate(pos)
        self._insert_at(ni, off, v, after)

    def _insert_at(self, ni, off, v, after):
        """_quicklistInsert, for the element at offset off of node ni."""
        nodes = self.nodes
        node = nodes[ni]
        fill = self.fill
        sz = len(v)
        self.count += 1
        full = not self._allow_insert(node, sz)
        at_tail = at_head = avail_next = avail_prev = False
        if after and off == len(node) - 1:
            at_tail = True
            avail_next = ni + 1 < len(nodes) and self._allow_insert(nodes[ni + 1], sz)
        if not after and off == 0:
            at_head = True
            avail_prev = ni > 0 and self._allow_insert(nodes[ni - 1], sz)
        if is_large(sz, fill):
            if node.plain or (at_tail and after) or (at_head and not after):
                nodes.insert(ni + 1 if after else ni, Node.plain_node(v))
            else:
                new = self._split(node, off, after)
                entry = Node.plain_node(v)
                if after:
                    nodes[ni + 1:ni + 1] = [entry, new]
                else:
                    nodes[ni:ni] = [new, entry]
            return
        esz = entry_size(v)
        if not full:
            node.insert(off + 1 if after else off, v)
            node.sz += esz
        elif at_tail and avail_next and after:
            nxt = nodes[ni + 1]
            nxt.insert(0, v)
            nxt.sz += esz
        elif at_head and avail_prev and not after:
            prv = nodes[ni - 1]
            prv.append(v)
            prv.sz += esz
        elif (at_tail and after) or (at_head and not after):
            nodes.insert(ni + 1 if after else ni, Node((v,), LP_EMPTY_BYTES + esz))
        else:
            new = self._split(node, off, after)
            if after:
                new.insert(0, v)
                nodes.insert(ni + 1, new)
            else:
                new.append(v)
                nodes.insert(ni, new)
            new.sz += esz
            self._merge_around(node)

    @staticmethod
    def _split(node, off, after):
        """_quicklistSplitNode: after=True moves the elements past off to a
        new node; after=False moves those before off. Returns the new node."""
        if after:
            moved = node[off + 1:]
            del node[off + 1:]
        else:
            moved = node[:off]
            del node[:off]
        new = Node.packed(moved)
        node.sz -= new.sz - LP_EMPTY_BYTES
        return new

    def _allow_merge(self, a, b):  # noqa
        if a is None or b is None or a.plain or b.plain:
            return False
        return not exceeds_limit(self.fill, a.sz + b.sz - LP_EMPTY_BYTES, len(a) + len(b))

    def _merge(self, a, b):
        """Joins b (right of a) into a; returns a."""
        a.extend(b)
        a.sz += b.sz - LP_EMPTY_BYTES
        del self.nodes[self._pos(b)]
        return a

    def _pos(self, node):
        """Index of node in self.nodes, by identity (nodes are lists: equal
        contents are not the same node)."""
        for i, n in enumerate(self.nodes):
            if n is node:
                return i
        raise ValueError("node not in list")

    def _neighbour(self, node, step):
        i = self._pos(node) + step
        return self.nodes[i] if 0 <= i < len(self.nodes) else None

    def _merge_around(self, center):
        """_quicklistMergeNodes: tries (prev_prev, prev), (next, next_next),
        (prev, center), then (center, next)."""
        prev = self._neighbour(center, -1)
        prev_prev = self._neighbour(prev, -1) if prev is not None else None
        nxt = self._neighbour(center, 1)
        next_next = self._neighbour(nxt, 1) if nxt is not None else None
        if self._allow_merge(prev, prev_prev):
            self._merge(prev_prev, prev)
        if self._allow_merge(nxt, next_next):
            self._merge(nxt, next_next)
        prev = self._neighbour(center, -1)
        if self._allow_merge(center, prev):
            target = self._merge(prev, center)
        else:
            target = center
        nxt = self._neighbour(target, 1)
        if self._allow_merge(target, nxt):
            target = self._merge(target, nxt)
        return target
