"""The set value: what SADD creates and the commands of shardkv/commands/sets.py
work on.

A SetValue keeps the encoding Valkey would have chosen for the same history
of commands, because the encoding decides the order in which members come
out (SMEMBERS, SINTER, SSCAN...) and clients compare those replies byte for
byte:

* intset: only canonical 64-bit integers; iterated in numeric order.
* listpack: iterated in insertion order; a removal closes the gap and keeps
  the order of the others.
* hashtable: no defined order. Members also sit in an array (swap-remove on
  deletion) so that SPOP and SRANDMEMBER pick one in O(1).

Conversions follow Valkey 9.1's setTypeAddAux: intset -> listpack or
hashtable, listpack -> hashtable, never back, except where Valkey rebuilds a
set (SINTERSTORE's final intset, SPOP with a count close to the size).
`limits` is the tuple (set-max-intset-entries, set-max-listpack-entries,
set-max-listpack-value), read from the config by the caller."""

import random
from bisect import bisect_left
from itertools import islice

from shardkv.native import _native

parse_int = _native.parse_int

INTSET, LISTPACK, HASHTABLE = 0, 1, 2
ENCODING_NAMES = ("intset", "listpack", "hashtable")

# An intset never holds more members than this, whatever the config says.
INTSET_HARD_LIMIT = 1 << 30
# SPOP with a count rebuilds the set from the members that stay when fewer
# than count/5 of them stay (Valkey's SPOP_MOVE_STRATEGY_MUL).
SPOP_MOVE_STRATEGY_MUL = 5
SCAN_POSITION_MASK = (1 << 63) - 1


def intset_limit(limits):
    return min(limits[0], INTSET_HARD_LIMIT)



def position_scan(cache, members, cursor, count):
    """One step of a scan by fixed positions (SSCAN, ZSCAN): every member
    gets a position from its hash, and the cursor is the position to resume
    from. cache holds the sorted positions, built on the first step and
    dropped by the caller when members change. Returns (cache, next cursor,
    the batch's members)."""
    if cache is None:
        pairs = sorted(((hash(m) & SCAN_POSITION_MASK) + 1, m) for m in members)
        cache = ([p for p, _ in pairs], [m for _, m in pairs])
    positions, ordered = cache
    n = len(positions)
    i = bisect_left(positions, cursor)
    j = min(i + count, n)
    while 0 < j < n and positions[j] == positions[j - 1]:
        j += 1
    return cache, (positions[j] if j < n else 0), ordered[i:j]

class SetValue:
    """A set of bytes members. `d` maps each member to: its integer value
    (intset), None (listpack, insertion ordered) or its index in `arr`
    (hashtable)."""

    TYPE_NAME = "set"
    __slots__ = ("enc", "d", "arr", "_sorted", "_scan")

    def __init__(self, enc=INTSET):
        self.enc = enc
        self.d = {}
        self.arr = [] if enc == HASHTABLE else None
        self._sorted = None     # intset: members in numeric order, until a change
        self._scan = None       # hashtable: (positions, members) for SSCAN, until a change

    @classmethod
    def create(cls, first, size_hint, limits):
        """The empty set SADD (or SMOVE) starts a new key with, from the first
        member and how many members are about to be added (setTypeCreate)."""
        if size_hint <= limits[0] and parse_int(first) is not None:
            return cls(INTSET)
        if size_hint <= limits[1]:
            return cls(LISTPACK)
        return cls(HASHTABLE)

    # ------------------------------------------------------------ protocol
    def encoding(self):
        return ENCODING_NAMES[self.enc]

    def copy(self):
        new = SetValue.__new__(SetValue)
        new.enc = self.enc
        new.d = dict(self.d)
        new.arr = list(self.arr) if self.arr is not None else None
        new._sorted = None
        new._scan = None
        return new

    def digest_parts(self):
        for m in sorted(self.d):
            yield len(m).to_bytes(4, "little") + m

    def memory_usage(self):
        """An estimate in the spirit of Valkey's MEMORY USAGE (object header,
        the encoding's own layout)."""
        n = len(self.d)
        if self.enc == INTSET:
            lo, hi = (min(self.d.values()), max(self.d.values())) if n else (0, 0)
            if -(1 << 15) <= lo and hi < (1 << 15):
                width = 2
            elif -(1 << 31) <= lo and hi < (1 << 31):
                width = 4
            else:
                width = 8
            return 16 + 8 + n * width
        if self.enc == LISTPACK:
            return 16 + 7 + sum(len(m) + 2 for m in self.d)
        buckets = 4
        while buckets < n:
            buckets *= 2
        return 16 + 48 + buckets * 8 + sum(len(m) + 12 for m in self.d)

    # ------------------------------------------------------------ reading
    def __len__(self):
        return len(self.d)

    def __contains__(self, member):
        return member in self.d

    def members(self):
        """A new list of the members, in the order Valkey iterates them."""
        if self.enc == INTSET:
            return list(self._intset_order())
        if self.enc == LISTPACK:
            return list(self.d)
        return list(self.arr)

    def _intset_order(self):
        if self._sorted is None:
            self._sorted = sorted(self.d, key=self.d.__getitem__)
        return self._sorted

    def random_member(self):
        if self.enc == HASHTABLE:
            return self.arr[random.randrange(len(self.arr))]
        # intsets and listpacks are small: an O(n) walk, as a listpack seek is
        return next(islice(self.d, random.randrange(len(self.d)), None))

    def random_members(self, count):
        """count members drawn independently (repeats allowed)."""
        seq = self.arr if self.enc == HASHTABLE else self.members()
        return random.choices(seq, k=count)

    def random_sample(self, count):
        """count distinct members, 0 < count < len: a listpack gives them in
        its own order (Valkey walks it once), other encodings in random order."""
        if self.enc == LISTPACK:
            seq = list(self.d)
            return [seq[i] for i in sorted(random.sample(range(len(seq)), count))]
        seq = self.arr if self.enc == HASHTABLE else self._intset_order()
        return random.sample(seq, count)

    def scan(self, cursor, count):
        """One SSCAN step over a hashtable-encoded set: (next cursor, members).

        Each member has a fixed position (from its hash) and a scan walks the
        positions upwards, so a member present for the whole scan is returned
        exactly once whatever is added or removed meanwhile. The cursor is
        the position to resume from; 0 starts and ends a scan."""
        self._scan, nxt, batch = position_scan(self._scan, self.arr, cursor, count)
        return nxt, batch

    # ------------------------------------------------------------ writing
    def maybe_convert(self, size_hint, limits):
        """SADD to an existing set: go to a hashtable at once when this many
        new members could not fit the current encoding."""
        if (self.enc == LISTPACK and size_hint > limits[1]) or \
                (self.enc == INTSET and size_hint > limits[0]):
            self._convert(HASHTABLE)

    def add(self, member, limits):
        """Adds member; False if it was there. Converts as Valkey does when
        the member does not fit the current encoding."""
        d = self.d
        if member in d:
            return False
        enc = self.enc
        if enc == HASHTABLE:
            d[member] = len(self.arr)
            self.arr.append(member)
            self._scan = None
        elif enc == LISTPACK:
            if len(d) < limits[1] and len(member) <= limits[2]:
                d[member] = None
            else:
                self._convert(HASHTABLE)
                self.add(member, limits)
        else:
            value = parse_int(member)
            if value is not None:
                d[member] = value
                self._sorted = None
                if len(d) > intset_limit(limits):
                    self._convert(HASHTABLE)
            else:
                # a listpack only if the integers already there are short enough
                order = self._intset_order()
                widest = max(len(order[0]), len(order[-1])) if order else 0
                if len(d) < limits[1] and len(member) <= limits[2] and widest <= limits[2]:
                    self._convert(LISTPACK)
                else:
                    self._convert(HASHTABLE)
                self.add(member, limits)
        return True

    def remove(self, member):
        d = self.d
        if member not in d:
            return False
        if self.enc == HASHTABLE:
            i = d.pop(member)
            arr = self.arr
            last = arr.pop()
            if i < len(arr):
                arr[i] = last
                d[last] = i
            self._scan = None
        else:
            del d[member]
            self._sorted = None
        return True

    def pop_random(self):
        member = self.random_member()
        self.remove(member)
        return member

    def pop_many(self, count, limits):
        """SPOP with 0 < count < len: removes count random members and returns
        them in the order Valkey replies with them. When few members stay, the
        set is rebuilt from those, which can change its encoding (a hashtable
        becomes a listpack holding the survivors in random order)."""
        size = len(self.d)
        remaining = size - count
        if remaining * SPOP_MOVE_STRATEGY_MUL > count:
            if self.enc == LISTPACK:
                popped = self.random_sample(count)
                for m in popped:
                    del self.d[m]
                return popped
            return [self.pop_random() for _ in range(count)]
        if self.enc == LISTPACK:
            seq = list(self.d)
            keep = set(random.sample(range(size), remaining))
            new = SetValue(LISTPACK)
            popped = []
            for i, m in enumerate(seq):
                if i in keep:
                    new.add(m, limits)
                else:
                    popped.append(m)
        else:
            new = SetValue(LISTPACK if self.enc == HASHTABLE else INTSET)
            for m in self.random_sample(remaining):
                new.add(m, limits)
                self.remove(m)
            popped = self.members()
        self._become(new)
        return popped

    def maybe_to_intset(self, limits):
        """SINTERSTORE's last step when every member is an integer."""
        if self.enc != INTSET and len(self.d) <= intset_limit(limits):
            self._convert(INTSET)

    def _become(self, other):
        self.enc, self.d, self.arr = other.enc, other.d, other.arr
        self._sorted = None
        self._scan = None

    def _convert(self, enc):
        members = self.members()
        self.enc = enc
        self._sorted = None
        self._scan = None
        if enc == HASHTABLE:
            self.arr = members
            self.d = {m: i for i, m in enumerate(members)}
        elif enc == LISTPACK:
            self.arr = None
            self.d = dict.fromkeys(members)
        else:
            self.arr = None
            self.d = {m: parse_int(m) for m in members}

    def __repr__(self):
        return f"SetValue({self.encoding()}, {self.members()!r})"
