# The keyspace hash table, shaped like Redis's dict: chained buckets, a power
# of two in size, so that SCAN can walk it with a reverse-binary cursor that
# returns every key present for the whole scan even when the table grows or
# shrinks between calls, and so that a random key can be drawn in O(1) for
# RANDOMKEY, active expiry and eviction. Each entry carries one 64-bit word of
# metadata: the LRU clock in the data table, the expiry time in the expires
# table. Keys are always bytes objects.
#
# A data table is "sized": the top 36 bits of each entry's word hold an
# estimate of the bytes the entry holds (the Entry itself, the key object, the
# value), and the table keeps their sum in `mem`, so used_memory is a sum of a
# few counters rather than a walk. The low 24 bits are the access word, as in
# Redis's robj.lru: the LRU clock in seconds (mod 2**24), or under an LFU
# policy the time of the last decrement in minutes (16 bits) and the
# logarithmic access counter (8 bits). The 4 bits between them hold the tenth
# of a second of the last access under an LRU policy, so eviction can tell
# apart keys read within the same second (see "maxmemory" in core.pxi); they
# are not part of the word get_meta/set_meta show. Every change of a value
# through the table (insert_new, put, set_value, take, clear_all) moves `mem`;
# values changed in place are re-measured with refresh_size().

from cpython.mem cimport PyMem_Malloc, PyMem_Free, PyMem_Calloc
from cpython.ref cimport Py_INCREF, Py_DECREF, Py_XDECREF
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.object cimport PyObject_Hash
from libc.string cimport memcmp, memset

cdef extern from *:
    """
    static inline unsigned long shardkv_rev(unsigned long v) {
        unsigned long s = 8 * sizeof(v), mask = ~0UL;
        while ((s >>= 1) > 0) {
            mask ^= (mask << s);
            v = ((v >> s) & mask) | ((v << s) & ~mask);
        }
        return v;
    }
    """
    unsigned long shardkv_rev(unsigned long v)

cdef extern from "stdlib.h":
    long random()


DEF ACCESS_MASK = 0xFFFFFF        # Redis's 24-bit access word
DEF WORD_MASK = 0xFFFFFFF         # with the LRU clock's tenth of a second
DEF SIZE_SHIFT = 28
DEF SIZE_MAX = 0xFFFFFFFFF        # 36 bits: an estimate saturates at 64 GiB
DEF ENTRY_BYTES = 32              # sizeof(Entry), a pymalloc 32-byte block
DEF BYTES_HEADER = 33             # sys.getsizeof(b"")

# Measures values other than bytes (collections, bytearray): set by
# shardkv.eviction, sys.getsizeof until then.
cdef object _footprint_fn = None


def set_footprint_function(fn):
    global _footprint_fn
    _footprint_fn = fn


cdef inline int64_t alloc_size(Py_ssize_t n):
    """What the allocators hand out for a request of n bytes: pymalloc's
    16-byte size classes up to 512 bytes, above that a glibc chunk (an 8-byte
    header, 16-byte alignment)."""
    if n <= 512:
        return (n + 15) & ~15
    return (n + 8 + 15) & ~15


cdef inline int64_t bytes_footprint(object b):
    return alloc_size(PyBytes_GET_SIZE(b) + BYTES_HEADER)


cdef inline int64_t value_footprint(object v) except -1:
    if type(v) is bytes:
        return bytes_footprint(v)
    return other_footprint(v)


cdef int64_t other_footprint(object v) except -1:
    if v is None:
        return 0
    if _footprint_fn is None:
        import sys
        return sys.getsizeof(v)
    return <int64_t>_footprint_fn(v)


cdef inline int64_t entry_footprint(object key, object val) except -1:
    cdef int64_t n = ENTRY_BYTES + bytes_footprint(key) + value_footprint(val)
    return n if n < SIZE_MAX else SIZE_MAX


cdef inline bint same_key(PyObject *a, object b):
    if a == <PyObject *>b:
        return True
    cdef Py_ssize_t n = PyBytes_GET_SIZE(<object>a)
    return n == PyBytes_GET_SIZE(b) and memcmp(
        PyBytes_AS_STRING(<object>a), PyBytes_AS_STRING(b), n) == 0


cdef inline int check_key(object key) except -1:
    if type(key) is not bytes:
        raise TypeError("keys are bytes, not %s" % type(key).__name__)
    return 0


cdef inline int table_refresh_size(Table t, Entry *e) except -1:
    """Re-measures an entry of a sized table whose value changed."""
    cdef int64_t sz = entry_footprint(<object>e.key, <object>e.val)
    t.mem += sz - (<uint64_t>e.meta >> SIZE_SHIFT)
    e.meta = (sz << SIZE_SHIFT) | (e.meta & WORD_MASK)
    return 0


cdef inline int table_set_value(Table t, Entry *e, object val) except -1:
    """Replaces an entry's value, keeping its access word."""
    cdef PyObject *old = e.val
    Py_INCREF(val)
    e.val = <PyObject *>val
    Py_XDECREF(old)
    if t.sized:
        table_refresh_size(t, e)
    return 0


cdef class Table:
    """A bytes-keyed hash table with stable SCAN cursors and random sampling."""

    def __dealloc__(self):
        self.clear_all()

    cdef Entry *find(self, object key) except? NULL:
        if self.used == 0:
            return NULL
        cdef Py_hash_t h = PyObject_Hash(key)
        cdef Entry *e = self.buckets[<size_t>h & (self.size - 1)]
        while e != NULL:
            if same_key(e.key, key):
                return e
            e = e.next
        return NULL

    cdef Entry *insert_new(self, object key, object val, int64_t meta) except NULL:
        """Adds a key known to be absent."""
        if self.used >= <Py_ssize_t>self.size:
            self._resize(self.size * 2 if self.size else 4)
        cdef int64_t sz
        cdef Entry *e = <Entry *>PyMem_Malloc(sizeof(Entry))
        if e == NULL:
            raise MemoryError()
        cdef size_t idx = <size_t>PyObject_Hash(key) & (self.size - 1)
        Py_INCREF(key)
        Py_INCREF(val)
        e.key = <PyObject *>key
        e.val = <PyObject *>val
        if self.sized:
            sz = entry_footprint(key, val)
            e.meta = (sz << SIZE_SHIFT) | (meta & WORD_MASK)
            self.mem += sz
        else:
            e.meta = meta
        e.next = self.buckets[idx]
        self.buckets[idx] = e
        self.used += 1
        self.version += 1
        return e

    cdef int put(self, object key, object val) except -1:
        cdef Entry *e = self.find(key)
        if e == NULL:
            self.insert_new(key, val, 0)
        else:
            self.set_value(e, val)
        return 0

    cdef int set_value(self, Entry *e, object val) except -1:
        return table_set_value(self, e, val)

    cdef int refresh_size(self, Entry *e) except -1:
        return table_refresh_size(self, e)

    cdef object take(self, object key):
        """Removes key and returns its value, or None when absent."""
        if self.used == 0:
            return None
        cdef size_t idx = <size_t>PyObject_Hash(key) & (self.size - 1)
        cdef Entry *e = self.buckets[idx]
        cdef Entry *prev = NULL
        cdef object val
        while e != NULL:
            if same_key(e.key, key):
                if prev == NULL:
                    self.buckets[idx] = e.next
                else:
                    prev.next = e.next
                val = <object>e.val
                if self.sized:
                    self.mem -= <uint64_t>e.meta >> SIZE_SHIFT
                Py_DECREF(<object>e.val)
                Py_DECREF(<object>e.key)
                PyMem_Free(e)
                self.used -= 1
                self.version += 1
                if self.size > 64 and <size_t>self.used * 10 < self.size:
                    self._resize(self.size // 4)
                return val
            prev = e
            e = e.next
        return None

    cdef int discard(self, object key) except -1:
        cdef Entry *e = self.find(key)
        if e == NULL:
            return 0
        self.take(key)
        return 1

    cdef void clear_all(self):
        cdef size_t i
        cdef Entry *e
        cdef Entry *nxt
        if self.buckets != NULL:
            for i in range(self.size):
                e = self.buckets[i]
                while e != NULL:
                    nxt = e.next
                    Py_XDECREF(e.key)
                    Py_XDECREF(e.val)
                    PyMem_Free(e)
                    e = nxt
            PyMem_Free(self.buckets)
        self.buckets = NULL
        self.size = 0
        self.used = 0
        self.mem = 0
        self.version += 1

    cdef void _resize(self, size_t newsize):
        # A full rehash: entries keep their allocation, only the chains move.
        cdef Entry **nb = <Entry **>PyMem_Calloc(newsize, sizeof(Entry *))
        if nb == NULL:
            return   # keep the old table; it still works, only with longer chains
        cdef size_t i, idx
        cdef Entry *e
        cdef Entry *nxt
        for i in range(self.size):
            e = self.buckets[i]
            while e != NULL:
                nxt = e.next
                idx = <size_t>PyObject_Hash(<object>e.key) & (newsize - 1)
                e.next = nb[idx]
                nb[idx] = e
                e = nxt
        PyMem_Free(self.buckets)
        self.buckets = nb
        self.size = newsize

    cdef Entry *random_entry(self):
        """Draws a bucket at random until one is not empty, then an entry of
        its chain: close to uniform because chains are short."""
        if self.used == 0:
            return NULL
        cdef Entry *e
        cdef Entry *c
        cdef size_t n
        while True:
            e = self.buckets[<size_t>random() & (self.size - 1)]
            if e != NULL:
                break
        n = 0
        c = e
        while c != NULL:
            n += 1
            c = c.next
        n = <size_t>random() % n
        while n:
            e = e.next
            n -= 1
        return e

    # ------------------------------------------------------------ Python view
    # Cython callers pass bytes keys by construction; Python callers are
    # checked, because the comparison reads keys as bytes objects.
    def __len__(self):
        return self.used

    def __contains__(self, key):
        check_key(key)
        return self.find(key) != NULL

    def __getitem__(self, key):
        check_key(key)
        cdef Entry *e = self.find(key)
        if e == NULL:
            raise KeyError(key)
        return <object>e.val

    def get(self, key, default=None):
        check_key(key)
        cdef Entry *e = self.find(key)
        return default if e == NULL else <object>e.val

    def __setitem__(self, key, value):
        check_key(key)
        self.put(key, value)

    def __delitem__(self, key):
        check_key(key)
        if not self.discard(key):
            raise KeyError(key)

    def pop(self, key, default=None):
        check_key(key)
        if self.find(key) == NULL:
            return default
        return self.take(key)

    def get_meta(self, key, default=None):
        """The metadata word of key (in a sized table, its access word)."""
        check_key(key)
        cdef Entry *e = self.find(key)
        if e == NULL:
            return default
        return e.meta & ACCESS_MASK if self.sized else e.meta

    def set_meta(self, key, int64_t meta):
        """Sets the metadata word of key (in a sized table, its access word,
        the tenth of a second cleared), adding key (with value None) if
        absent."""
        check_key(key)
        cdef Entry *e = self.find(key)
        if e == NULL:
            self.insert_new(key, None, meta)
        elif self.sized:
            e.meta = (e.meta & ~(<int64_t>WORD_MASK)) | (meta & ACCESS_MASK)
        else:
            e.meta = meta

    def get_size(self, key, default=None):
        """The estimated bytes of key's entry (sized tables)."""
        check_key(key)
        cdef Entry *e = self.find(key)
        return default if e == NULL else <uint64_t>e.meta >> SIZE_SHIFT

    def refresh(self, key):
        """Re-measures key's entry after its value changed in place."""
        check_key(key)
        cdef Entry *e = self.find(key)
        if e != NULL and self.sized:
            self.refresh_size(e)

    @property
    def memory(self):
        """Estimated bytes: the entries (sized tables: their measured sum,
        else Entry structs only) and the bucket array."""
        if self.sized:
            return self.mem + 8 * <int64_t>self.size
        return ENTRY_BYTES * self.used + 8 * <int64_t>self.size

    def keys(self):
        cdef list out = []
        cdef size_t i
        cdef Entry *e
        for i in range(self.size):
            e = self.buckets[i]
            while e != NULL:
                out.append(<object>e.key)
                e = e.next
        return out

    def items(self):
        cdef list out = []
        cdef size_t i
        cdef Entry *e
        for i in range(self.size):
            e = self.buckets[i]
            while e != NULL:
                out.append((<object>e.key, <object>e.val))
                e = e.next
        return out

    def __iter__(self):
        return iter(self.keys())

    def clear(self):
        self.clear_all()

    def random_key(self):
        cdef Entry *e = self.random_entry()
        return None if e == NULL else <object>e.key

    def sample(self, int count):
        """Up to count (key, meta) pairs drawn at random (with repeats)."""
        cdef list out = []
        cdef Entry *e
        cdef int i
        for i in range(count):
            e = self.random_entry()
            if e == NULL:
                break
            out.append((<object>e.key, e.meta & ACCESS_MASK if self.sized else e.meta))
        return out

    def scan(self, unsigned long cursor, Py_ssize_t count):
        """Returns (next_cursor, keys): visits about count buckets' entries.

        The cursor is Redis's reverse-binary bucket cursor: incrementing the
        reversed bits visits buckets so that a table that doubled or halved
        since the last call neither skips nor loses any bucket it had."""
        cdef list keys = []
        cdef unsigned long m
        cdef Entry *e
        if self.used == 0:
            return 0, keys
        m = self.size - 1
        cdef Py_ssize_t visited = 0
        while True:
            e = self.buckets[cursor & m]
            while e != NULL:
                keys.append(<object>e.key)
                e = e.next
            cursor |= ~m
            cursor = shardkv_rev(cursor)
            cursor += 1
            cursor = shardkv_rev(cursor)
            visited += 1
            if cursor == 0 or len(keys) >= count or visited >= count * 10:
                break
        return cursor, keys

    @property
    def buckets_count(self):
        return self.size


cdef class Database:
    """One numbered database: keys to values, and keys to expiry times (ms)."""

    def __cinit__(self, int id):
        self.id = id
        self.data = Table()
        self.data.sized = True
        self.expires = Table()

    def __len__(self):
        return self.data.used
