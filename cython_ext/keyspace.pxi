# The keyspace hash table, shaped like Redis's dict: chained buckets, a power
# of two in size, so that SCAN can walk it with a reverse-binary cursor that
# returns every key present for the whole scan even when the table grows or
# shrinks between calls, and so that a random key can be drawn in O(1) for
# RANDOMKEY, active expiry and eviction. Each entry carries one 64-bit word of
# metadata: the LRU clock in the data table, the expiry time in the expires
# table. Keys are always bytes objects.

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
        cdef Entry *e = <Entry *>PyMem_Malloc(sizeof(Entry))
        if e == NULL:
            raise MemoryError()
        cdef size_t idx = <size_t>PyObject_Hash(key) & (self.size - 1)
        Py_INCREF(key)
        Py_INCREF(val)
        e.key = <PyObject *>key
        e.val = <PyObject *>val
        e.meta = meta
        e.next = self.buckets[idx]
        self.buckets[idx] = e
        self.used += 1
        self.version += 1
        return e

    cdef int put(self, object key, object val) except -1:
        cdef Entry *e = self.find(key)
        cdef PyObject *old
        if e == NULL:
            self.insert_new(key, val, 0)
        else:
            old = e.val
            Py_INCREF(val)
            e.val = <PyObject *>val
            Py_XDECREF(old)
        return 0

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
        check_key(key)
        cdef Entry *e = self.find(key)
        return default if e == NULL else e.meta

    def set_meta(self, key, int64_t meta):
        check_key(key)
        """Sets the metadata word of key, adding key (with value None) if absent."""
        cdef Entry *e = self.find(key)
        if e == NULL:
            self.insert_new(key, None, meta)
        else:
            e.meta = meta

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
            out.append((<object>e.key, e.meta))
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
        self.expires = Table()

    def __len__(self):
        return self.data.used
