"""HyperLogLog in Redis's own representation (PFADD PFCOUNT PFMERGE).

This module owns the bytes of an HLL string value, laid out exactly as
Redis and Valkey lay it out, so that GET returns the same bytes and an HLL
written by either server can be SET here and read back:

* a 16-byte header: "HYLL", the encoding (0 dense, 1 sparse), three unused
  bytes, and the cached cardinality as a 64-bit little-endian integer whose
  most significant bit set means "stale, recompute";
* dense: 16384 registers of 6 bits, packed from the least significant bit of
  each byte upwards (12288 bytes);
* sparse: a run-length code over the registers, ZERO (00xxxxxx, 1-64 zero
  registers), XZERO (01xxxxxx yyyyyyyy, 1-16384 zero registers) and VAL
  (1vvvvvxx, 1-4 registers of value 1-32).

Elements are hashed with MurmurHash64A (seed 0xadc83b19): the low 14 bits pick
the register, the position of the lowest set bit of the rest is the value.
The cardinality is Ertl's improved estimator over the register histogram, the
one Redis 5+ and Valkey use, computed with the same double operations in the
same order so that the numbers (and the cached bytes) are the same.

Sparse updates follow Redis's algorithm step for step (split the opcode
covering the register, then merge adjacent VAL opcodes over a window of five
opcodes from the previous one), because the bytes it produces are visible to
clients. A sparse value is promoted to dense when a register needs a value
above 32 or when growing would pass hll-sparse-max-bytes.

Work on a sparse value happens in a C buffer that keeps one byte past the
end, as an sds string keeps its terminator: Redis's decoder reads that byte
for an XZERO opcode cut off at the end of a corrupt value, and we read the
same. Nothing here does I/O or knows about keys: the command module
(shardkv/commands/hyperloglog.py) looks keys up and replies."""

from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_FromStringAndSize, PyByteArray_GET_SIZE
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.math cimport INFINITY, ceil, sqrt
from libc.stdint cimport int64_t, uint8_t, uint64_t
from libc.stdlib cimport calloc, free, malloc, rand, realloc
from libc.string cimport memcpy, memmove, memset


cdef extern from *:
    """
    static inline int shardkv_ctz64(unsigned long long x) { return __builtin_ctzll(x); }
    """
    int shardkv_ctz64(unsigned long long x) nogil
    long long llroundl(long double x) nogil

cdef enum:
    HLL_P = 14
    HLL_Q = 50                      # 64 - P: hash bits left for the run of zeros
    HLL_REGISTERS = 16384
    HLL_P_MASK = 16383
    HLL_REGISTER_MAX = 63
    HLL_HDR_SIZE = 16
    HLL_REGISTER_BYTES = 12288      # 16384 * 6 / 8
    HLL_DENSE_SIZE = 12304
    HLL_DENSE = 0
    HLL_SPARSE = 1
    SPARSE_VAL_MAX_VALUE = 32
    SPARSE_VAL_MAX_LEN = 4
    SPARSE_ZERO_MAX_LEN = 64
    SPARSE_XZERO_MAX_LEN = 16384

cdef double HLL_ALPHA_INF = 0.721347520444481703680    # 0.5 / ln(2)

SEED = 0xadc83b19
REGISTERS = HLL_REGISTERS
DENSE_SIZE = HLL_DENSE_SIZE
HEADER_SIZE = HLL_HDR_SIZE


# ------------------------------------------------------------------ hashing

cdef uint64_t murmur64a(const uint8_t *data, Py_ssize_t length, uint64_t seed) noexcept nogil:
    """MurmurHash2, 64-bit version, reading words little-endian whatever the
    host (as Redis's endian-neutral variant does). Redis passes the length as
    an int: lengths past 2**31 never reach here (proto-max-bulk-len)."""
    cdef uint64_t m = 0xc6a4a7935bd1e995ULL
    cdef int r = 47
    cdef uint64_t h = seed ^ (<uint64_t><int>length * m)
    cdef Py_ssize_t nblocks = length >> 3
    cdef Py_ssize_t i
    cdef uint64_t k
    cdef const uint8_t *p = data
    cdef int rem
    for i in range(nblocks):
        k = (<uint64_t>p[0] | <uint64_t>p[1] << 8 | <uint64_t>p[2] << 16 | <uint64_t>p[3] << 24 |
             <uint64_t>p[4] << 32 | <uint64_t>p[5] << 40 | <uint64_t>p[6] << 48 | <uint64_t>p[7] << 56)
        k *= m
        k ^= k >> r
        k *= m
        h ^= k
        h *= m
        p += 8
    rem = length & 7
    if rem >= 7:
        h ^= <uint64_t>p[6] << 48
    if rem >= 6:
        h ^= <uint64_t>p[5] << 40
    if rem >= 5:
        h ^= <uint64_t>p[4] << 32
    if rem >= 4:
        h ^= <uint64_t>p[3] << 24
    if rem >= 3:
        h ^= <uint64_t>p[2] << 16
    if rem >= 2:
        h ^= <uint64_t>p[1] << 8
    if rem >= 1:
        h ^= <uint64_t>p[0]
        h *= m
    h ^= h >> r
    h *= m
    h ^= h >> r
    return h


cdef inline int pat_len(const uint8_t *ele, Py_ssize_t n, long *regp) noexcept nogil:
    """The register an element maps to (in *regp) and the value it offers:
    1 + the number of zero bits above the index bits before the first one,
    at most Q + 1 = 51."""
    cdef uint64_t h = murmur64a(ele, n, 0xadc83b19ULL)
    regp[0] = <long>(h & HLL_P_MASK)
    h >>= HLL_P
    h |= (<uint64_t>1) << HLL_Q
    return 1 + shardkv_ctz64(h)


cdef const uint8_t *buffer_of(object v, Py_ssize_t *n) except NULL:
    """The bytes of a bytes or bytearray object (no copy)."""
    if type(v) is bytes:
        n[0] = PyBytes_GET_SIZE(v)
        return <const uint8_t *>PyBytes_AS_STRING(v)
    if type(v) is bytearray:
        n[0] = PyByteArray_GET_SIZE(v)
        return <const uint8_t *>PyByteArray_AS_STRING(v)
    raise TypeError("expected bytes or bytearray, not %s" % type(v).__name__)


def murmurhash64a(data, uint64_t seed=0xadc83b19):
    """MurmurHash64A of data (bytes or bytearray) with Redis's HLL seed."""
    cdef Py_ssize_t n
    cdef const uint8_t *p = buffer_of(data, &n)
    return murmur64a(p, n, seed)


def hash_element(data):
    """(register index, value) that PFADD of this element offers."""
    cdef Py_ssize_t n
    cdef const uint8_t *p = buffer_of(data, &n)
    cdef long index
    cdef int count = pat_len(p, n, &index)
    return index, count


# ------------------------------------------------------------ dense registers
# Register i occupies bits 6i .. 6i+5 of the register bytes, least significant
# bit first. Redis relies on the sds terminator for the byte after the last
# register; these helpers bound-check instead (the last register never spills).

cdef inline int dense_get(const uint8_t *regs, long i) noexcept nogil:
    cdef long byte = i * 6 // 8
    cdef int fb = (i * 6) & 7
    cdef unsigned long b0 = regs[byte]
    cdef unsigned long b1 = regs[byte + 1] if byte + 1 < HLL_REGISTER_BYTES else 0
    return <int>(((b0 >> fb) | (b1 << (8 - fb))) & HLL_REGISTER_MAX)


cdef inline void dense_put(uint8_t *regs, long i, unsigned long val) noexcept nogil:
    cdef long byte = i * 6 // 8
    cdef int fb = (i * 6) & 7
    cdef int fb8 = 8 - fb
    regs[byte] &= <uint8_t>~(HLL_REGISTER_MAX << fb)
    regs[byte] |= <uint8_t>(val << fb)
    if byte + 1 < HLL_REGISTER_BYTES:
        regs[byte + 1] &= <uint8_t>~(HLL_REGISTER_MAX >> fb8)
        regs[byte + 1] |= <uint8_t>(val >> fb8)


cdef inline int dense_set(uint8_t *regs, long i, int count) noexcept nogil:
    """Raises register i to count; 1 if it changed."""
    if count > dense_get(regs, i):
        dense_put(regs, i, count)
        return 1
    return 0


cdef void dense_histogram(const uint8_t *r, int *histo) noexcept nogil:
    """Counts register values, 16 registers (12 bytes) at a time."""
    cdef int j
    for j in range(HLL_REGISTERS // 16):
        histo[r[0] & 63] += 1
        histo[(r[0] >> 6 | r[1] << 2) & 63] += 1
        histo[(r[1] >> 4 | r[2] << 4) & 63] += 1
        histo[(r[2] >> 2) & 63] += 1
        histo[r[3] & 63] += 1
        histo[(r[3] >> 6 | r[4] << 2) & 63] += 1
        histo[(r[4] >> 4 | r[5] << 4) & 63] += 1
        histo[(r[5] >> 2) & 63] += 1
        histo[r[6] & 63] += 1
        histo[(r[6] >> 6 | r[7] << 2) & 63] += 1
        histo[(r[7] >> 4 | r[8] << 4) & 63] += 1
        histo[(r[8] >> 2) & 63] += 1
        histo[r[9] & 63] += 1
        histo[(r[9] >> 6 | r[10] << 2) & 63] += 1
        histo[(r[10] >> 4 | r[11] << 4) & 63] += 1
        histo[(r[11] >> 2) & 63] += 1
        r += 12


# ------------------------------------------------------------ sparse opcodes

cdef inline bint is_zero(uint8_t b) noexcept nogil:
    return (b & 0xc0) == 0

cdef inline bint is_xzero(uint8_t b) noexcept nogil:
    return (b & 0xc0) == 0x40

cdef inline bint is_val(uint8_t b) noexcept nogil:
    return (b & 0x80) != 0

cdef inline int zero_len(uint8_t b) noexcept nogil:
    return (b & 0x3f) + 1

cdef inline int xzero_len(uint8_t b0, uint8_t b1) noexcept nogil:
    return (((b0 & 0x3f) << 8) | b1) + 1

cdef inline int val_value(uint8_t b) noexcept nogil:
    return ((b >> 2) & 0x1f) + 1

cdef inline int val_len(uint8_t b) noexcept nogil:
    return (b & 0x3) + 1

cdef inline uint8_t val_op(int value, int length) noexcept nogil:
    return <uint8_t>((((value - 1) << 2) | (length - 1)) | 0x80)


cdef inline uint8_t next_byte(const uint8_t *p, const uint8_t *end, uint8_t term) noexcept nogil:
    """The second byte of an XZERO opcode; the terminator past the end."""
    return p[1] if p + 1 < end else term


cdef int sparse_walk(const uint8_t *p, const uint8_t *end, uint8_t term, int *histo, uint8_t *raw,
                     uint8_t *dense) noexcept nogil:
    """Decodes the sparse opcodes in [p, end) (term: the byte after end):
    counts values into histo, raises raw[i] to each register's value, or
    writes registers into dense (each may be NULL). Returns 0 if the opcodes
    cover exactly 16384 registers, -1 if not (a corrupt value)."""
    cdef int idx = 0, runlen, regval, k
    while p < end:
        if is_zero(p[0]):
            runlen = zero_len(p[0])
            if runlen + idx > HLL_REGISTERS:
                return -1
            if histo != NULL:
                histo[0] += runlen
            idx += runlen
            p += 1
        elif is_xzero(p[0]):
            runlen = xzero_len(p[0], next_byte(p, end, term))
            if runlen + idx > HLL_REGISTERS:
                return -1
            if histo != NULL:
                histo[0] += runlen
            idx += runlen
            p += 2
        else:
            runlen = val_len(p[0])
            regval = val_value(p[0])
            if runlen + idx > HLL_REGISTERS:
                return -1
            if histo != NULL:
                histo[regval] += runlen
            if raw != NULL:
                for k in range(idx, idx + runlen):
                    if regval > raw[k]:
                        raw[k] = <uint8_t>regval
            if dense != NULL:
                for k in range(idx, idx + runlen):
                    dense_put(dense, k, regval)
            idx += runlen
            p += 1
    return 0 if idx == HLL_REGISTERS else -1


# -------------------------------------------------------- the estimator

cdef double hll_sigma(double x) noexcept nogil:
    cdef double z_prime, y = 1, z = x
    if x == 1.0:
        return INFINITY
    while True:
        x *= x
        z_prime = z
        z += x * y
        y += y
        if z_prime == z:
            return z


cdef double hll_tau(double x) noexcept nogil:
    cdef double z_prime, y = 1.0, z = 1 - x, t
    if x == 0.0 or x == 1.0:
        return 0.0
    while True:
        x = sqrt(x)
        z_prime = z
        y *= 0.5
        t = 1 - x
        z -= t * t * y      # pow(1 - x, 2) * y, which compilers fold to this
        if z_prime == z:
            return z / 3


cdef uint64_t estimate(const int *histo) noexcept nogil:
    """Ertl's improved estimator ("New cardinality estimation algorithms for
    HyperLogLog sketches", arXiv:1702.01284) as Redis computes it. Values
    above Q + 1 (only a hand-made dense value has them) count for nothing."""
    cdef double m = HLL_REGISTERS
    cdef double z = m * hll_tau((m - histo[HLL_Q + 1]) / m)
    cdef int j
    for j in range(HLL_Q, 0, -1):
        z += histo[j]
        z *= 0.5
    z += m * hll_sigma(histo[0] / m)
    return <uint64_t><double>llroundl(HLL_ALPHA_INF * m * m / z)


# ----------------------------------------------------- a value being changed

cdef struct HBuf:
    uint8_t *p          # the whole value, header included
    Py_ssize_t len
    Py_ssize_t cap      # always > len: p[len] is the terminator byte


cdef int hbuf_load(HBuf *b, object value) except -1:
    cdef Py_ssize_t n
    cdef const uint8_t *src = buffer_of(value, &n)
    b.cap = n + 64
    b.p = <uint8_t *>malloc(b.cap)
    if b.p == NULL:
        raise MemoryError()
    memcpy(b.p, src, n)
    memset(b.p + n, 0, b.cap - n)
    b.len = n
    return 0


cdef int hbuf_reserve(HBuf *b, Py_ssize_t extra) except -1:
    """Room for extra more bytes plus the terminator."""
    cdef Py_ssize_t want = b.len + extra + 1
    cdef uint8_t *np
    if want <= b.cap:
        return 0
    want = max(want, b.cap * 2)
    np = <uint8_t *>realloc(b.p, want)
    if np == NULL:
        raise MemoryError()
    memset(np + b.cap, 0, want - b.cap)
    b.p = np
    b.cap = want
    return 0


cdef object hbuf_take(HBuf *b):
    """The buffer as a new bytearray; frees it."""
    cdef object out = PyByteArray_FromStringAndSize(<char *>b.p, b.len)
    free(b.p)
    b.p = NULL
    return out


cdef int hbuf_to_dense(HBuf *b) noexcept nogil:
    """Converts a sparse value to dense in place (header copied, encoding
    changed, cached cardinality kept). -1 if the sparse code is corrupt, the
    value then unchanged; -2 if out of memory."""
    cdef uint8_t *dense
    if b.p[4] == HLL_DENSE:
        return 0
    dense = <uint8_t *>calloc(HLL_DENSE_SIZE + 1, 1)
    if dense == NULL:
        return -2
    memcpy(dense, b.p, HLL_HDR_SIZE)
    dense[4] = HLL_DENSE
    if sparse_walk(b.p + HLL_HDR_SIZE, b.p + b.len, b.p[b.len], NULL, NULL, dense + HLL_HDR_SIZE) < 0:
        free(dense)
        return -1
    free(b.p)
    b.p = dense
    b.len = HLL_DENSE_SIZE
    b.cap = HLL_DENSE_SIZE + 1
    return 0


cdef inline void sds_set_len(HBuf *b, Py_ssize_t delta) noexcept nogil:
    """sdsIncrLen: moves the end and writes a terminator there."""
    b.len += delta
    b.p[b.len] = 0


cdef int sparse_set(HBuf *b, long index, int count, long long max_bytes) except -2:
    """Raises register index to count in a sparse value, Redis's way: 1 if it
    changed (the cached cardinality is then invalidated), 0 if not, -1 if the
    value is corrupt. Promotes the value to dense when count does not fit a
    VAL opcode or the new code would pass max_bytes."""
    cdef uint8_t *sparse
    cdef uint8_t *p
    cdef uint8_t *end
    cdef uint8_t *prev
    cdef uint8_t *nxt
    cdef long first = 0, span = 0, oplen, runlen = 0, last
    cdef bint zero = False, xzero = False, val = False
    cdef uint8_t seq[5]
    cdef int n = 0, length, curval, seqlen, oldlen, deltalen

    if count > SPARSE_VAL_MAX_VALUE:
        return promote_and_set(b, index, count)
    # the worst split (XZERO -> XZERO VAL XZERO) adds 3 bytes
    hbuf_reserve(b, 3)

    # Step 1: find the opcode covering the register.
    sparse = p = b.p + HLL_HDR_SIZE
    end = b.p + b.len
    prev = NULL
    while p < end:
        oplen = 1
        if is_zero(p[0]):
            span = zero_len(p[0])
        elif is_val(p[0]):
            span = val_len(p[0])
        else:
            span = xzero_len(p[0], p[1])     # p[1] may be the terminator
            oplen = 2
        if index <= first + span - 1:
            break
        prev = p
        p += oplen
        first += span
    if span == 0 or p >= end:
        return -1
    nxt = p + 2 if is_xzero(p[0]) else p + 1
    if nxt >= end:
        nxt = NULL
    if is_zero(p[0]):
        zero = True
        runlen = zero_len(p[0])
    elif is_xzero(p[0]):
        xzero = True
        runlen = xzero_len(p[0], p[1])
    else:
        val = True
        runlen = val_len(p[0])

    # Step 2: the cases handled in place.
    if val:
        if val_value(p[0]) >= count:
            return 0
        if runlen == 1:
            p[0] = val_op(count, 1)
            return merge_adjacent(b, prev, sparse)
    if zero and runlen == 1:
        p[0] = val_op(count, 1)
        return merge_adjacent(b, prev, sparse)

    # The general case: split the opcode into up to three.
    last = first + span - 1
    if zero or xzero:
        if index != first:
            length = index - first
            if length > SPARSE_ZERO_MAX_LEN:
                seq[n] = <uint8_t>(((length - 1) >> 8) | 0x40)
                seq[n + 1] = <uint8_t>((length - 1) & 0xff)
                n += 2
            else:
                seq[n] = <uint8_t>(length - 1)
                n += 1
        seq[n] = val_op(count, 1)
        n += 1
        if index != last:
            length = last - index
            if length > SPARSE_ZERO_MAX_LEN:
                seq[n] = <uint8_t>(((length - 1) >> 8) | 0x40)
                seq[n + 1] = <uint8_t>((length - 1) & 0xff)
                n += 2
            else:
                seq[n] = <uint8_t>(length - 1)
                n += 1
    else:
        curval = val_value(p[0])
        if index != first:
            seq[n] = val_op(curval, index - first)
            n += 1
        seq[n] = val_op(count, 1)
        n += 1
        if index != last:
            seq[n] = val_op(curval, last - index)
            n += 1

    # Step 3: put the new sequence in place of the old opcode.
    seqlen = n
    oldlen = 2 if xzero else 1
    deltalen = seqlen - oldlen
    if deltalen > 0 and b.len + deltalen > max_bytes:
        return promote_and_set(b, index, count)
    if deltalen and nxt != NULL:
        memmove(nxt + deltalen, nxt, end - nxt)
    sds_set_len(b, deltalen)
    memcpy(p, seq, seqlen)
    return merge_adjacent(b, prev, sparse)


cdef int merge_adjacent(HBuf *b, uint8_t *prev, uint8_t *sparse) noexcept nogil:
    """Step 4: merges neighbouring VAL opcodes of equal value, scanning five
    opcodes from the one before the change; invalidates the cache. Returns 1."""
    cdef uint8_t *p = prev if prev != NULL else sparse
    cdef uint8_t *end = b.p + b.len
    cdef int scanlen = 5, v1, v2, length
    while p < end:
        if scanlen == 0:
            break
        scanlen -= 1
        if is_xzero(p[0]):
            p += 2
            continue
        elif is_zero(p[0]):
            p += 1
            continue
        if p + 1 < end and is_val(p[1]):
            v1 = val_value(p[0])
            v2 = val_value(p[1])
            if v1 == v2:
                length = val_len(p[0]) + val_len(p[1])
                if length <= SPARSE_VAL_MAX_LEN:
                    p[1] = val_op(v1, length)
                    memmove(p, p + 1, end - p)
                    sds_set_len(b, -1)
                    end -= 1
                    continue
        p += 1
    b.p[15] |= 0x80
    return 1


cdef int promote_and_set(HBuf *b, long index, int count) except -2:
    cdef int r = hbuf_to_dense(b)
    if r == -2:
        raise MemoryError()
    if r < 0:
        return -1
    # a promotion always happens for a register that needs raising
    dense_set(b.p + HLL_HDR_SIZE, index, count)
    return 1


cdef int hbuf_add(HBuf *b, const uint8_t *ele, Py_ssize_t n, long long max_bytes) except -2:
    cdef long index
    cdef int count = pat_len(ele, n, &index)
    if b.p[4] == HLL_DENSE:
        return dense_set(b.p + HLL_HDR_SIZE, index, count)
    return sparse_set(b, index, count, max_bytes)


# ------------------------------------------------------------- the API

def empty():
    """A new, empty HLL: sparse, one XZERO opcode for all 16384 registers,
    cached cardinality 0."""
    cdef uint8_t buf[HLL_HDR_SIZE + 2]
    memset(buf, 0, sizeof(buf))
    memcpy(buf, b"HYLL", 4)
    buf[4] = HLL_SPARSE
    buf[16] = 0x40 | ((HLL_REGISTERS - 1) >> 8)
    buf[17] = (HLL_REGISTERS - 1) & 0xff
    return PyByteArray_FromStringAndSize(<char *>buf, sizeof(buf))


def is_hll(value):
    """Whether a string value passes Redis's HLL checks: at least a header,
    the magic, a known encoding, and the exact size if dense. The sparse code
    is only checked when it is read."""
    cdef Py_ssize_t n
    cdef const uint8_t *p = buffer_of(value, &n)
    if n < HLL_HDR_SIZE or p[0] != b'H' or p[1] != b'Y' or p[2] != b'L' or p[3] != b'L':
        return False
    if p[4] > HLL_SPARSE:
        return False
    return p[4] != HLL_DENSE or n == HLL_DENSE_SIZE


def is_dense(value):
    cdef Py_ssize_t n
    cdef const uint8_t *p = buffer_of(value, &n)
    return n > 4 and p[4] == HLL_DENSE


def invalidate(bytearray value):
    """Marks the cached cardinality stale (in place)."""
    (<uint8_t *>PyByteArray_AS_STRING(value))[15] |= 0x80


def add(object value, list elements, long long max_bytes):
    """PFADD's register work on a valid HLL value (bytes or bytearray).

    Returns (changed, new_value): changed counts the elements that raised a
    register, or is -1 when the sparse code proved corrupt; new_value is a
    new bytearray (a dense bytearray is changed in place and returned), and
    after an error it holds what was changed before, as Valkey leaves it."""
    cdef Py_ssize_t n, i
    cdef const uint8_t *ele
    cdef uint8_t *regs
    cdef long index
    cdef int count, r
    cdef long long changed = 0
    cdef HBuf b
    if type(value) is bytearray and is_dense(value):
        regs = <uint8_t *>PyByteArray_AS_STRING(value) + HLL_HDR_SIZE
        for i in range(len(elements)):
            ele = buffer_of(elements[i], &n)
            count = pat_len(ele, n, &index)
            changed += dense_set(regs, index, count)
        return changed, value
    hbuf_load(&b, value)
    try:
        for i in range(len(elements)):
            ele = buffer_of(elements[i], &n)
            r = hbuf_add(&b, ele, n, max_bytes)
            if r < 0:
                changed = -1
                break
            changed += r
    except BaseException:
        free(b.p)
        raise
    return changed, hbuf_take(&b)


def cardinality(bytearray value):
    """PFCOUNT of one valid HLL: (cardinality, recomputed). A stale cache is
    recomputed and written back into the header (in place); (-1, False) if
    the sparse code is corrupt."""
    cdef uint8_t *p = <uint8_t *>PyByteArray_AS_STRING(value)
    cdef Py_ssize_t n = PyByteArray_GET_SIZE(value)
    cdef int histo[64]
    cdef uint64_t card = 0
    cdef int j
    if not (p[15] & 0x80):
        for j in range(8):
            card |= (<uint64_t>p[8 + j]) << (8 * j)
        return card, False
    memset(histo, 0, sizeof(histo))
    if p[4] == HLL_DENSE:
        dense_histogram(p + HLL_HDR_SIZE, histo)
    elif sparse_walk(p + HLL_HDR_SIZE, p + n, 0, histo, NULL, NULL) < 0:
        return -1, False
    card = estimate(histo)
    for j in range(8):
        p[8 + j] = (card >> (8 * j)) & 0xff
    return card, True


def count(value):
    """The estimate from an HLL's registers, ignoring (and not touching) the
    cached value; -1 if the sparse code is corrupt."""
    cdef Py_ssize_t n
    cdef const uint8_t *p = buffer_of(value, &n)
    cdef int histo[64]
    memset(histo, 0, sizeof(histo))
    if p[4] == HLL_DENSE:
        dense_histogram(p + HLL_HDR_SIZE, histo)
    elif sparse_walk(p + HLL_HDR_SIZE, p + n, 0, histo, NULL, NULL) < 0:
        return -1
    return estimate(histo)


def new_raw():
    """16384 one-byte registers, all zero: the union being built by a
    multi-key PFCOUNT or a PFMERGE."""
    return bytearray(HLL_REGISTERS)


def merge(bytearray raw, value):
    """raw[i] = max(raw[i], register i of value). False if value's sparse
    code is corrupt (raw may then be partly merged)."""
    cdef uint8_t *r = <uint8_t *>PyByteArray_AS_STRING(raw)
    cdef Py_ssize_t n
    cdef const uint8_t *p = buffer_of(value, &n)
    cdef int i, v
    if PyByteArray_GET_SIZE(raw) != HLL_REGISTERS:
        raise ValueError("raw registers must be 16384 bytes")
    if p[4] == HLL_DENSE:
        for i in range(HLL_REGISTERS):
            v = dense_get(p + HLL_HDR_SIZE, i)
            if v > r[i]:
                r[i] = <uint8_t>v
        return True
    return sparse_walk(p + HLL_HDR_SIZE, p + n, 0, NULL, r, NULL) == 0


def raw_count(bytearray raw):
    """The estimate over raw (one byte per register) registers."""
    cdef const uint8_t *r = <const uint8_t *>PyByteArray_AS_STRING(raw)
    cdef int histo[64]
    cdef int i
    if PyByteArray_GET_SIZE(raw) != HLL_REGISTERS:
        raise ValueError("raw registers must be 16384 bytes")
    memset(histo, 0, sizeof(histo))
    for i in range(HLL_REGISTERS):
        histo[r[i] & 63] += 1
    return estimate(histo)


def store_merged(object dest, bytearray raw, bint use_dense, long long max_bytes):
    """PFMERGE's write: the destination HLL (valid) raised to the registers
    in raw, dense if use_dense (every register then set from raw), else set
    register by register through the sparse code (which may promote). The
    cache is invalidated. Returns a new bytearray, or None if dest's sparse
    code is corrupt."""
    cdef const uint8_t *r = <const uint8_t *>PyByteArray_AS_STRING(raw)
    cdef HBuf b
    cdef int j, rc
    if PyByteArray_GET_SIZE(raw) != HLL_REGISTERS:
        raise ValueError("raw registers must be 16384 bytes")
    hbuf_load(&b, dest)
    try:
        if use_dense:
            rc = hbuf_to_dense(&b)
            if rc == -2:
                raise MemoryError()
            if rc < 0:
                free(b.p)
                return None
            for j in range(HLL_REGISTERS):
                dense_put(b.p + HLL_HDR_SIZE, j, r[j])
        else:
            for j in range(HLL_REGISTERS):
                if r[j] == 0:
                    continue
                if b.p[4] == HLL_DENSE:
                    dense_set(b.p + HLL_HDR_SIZE, j, r[j])
                else:
                    sparse_set(&b, j, r[j], max_bytes)
    except BaseException:
        free(b.p)
        raise
    b.p[15] |= 0x80
    return hbuf_take(&b)


def to_dense(value):
    """A sparse HLL converted to dense (header and cached cardinality kept)
    as a new bytearray; None if its sparse code is corrupt."""
    cdef HBuf b
    cdef int rc
    hbuf_load(&b, value)
    rc = hbuf_to_dense(&b)
    if rc < 0:
        free(b.p)
        if rc == -2:
            raise MemoryError()
        return None
    return hbuf_take(&b)


def registers(value):
    """The 16384 register values of a dense HLL, as a list."""
    cdef Py_ssize_t n
    cdef const uint8_t *p = buffer_of(value, &n)
    cdef int i
    if n != HLL_DENSE_SIZE or p[4] != HLL_DENSE:
        raise ValueError("not a dense HLL")
    return [dense_get(p + HLL_HDR_SIZE, i) for i in range(HLL_REGISTERS)]


def decode(value):
    """PFDEBUG DECODE: the sparse opcodes as "z:<len>", "Z:<len>" and
    "v:<value>,<len>", space separated. Reads whatever the bytes say, corrupt
    or not."""
    cdef Py_ssize_t n
    cdef const uint8_t *p = buffer_of(value, &n)
    cdef const uint8_t *end = p + n
    parts = []
    p += HLL_HDR_SIZE
    while p < end:
        if is_zero(p[0]):
            parts.append(b"z:%d" % zero_len(p[0]))
            p += 1
        elif is_xzero(p[0]):
            parts.append(b"Z:%d" % xzero_len(p[0], next_byte(p, end, 0)))
            p += 2
        else:
            parts.append(b"v:%d,%d" % (val_value(p[0]), val_len(p[0])))
            p += 1
    return b" ".join(parts)


def selftest(long long max_bytes):
    """PFSELFTEST: register access over random values, then 10 million
    elements added to a dense and a sparse HLL whose estimates must agree and
    stay within six standard errors at every power of ten. None if all is
    well, else the failure text (after "ERR ")."""
    cdef uint8_t *dense = <uint8_t *>calloc(HLL_DENSE_SIZE + 1, 1)
    cdef uint8_t *regs
    cdef uint8_t bytecounters[HLL_REGISTERS]
    cdef int i
    cdef unsigned int r, v
    cdef int64_t j
    cdef HBuf b
    cdef double relerr = 1.04 / sqrt(HLL_REGISTERS)
    cdef int64_t checkpoint = 1, abserr
    cdef uint64_t seed, ele, maxerr
    cdef int histo[64]
    cdef uint64_t est
    if dense == NULL:
        raise MemoryError()
    b.p = NULL
    regs = dense + HLL_HDR_SIZE
    try:
        memcpy(dense, b"HYLL", 4)
        for j in range(1000):
            for i in range(HLL_REGISTERS):
                r = rand() & HLL_REGISTER_MAX
                bytecounters[i] = r
                dense_put(regs, i, r)
            for i in range(HLL_REGISTERS):
                v = dense_get(regs, i)
                if v != bytecounters[i]:
                    return "TESTFAILED Register %d should be %d but is %d" % (i, bytecounters[i], v)
        memset(regs, 0, HLL_REGISTER_BYTES)
        hbuf_load(&b, empty())
        seed = <uint64_t>rand() | (<uint64_t>rand()) << 32
        for j in range(1, 10000001):
            ele = j ^ seed
            hbuf_add_dense(regs, <uint8_t *>&ele)
            hbuf_add(&b, <uint8_t *>&ele, 8, max_bytes)
            if j == checkpoint:
                if j < max_bytes // 2 and b.p[4] != HLL_SPARSE:
                    return "TESTFAILED sparse encoding not used"
                memset(histo, 0, sizeof(histo))
                dense_histogram(regs, histo)
                est = estimate(histo)
                if est != _count_hbuf(&b):
                    return "TESTFAILED dense/sparse disagree"
                abserr = checkpoint - <int64_t>est
                maxerr = <uint64_t>ceil(relerr * 6 * checkpoint)
                if j == 10:
                    maxerr = 1
                if abserr < 0:
                    abserr = -abserr
                if abserr > <int64_t>maxerr:
                    return "TESTFAILED Too big error. card:%d abserr:%d" % (checkpoint, abserr)
                checkpoint *= 10
        return None
    finally:
        free(dense)
        if b.p != NULL:
            free(b.p)


cdef inline void hbuf_add_dense(uint8_t *regs, const uint8_t *ele8) noexcept nogil:
    cdef long index
    cdef int count = pat_len(ele8, 8, &index)
    dense_set(regs, index, count)


cdef uint64_t _count_hbuf(HBuf *b) noexcept nogil:
    cdef int histo[64]
    memset(histo, 0, sizeof(histo))
    if b.p[4] == HLL_DENSE:
        dense_histogram(b.p + HLL_HDR_SIZE, histo)
    else:
        sparse_walk(b.p + HLL_HDR_SIZE, b.p + b.len, b.p[b.len], histo, NULL, NULL)
    return estimate(histo)
