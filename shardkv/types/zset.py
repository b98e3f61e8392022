"""The sorted set value: what ZADD creates and the commands of
shardkv/commands/zsets.py (and the GEO commands, SORT) work on.

Members are ordered by score, ties by the member's bytes compared as memcmp
does (shorter first on a common prefix), exactly as Valkey's skiplist and
listpack keep them. Two structures hold the same members:

* `sl`, a sortedcontainers.SortedList of (score, member): ranks, rank ranges
  and score ranges in O(log n);
* `d`, a dict member -> score: membership and score lookups in O(1).

The encoding is only a name here (the order is the same in both), but it
follows Valkey 9.1 because OBJECT ENCODING, ZSCAN and ZRANDMEMBER show it:

* listpack while the set is small: at most zset-max-listpack-entries members
  of at most zset-max-listpack-value bytes. A listpack stores scores as text
  and reads "-0" back as 0, so a listpack never holds -0.0.
* skiplist otherwise. A set converts on growth (before the member that would
  not fit is added, or when a ZADD announces more members or a longer one
  than fit), and never back, except for results the *STORE commands build
  (see `for_result`).

`limits` is the pair (zset-max-listpack-entries, zset-max-listpack-value),
read from the config by the caller."""

from __future__ import annotations

import math
import random

from sortedcontainers import SortedList

from shardkv.types.set import position_scan

LISTPACK, SKIPLIST = 0, 1
ENCODING_NAMES = ("listpack", "skiplist")
INF = math.inf
_next_up = math.nextafter


def fits_listpack(count, maxlen, limits):
    """Whether count members, the longest maxlen bytes, stay a listpack."""
    return count <= limits[0] and maxlen <= limits[1]


class ZSetValue:
    TYPE_NAME = "zset"
    __slots__ = ("enc", "d", "sl", "_scan")

    def __init__(self, enc=LISTPACK):
        self.enc = enc
        self.d = {}
        self.sl = SortedList()
        self._scan = None       # skiplist: (positions, members) for ZSCAN, until a change

    @classmethod
    def create(cls, size_hint, maxlen, limits):
        """The empty set a command starts a new key with, from how many
        members are about to be added and the longest of them
        (zsetTypeCreate)."""
        return cls(LISTPACK if fits_listpack(size_hint, maxlen, limits) else SKIPLIST)

    @classmethod
    def for_result(cls, pairs, limits):
        """A new set holding (member, score) pairs (later pairs of a member
        win), encoded as Valkey encodes a computed result it stores: a
        listpack when it fits one (zsetConvertToListpackIfNeeded)."""
        z = cls(SKIPLIST)
        d = z.d
        for member, score in pairs:
            d[bytes(member)] = score
        maxlen = max(map(len, d), default=0)
        if fits_listpack(len(d), maxlen, limits):
            z.enc = LISTPACK
            for m, sc in d.items():
                if sc == 0:
                    d[m] = 0.0
        z.sl = SortedList((sc, m) for m, sc in d.items())
        return z

    # ------------------------------------------------------------ protocol
    def encoding(self):
        return ENCODING_NAMES[self.enc]

    def copy(self):
        new = ZSetValue.__new__(ZSetValue)
        new.enc = self.enc
        new.d = dict(self.d)
        new.sl = SortedList(self.sl)
        new._scan = None
        return new

    def digest_parts(self):
        for score, member in self.sl:
            yield len(member).to_bytes(8, "little") + member
            yield repr(score).encode()

    def memory_usage(self):
        """An estimate in the spirit of Valkey's MEMORY USAGE."""
        n = len(self.d)
        if self.enc == LISTPACK:
            return 16 + 7 + sum(len(m) + 12 for m in self.d)
        buckets = 4
        while buckets < n:
            buckets *= 2
        return 16 + 48 + buckets * 8 + sum(len(m) + 56 for m in self.d)

    def __repr__(self):
        return f"ZSetValue({self.encoding()}, {self.items()!r})"

    # ------------------------------------------------------------ reading
    def __len__(self):
        return len(self.d)

    def __contains__(self, member):
        return member in self.d

    def score(self, member):
        """The member's score, or None."""
        return self.d.get(member)

    def rank(self, member):
        """The member's 0-based rank in ascending order, or None."""
        score = self.d.get(member)
        if score is None:
            return None
        return self.sl.bisect_left((score, member))

    def items(self):
        """Every (member, score) pair in ascending order."""
        return [(m, sc) for sc, m in self.sl]

    def sort_elements(self):
        """The members in ascending order (what SORT reads)."""
        return [m for _, m in self.sl]

    def members(self):
        return self.d.keys()

    def at(self, index):
        """(member, score) at a 0-based rank."""
        sc, m = self.sl[index]
        return m, sc

    def range_by_rank(self, start, stop, reverse=False):
        """(member, score) pairs of ranks start..stop (inclusive, already
        normalized to 0 <= start <= stop < len); reverse counts ranks from
        the highest score and lists them from there."""
        if reverse:
            n = len(self.d)
            it = self.sl.islice(n - 1 - stop, n - start, reverse=True)
        else:
            it = self.sl.islice(start, stop + 1)
        return [(m, sc) for sc, m in it]

    def score_bounds(self, lo, lo_excl, hi, hi_excl):
        """The slice [i, j) of ranks whose scores are in the range."""
        sl = self.sl
        if lo_excl:
            if lo == INF:
                return 0, 0
            lo = _next_up(lo, INF)
        i = sl.bisect_left((lo,))
        if hi_excl:
            j = sl.bisect_left((hi,))
        elif hi == INF:
            j = len(sl)
        else:
            j = sl.bisect_left((_next_up(hi, INF),))
        return i, max(i, j)

    def range_by_score(self, lo, lo_excl, hi, hi_excl, reverse=False):
        """(member, score) pairs whose score is in the range, ascending (or
        descending when reverse)."""
        i, j = self.score_bounds(lo, lo_excl, hi, hi_excl)
        return ((m, sc) for sc, m in self.sl.islice(i, j, reverse=reverse))

    def lex_bounds(self, lo, lo_excl, hi, hi_excl):
        """The slice [i, j) of ranks a lexicographic range covers. lo/hi are
        bytes, or None for '-' (lo) and '+' (hi).

        The range is meant for a set whose members all have one score: then
        it is a binary search. With several scores the answer is the one a
        listpack gives (Valkey's skiplist gives one that depends on its
        random node levels): from the first member >= lo, while <= hi."""
        sl = self.sl
        n = len(sl)
        if not n:
            return 0, 0
        if lo is not None and hi is not None and (lo > hi or (lo == hi and (lo_excl or hi_excl))):
            return 0, 0
        first_score, last_score = sl[0][0], sl[-1][0]
        if first_score == last_score:
            if lo is None:
                i = 0
            elif lo_excl:
                i = sl.bisect_right((first_score, lo))
            else:
                i = sl.bisect_left((first_score, lo))
            if hi is None:
                j = n
            elif hi_excl:
                j = sl.bisect_left((first_score, hi))
            else:
                j = sl.bisect_right((first_score, hi))
            return i, max(i, j)
        ge_lo = _lex_ge(lo, lo_excl)
        le_hi = _lex_le(hi, hi_excl)
        # the whole set is out of range when its last member is below lo or
        # its first above hi, as zzlIsInLexRange checks
        if not ge_lo(sl[-1][1]) or not le_hi(sl[0][1]):
            return 0, 0
        i = 0
        while i < n and not ge_lo(sl[i][1]):
            i += 1
        j = i
        while j < n and le_hi(sl[j][1]):
            j += 1
        return i, j

    def lex_bounds_reverse(self, lo, lo_excl, hi, hi_excl):
        """As lex_bounds, walking from the end (the reverse commands): the
        last member <= hi, then down while >= lo."""
        sl = self.sl
        n = len(sl)
        if not n or sl[0][0] == sl[-1][0]:
            return self.lex_bounds(lo, lo_excl, hi, hi_excl)
        if lo is not None and hi is not None and (lo > hi or (lo == hi and (lo_excl or hi_excl))):
            return 0, 0
        ge_lo = _lex_ge(lo, lo_excl)
        le_hi = _lex_le(hi, hi_excl)
        if not ge_lo(sl[-1][1]) or not le_hi(sl[0][1]):
            return 0, 0
        j = n
        while j > 0 and not le_hi(sl[j - 1][1]):
            j -= 1
        i = j
        while i > 0 and ge_lo(sl[i - 1][1]):
            i -= 1
        return i, j

    def slice(self, i, j, reverse=False):
        """(member, score) pairs of ranks [i, j)."""
        return [(m, sc) for sc, m in self.sl.islice(i, j, reverse=reverse)]

    def random_pairs(self, count):
        """count (member, score) pairs drawn independently."""
        sl = self.sl
        n = len(sl)
        out = []
        for _ in range(count):
            sc, m = sl[random.randrange(n)]
            out.append((m, sc))
        return out

    def random_sample(self, count):
        """count distinct (member, score) pairs, 0 < count < len: a listpack
        gives them in its own order (Valkey walks it once), a skiplist in
        random order."""
        n = len(self.sl)
        idx = random.sample(range(n), count)
        if self.enc == LISTPACK:
            idx.sort()
        sl = self.sl
        return [(sl[i][1], sl[i][0]) for i in idx]

    def scan(self, cursor, count):
        """One ZSCAN step over a skiplist-encoded set: (next cursor, pairs).

        Each member has a fixed position (from its hash) and a scan walks the
        positions upwards, so a member present for the whole scan is returned
        exactly once whatever is added or removed meanwhile. 0 starts and
        ends a scan."""
        self._scan, nxt, members = position_scan(self._scan, self.d, cursor, count)
        d = self.d
        return nxt, [(m, d[m]) for m in members if m in d]

    # ------------------------------------------------------------ writing
    def maybe_convert(self, size_hint, maxlen, limits):
        """ZADD to an existing set: a skiplist at once when this many members
        or one this long could not fit a listpack (zsetTypeMaybeConvert)."""
        if self.enc == LISTPACK and not fits_listpack(size_hint, maxlen, limits):
            self.convert(SKIPLIST)

    def add(self, member, score, limits=None):
        """Inserts member or moves it to score. True if it is new. With
        `limits`, a listpack that would overflow becomes a skiplist first,
        as Valkey's zsetAdd does."""
        d = self.d
        if self.enc == LISTPACK and score == 0:
            score = 0.0
        old = d.get(member)
        if old is not None:
            if old != score:      # -0.0 and 0.0 are the same score, as in Valkey
                self.sl.remove((old, member))
                self.sl.add((score, member))
                d[member] = score
            return False
        if limits is not None and self.enc == LISTPACK and \
                (len(d) + 1 > limits[0] or len(member) > limits[1]):
            self.convert(SKIPLIST)
        d[member] = score
        self.sl.add((score, member))
        self._scan = None
        return True

    def remove(self, member):
        """Removes member; False if it was not there."""
        score = self.d.pop(member, None)
        if score is None:
            return False
        self.sl.remove((score, member))
        self._scan = None
        return True

    def delete_slice(self, i, j):
        """Removes the members of ranks [i, j); returns how many."""
        if j <= i:
            return 0
        sl, d = self.sl, self.d
        if j - i == len(sl):
            d.clear()
            sl.clear()
        else:
            for _, m in sl.islice(i, j):
                del d[m]
            del sl[i:j]
        self._scan = None
        return j - i

    def pop(self, count, highest):
        """Removes up to count members from one end; returns their
        (member, score) pairs, the end's first."""
        n = min(count, len(self.sl))
        if highest:
            out = self.slice(len(self.sl) - n, len(self.sl), reverse=True)
            self.delete_slice(len(self.sl) - n, len(self.sl))
        else:
            out = self.slice(0, n)
            self.delete_slice(0, n)
        return out

    def convert(self, enc):
        if enc == self.enc:
            return
        self.enc = enc
        self._scan = None
        if enc == LISTPACK:
            d = self.d
            zeros = [m for m, sc in d.items() if sc == 0 and math.copysign(1, sc) < 0]
            for m in zeros:
                self.sl.remove((d[m], m))
                d[m] = 0.0
                self.sl.add((0.0, m))


def _lex_ge(lo, excl):
    if lo is None:
        return lambda m: True
    if excl:
        return lambda m: m > lo
    return lambda m: m >= lo


def _lex_le(hi, excl):
    if hi is None:
        return lambda m: True
    if excl:
        return lambda m: m < hi
    return lambda m: m <= hi

