"""The hash value: field -> value bytes, with optional per-field expiry
times, and the bookkeeping Valkey's two encodings imply.

Fields live in a plain dict, whose insertion order is also the order a
listpack-encoded hash answers HGETALL/HKEYS/HSCAN in (an overwrite keeps its
place, a re-added field goes to the end, as in a listpack). `ht` records
that the hash has become "hashtable"-encoded; like Valkey we never convert
back. Valkey never stores a field TTL in a listpack: giving a field a TTL
converts the hash, so OBJECT ENCODING reports "hashtable" (there is no
"listpackex" in Valkey 9.1).

Field TTLs follow Valkey 9.1: a field past its time is invisible to every
command that looks at fields (HGET, HEXISTS, HGETALL, HSCAN, HRANDFIELD,
HTTL, HDEL...), but stays stored until the active expiry cycle reclaims it
(commands/hashes.py), so HLEN still counts it and the key still exists even
when every field is past its time. Writing a field that is past its time
replaces it as if it were absent.

HSCAN over a hashtable-encoded hash uses a scan log: every field gets a
sequence number when it is inserted (numbers only grow) and the cursor is
"the next sequence number to return". A field present for the whole scan
keeps its number, so it is returned exactly once."""

from __future__ import annotations

import heapq
import random
import time
from bisect import bisect_left

# Rough byte costs of Valkey's structures, for MEMORY USAGE estimates.
_LISTPACK_HEADER = 7
_LISTPACK_ENTRY = 2
_HASHTABLE_HEADER = 64
_HASHTABLE_ENTRY = 40
_TTL_BYTES = 8


class _ScanLog:
    """Fields in insertion order with ever-growing sequence numbers; deleted
    fields leave tombstones until a compaction (which keeps the numbers)."""

    __slots__ = ("seq", "seqs", "fields", "next", "dead")

    def __init__(self, fields):
        self.seq = {}
        self.seqs = []
        self.fields = []
        self.next = 1
        self.dead = 0
        for f in fields:
            self.add(f)

    def add(self, field):
        s = self.next
        self.next += 1
        self.seq[field] = s
        self.seqs.append(s)
        self.fields.append(field)

    def remove(self, field):
        if self.seq.pop(field, None) is None:
            return
        self.dead += 1
        if self.dead > 32 and self.dead > len(self.seq):
            live = [(s, f) for s, f in zip(self.seqs, self.fields, strict=True) if self.seq.get(f) == s]
            self.seqs = [s for s, _ in live]
            self.fields = [f for _, f in live]
            self.dead = 0


class Hash:
    """A hash value (TYPE_NAME "hash"); see the module docstring."""

    TYPE_NAME = "hash"
    __slots__ = ("d", "ht", "ttl", "_heap", "_scan", "_flist")

    def __init__(self):
        self.d = {}          # field -> value (bytes)
        self.ht = False      # hashtable-encoded (sticky)
        self.ttl = None      # field -> absolute expiry in ms, for fields that have one
        self._heap = None    # (when, field) min-heap over ttl; may hold stale pairs
        self._scan = None    # _ScanLog, once an HSCAN ran over the hashtable encoding
        self._flist = None   # the fields as a list, for random picks; None when stale

    # ------------------------------------------------------------ value protocol
    def encoding(self):
        return "hashtable" if self.ht else "listpack"

    def copy(self):
        h = Hash()
        h.d = dict(self.d)
        h.ht = self.ht
        if self.ttl:
            h.ttl = dict(self.ttl)
            h._heap = [(w, f) for f, w in h.ttl.items()]
            heapq.heapify(h._heap)
        return h

    def digest_parts(self):
        now = int(time.time() * 1000)
        ttl = self.ttl or {}
        for field, value in sorted(self.items(now)):
            yield len(field).to_bytes(8, "little") + field
            yield len(value).to_bytes(8, "little") + value
            when = ttl.get(field)
            if when is not None:
                yield b"!!ttl!!" + str(when).encode()

    def memory_usage(self):
        payload = sum(len(f) + len(v) for f, v in self.d.items())
        if not self.ht:
            return 16 + _LISTPACK_HEADER + payload + 2 * _LISTPACK_ENTRY * len(self.d)
        extra = _TTL_BYTES * len(self.ttl) if self.ttl else 0
        return 16 + _HASHTABLE_HEADER + payload + _HASHTABLE_ENTRY * len(self.d) + extra

    def after_store(self, server, db, key):
        """Called when the value lands under a (new) key, e.g. by RENAME or
        COPY: a hash with field TTLs must be known to the active expiry."""
        if self.ttl:
            from shardkv.commands.hashes import track_volatile
            track_volatile(server, db, key, self)

    # ------------------------------------------------------------ reading
    def __len__(self):
        """HLEN: stored fields, counting those past their time that the
        active expiry has not reclaimed yet (as Valkey does)."""
        return len(self.d)

    def alive(self, field, now):
        if field not in self.d:
            return False
        if self.ttl:
            when = self.ttl.get(field)
            if when is not None and when <= now:
                return False
        return True

    def get(self, field, now):
        v = self.d.get(field)
        if v is not None and self.ttl:
            when = self.ttl.get(field)
            if when is not None and when <= now:
                return None
        return v

    def expiry_of(self, field, now):
        """None if the field is absent (or past its time), -1 if it has no
        TTL, else its expiry time in ms."""
        if not self.alive(field, now):
            return None
        if self.ttl:
            return self.ttl.get(field, -1)
        return -1

    def items(self, now):
        """The live (field, value) pairs, in storage order."""
        ttl = self.ttl
        if not ttl:
            return self.d.items()
        return [(f, v) for f, v in self.d.items() if not (f in ttl and ttl[f] <= now)]

    def fields(self, now):
        ttl = self.ttl
        if not ttl:
            return list(self.d)
        return [f for f in self.d if not (f in ttl and ttl[f] <= now)]

    def has_volatile(self):
        return bool(self.ttl)

    # ------------------------------------------------------------ encoding
    def try_conversion(self, args, max_entries, max_value):
        """Valkey's hashTypeTryConversion before a multi-field write: more
        new pairs than the entry limit, or any field/value longer than the
        value limit, make the listpack a hashtable."""
        if self.ht:
            return
        if len(args) // 2 > max_entries:
            self.ht = True
            return
        for a in args:
            if len(a) > max_value:
                self.ht = True
                return

    # ------------------------------------------------------------ writing
    def set(self, field, value, now, max_entries, max_value, expiry=None, keep_ttl=False):
        """Sets field to value (with an expiry time in ms, or none). Returns
        (created, replaced_expired): created is True when the field was
        absent or past its time."""
        if not self.ht and (expiry is not None or len(field) > max_value or len(value) > max_value):
            self.ht = True
        d = self.d
        if field in d:
            old = self.ttl.get(field) if self.ttl else None
            expired = old is not None and old <= now
            if keep_ttl and not expired:
                expiry = old
            d[field] = value
            self._set_ttl(field, expiry, old)
            return expired, expired
        d[field] = value
        self._flist = None
        if self._scan is not None:
            self._scan.add(field)
        if expiry is not None:
            self._set_ttl(field, expiry, None)
        if not self.ht and len(d) > max_entries:
            self.ht = True
        return True, False

    def delete(self, field, now):
        """Removes a live field; a field past its time is not deleted (it
        is not there as far as commands can see). True if removed."""
        if not self.alive(field, now):
            return False
        self.remove(field)
        return True

    def remove(self, field):
        del self.d[field]
        self._flist = None
        if self.ttl and self.ttl.pop(field, None) is not None and not self.ttl:
            self.ttl = self._heap = None
        if self._scan is not None:
            self._scan.remove(field)

    def _set_ttl(self, field, when, old):
        if when is None:
            if old is not None:
                del self.ttl[field]
                if not self.ttl:
                    self.ttl = self._heap = None
            return
        if self.ttl is None:
            self.ttl = {}
            self._heap = []
        self.ttl[field] = when
        heap = self._heap
        heapq.heappush(heap, (when, field))
        if len(heap) > 2 * len(self.ttl) + 32:
            self._heap = [(w, f) for f, w in self.ttl.items()]
            heapq.heapify(self._heap)

    def set_expire(self, field, when, now, past, nx=False, xx=False, gt=False, lt=False):
        """HEXPIRE on one field (Valkey's hashTypeSetExpire): -2 absent, 0
        condition not met, 1 expiry set, 2 deleted because `past` (the time
        is already over)."""
        if not self.alive(field, now):
            return -2
        if not self.ht:
            # a listpack holds no TTLs: XX and GT cannot hold
            if xx or gt:
                return 0
            if past:
                self.remove(field)
                return 2
            self.ht = True
        current = self.ttl.get(field) if self.ttl else None
        if nx and current is not None:
            return 0
        if xx and current is None:
            return 0
        if gt and (current is None or when <= current):
            return 0
        if lt and current is not None and when >= current:
            return 0
        if past:
            self.remove(field)
            return 2
        self._set_ttl(field, when, current)
        return 1

    def persist(self, field, now):
        """HPERSIST on one field: -2 absent, -1 no TTL, 1 TTL removed."""
        if not self.alive(field, now):
            return -2
        current = self.ttl.get(field) if self.ttl else None
        if current is None:
            return -1
        self._set_ttl(field, None, current)
        return 1

    def pop_expired(self, now, limit):
        """Removes up to `limit` fields past their time (soonest first);
        returns them."""
        out = []
        heap = self._heap
        while heap and heap[0][0] <= now and len(out) < limit:
            when, field = heapq.heappop(heap)
            if self.ttl.get(field) == when:
                self.remove(field)
                out.append(field)
                heap = self._heap
        return out

    # ------------------------------------------------------------ HRANDFIELD
    def _live_list(self, now):
        """The live fields as a list: the cached list when no field has a TTL."""
        if self.ttl:
            return self.fields(now)
        fl = self._flist
        if fl is None:
            fl = self._flist = list(self.d)
        return fl

    def random_field(self, now):
        """One live field chosen at random, or None."""
        if self.ttl:
            fl = self._flist
            if fl is None:
                fl = self._flist = list(self.d)
            # a few random tries first, like Valkey, then the live fields
            for _ in range(min(len(fl), 100)):
                f = random.choice(fl)
                if self.alive(f, now):
                    return f
        live = self._live_list(now)
        return random.choice(live) if live else None

    def random_distinct(self, count, now):
        """HRANDFIELD with a positive count: distinct live fields; all of
        them (in storage order) when count reaches their number, and a
        listpack answers a sample in its own order too."""
        live = self._live_list(now)
        if count >= len(live):
            return list(live)
        if not self.ht:
            return [live[i] for i in sorted(random.sample(range(len(live)), count))]
        return random.sample(live, count)

    def random_repeated(self, count, now):
        """HRANDFIELD with a negative count: count live fields, repeats
        allowed; none when no field is live."""
        live = self._live_list(now)
        return random.choices(live, k=count) if live else []

    # ------------------------------------------------------------ HSCAN
    def scan(self, cursor, count, now):
        """One HSCAN step over the hashtable encoding: (next cursor, live
        fields with a sequence number >= cursor, at most `count`)."""
        log = self._scan
        if log is None:
            log = self._scan = _ScanLog(self.d)
        seqs, fields, seq = log.seqs, log.fields, log.seq
        i = bisect_left(seqs, cursor)
        n = len(seqs)
        out = []
        while i < n and len(out) < count:
            f = fields[i]
            if seq.get(f) == seqs[i] and self.alive(f, now):
                out.append(f)
            i += 1
        return (seqs[i] if i < n else 0), out
