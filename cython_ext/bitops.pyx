"""Bit work over string values (SETBIT GETBIT BITCOUNT BITPOS BITOP BITFIELD).

This module owns the loops that look at bits: population count, the search
for the first set or clear bit, the bitwise operations of BITOP over whole
buffers, and BITFIELD's reads and writes of integers of 1 to 64 bits at any
bit offset with Redis's wrap/sat/fail overflow arithmetic. It does no
argument parsing and knows nothing about keys: shardkv/commands/bitmaps.py
turns commands into calls to these functions.

Bit numbering is Redis's: bit 0 is the most significant bit of byte 0, so
an integer stored at a byte-aligned offset reads as big endian. Buffers are
bytes (read only) or bytearray (written in place; the caller sizes it first).
Bytes past the end of a buffer read as zeros.

Popcount runs over 64-bit words with __builtin_popcountll; on x86 a second
copy of the loop is compiled for the POPCNT instruction and chosen at import
when the CPU has it (the default x86-64 target does not assume it).
"""

from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_FromStringAndSize, PyByteArray_GET_SIZE
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport calloc, free
from libc.string cimport memcpy, memset

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>

    static inline uint64_t skv_load64(const unsigned char *p) {
        uint64_t w;
        memcpy(&w, p, 8);
        return w;
    }

    static inline void skv_store64(unsigned char *p, uint64_t w) {
        memcpy(p, &w, 8);
    }

    /* Four independent sums so that the popcounts of a 32-byte block do not
       wait on each other. */
    #define SKV_POPCOUNT_BODY                                               \\
        uint64_t c0 = 0, c1 = 0, c2 = 0, c3 = 0;                            \\
        size_t i = 0;                                                       \\
        for (; i + 32 <= n; i += 32) {                                      \\
            c0 += (uint64_t)__builtin_popcountll(skv_load64(p + i));        \\
            c1 += (uint64_t)__builtin_popcountll(skv_load64(p + i + 8));    \\
            c2 += (uint64_t)__builtin_popcountll(skv_load64(p + i + 16));   \\
            c3 += (uint64_t)__builtin_popcountll(skv_load64(p + i + 24));   \\
        }                                                                   \\
        for (; i + 8 <= n; i += 8)                                          \\
            c0 += (uint64_t)__builtin_popcountll(skv_load64(p + i));        \\
        for (; i < n; i++)                                                  \\
            c0 += (uint64_t)__builtin_popcount(p[i]);                       \\
        return c0 + c1 + c2 + c3;

    static uint64_t skv_popcount_generic(const unsigned char *p, size_t n) {
        SKV_POPCOUNT_BODY
    }

    #if defined(__GNUC__) && defined(__x86_64__)
    __attribute__((target("popcnt")))
    static uint64_t skv_popcount_popcnt(const unsigned char *p, size_t n) {
        SKV_POPCOUNT_BODY
    }
    #endif

    static uint64_t (*skv_popcount_impl)(const unsigned char *, size_t) = skv_popcount_generic;

    /* Returns 1 if the POPCNT loop was chosen. */
    static int skv_popcount_setup(void) {
    #if defined(__GNUC__) && defined(__x86_64__)
        __builtin_cpu_init();
        if (__builtin_cpu_supports("popcnt")) {
            skv_popcount_impl = skv_popcount_popcnt;
            return 1;
        }
    #endif
        return 0;
    }

    static inline uint64_t skv_popcount(const unsigned char *p, size_t n) {
        return skv_popcount_impl(p, n);
    }

    static inline int skv_popcount8(unsigned int x) {
        return __builtin_popcount(x & 0xffu);
    }

    /* Leading zeros of a nonzero byte. */
    static inline int skv_clz8(unsigned int x) {
        return __builtin_clz(x & 0xffu) - 24;
    }
    """
    uint64_t skv_load64(const unsigned char *p) nogil
    void skv_store64(unsigned char *p, uint64_t w) nogil
    uint64_t skv_popcount(const unsigned char *p, size_t n) nogil
    int skv_popcount_setup() nogil
    int skv_popcount8(unsigned int x) nogil
    int skv_clz8(unsigned int x) nogil

# BITOP operations (the values are ours; the command module maps names)
cdef enum:
    C_AND = 0
    C_OR = 1
    C_XOR = 2
    C_NOT = 3
    C_DIFF = 4
    C_DIFF1 = 5
    C_ANDOR = 6
    C_ONE = 7

OP_AND = C_AND
OP_OR = C_OR
OP_XOR = C_XOR
OP_NOT = C_NOT
OP_DIFF = C_DIFF
OP_DIFF1 = C_DIFF1
OP_ANDOR = C_ANDOR
OP_ONE = C_ONE

# BITFIELD overflow behaviours and opcodes
OVERFLOW_WRAP = 0
OVERFLOW_SAT = 1
OVERFLOW_FAIL = 2
BF_GET = 0
BF_SET = 1
BF_INCRBY = 2

# True when the POPCNT instruction is used (reported for benchmarks)
HARDWARE_POPCOUNT = bool(skv_popcount_setup())


# ---------------------------------------------------------------- buffers

cdef inline const unsigned char *read_ptr(object v, Py_ssize_t *n) except NULL:
    """The bytes of a bytes or bytearray value and its length."""
    if type(v) is bytes:
        n[0] = PyBytes_GET_SIZE(v)
        return <const unsigned char *>PyBytes_AS_STRING(v)
    if type(v) is bytearray:
        n[0] = PyByteArray_GET_SIZE(v)
        return <const unsigned char *>PyByteArray_AS_STRING(v)
    raise TypeError(f"expected bytes or bytearray, not {type(v).__name__}")


cdef inline unsigned char *write_ptr(object v, Py_ssize_t *n) except NULL:
    if type(v) is not bytearray:
        raise TypeError(f"expected bytearray, not {type(v).__name__}")
    n[0] = PyByteArray_GET_SIZE(v)
    return <unsigned char *>PyByteArray_AS_STRING(v)


# ---------------------------------------------------------------- counting

def popcount(v):
    """Number of set bits in the whole buffer."""
    cdef Py_ssize_t n
    cdef const unsigned char *p = read_ptr(v, &n)
    return skv_popcount(p, <size_t>n)


cdef uint64_t count_range(const unsigned char *p, uint64_t start, uint64_t end) noexcept nogil:
    """Set bits in the inclusive bit range [start, end] (end >= start)."""
    cdef uint64_t sb = start >> 3
    cdef uint64_t eb = end >> 3
    cdef unsigned int first = 0xffu >> (start & 7)
    cdef unsigned int last = (0xffu << (7 - (end & 7))) & 0xffu
    if sb == eb:
        return skv_popcount8(p[sb] & first & last)
    return (skv_popcount8(p[sb] & first) + skv_popcount(p + sb + 1, eb - sb - 1)
            + skv_popcount8(p[eb] & last))


def bitcount(v, long long start, long long end):
    """Set bits of v in the inclusive bit range [start, end]; 0 when the
    range is empty (start > end). The range must lie inside the buffer."""
    cdef Py_ssize_t n
    cdef const unsigned char *p = read_ptr(v, &n)
    if start > end:
        return 0
    if start < 0 or end >= <long long>n * 8:
        raise ValueError("bit range outside the buffer")
    return count_range(p, <uint64_t>start, <uint64_t>end)


cdef int64_t find_bit(const unsigned char *p, uint64_t start, uint64_t end, int bit) noexcept nogil:
    """Position of the first bit equal to `bit` in the inclusive bit range
    [start, end], or -1. Whole words are skipped while they hold nothing
    but the other value."""
    cdef unsigned int inv = 0 if bit else 0xffu
    cdef uint64_t winv = 0 if bit else <uint64_t>0xffffffffffffffffULL
    cdef uint64_t b = start >> 3
    cdef uint64_t eb = end >> 3
    cdef unsigned int last = (0xffu << (7 - (end & 7))) & 0xffu
    cdef unsigned int x = ((p[b] ^ inv) & (0xffu >> (start & 7))) & 0xffu
    if b == eb:
        x &= last
        return <int64_t>(b * 8 + skv_clz8(x)) if x else -1
    if x:
        return <int64_t>(b * 8 + skv_clz8(x))
    b += 1
    while b + 8 <= eb:
        if skv_load64(p + b) ^ winv:
            break
        b += 8
    while b < eb:
        x = (p[b] ^ inv) & 0xffu
        if x:
            return <int64_t>(b * 8 + skv_clz8(x))
        b += 1
    x = (p[eb] ^ inv) & last
    return <int64_t>(eb * 8 + skv_clz8(x)) if x else -1


def bitpos(v, int bit, long long start, long long end):
    """Position of the first bit equal to `bit` (0 or 1) in the inclusive
    bit range [start, end] of v, or -1 (also for an empty range)."""
    cdef Py_ssize_t n
    cdef const unsigned char *p = read_ptr(v, &n)
    if start > end:
        return -1
    if start < 0 or end >= <long long>n * 8:
        raise ValueError("bit range outside the buffer")
    return find_bit(p, <uint64_t>start, <uint64_t>end, 1 if bit else 0)


# ---------------------------------------------------------------- single bits

def getbit(v, unsigned long long offset):
    """The bit at offset (0 past the end)."""
    cdef Py_ssize_t n
    cdef const unsigned char *p = read_ptr(v, &n)
    cdef unsigned long long byte = offset >> 3
    if byte >= <unsigned long long>n:
        return 0
    return (p[byte] >> (7 - (offset & 7))) & 1


def setbit(v, unsigned long long offset, int on):
    """Sets the bit at offset of the bytearray v (long enough) to on;
    returns the bit it had."""
    cdef Py_ssize_t n
    cdef unsigned char *p = write_ptr(v, &n)
    cdef unsigned long long byte = offset >> 3
    cdef unsigned int mask = 1u << (7 - (offset & 7))
    cdef int old
    if byte >= <unsigned long long>n:
        raise IndexError("bit offset past the end of the buffer")
    old = 1 if p[byte] & mask else 0
    if on:
        p[byte] |= mask
    else:
        p[byte] &= ~mask
    return old


# ---------------------------------------------------------------- BITOP

cdef inline void or_into(unsigned char *d, const unsigned char *s, size_t n) noexcept nogil:
    cdef size_t i = 0
    while i + 8 <= n:
        skv_store64(d + i, skv_load64(d + i) | skv_load64(s + i))
        i += 8
    while i < n:
        d[i] |= s[i]
        i += 1


def bitop(int op, list sources):
    """BITOP over the sources (bytes, bytearray or None for a missing key,
    which reads as empty): a bytearray as long as the longest source, where
    shorter sources read as zeros.

    AND, OR, XOR: over every source. NOT: the complement of the one source.
    DIFF: bits of the first source set in none of the others. DIFF1: bits
    set in some other source and not in the first. ANDOR: bits of the first
    source set in at least one other. ONE: bits set in exactly one source."""
    cdef Py_ssize_t nsrc = len(sources)
    cdef Py_ssize_t k, ln, maxlen = 0
    cdef size_t i, m
    cdef const unsigned char *s
    cdef unsigned char *r
    cdef unsigned char *t = NULL
    cdef uint64_t a, b, w
    cdef bytearray res
    cdef list ptrs = []
    if nsrc == 0:
        raise ValueError("bitop needs at least one source")
    if op < C_AND or op > C_ONE:
        raise ValueError(f"unknown bitop operation {op}")
    if op == C_NOT and nsrc != 1:
        raise ValueError("NOT takes one source")
    if (op == C_DIFF or op == C_DIFF1 or op == C_ANDOR) and nsrc < 2:
        raise ValueError("DIFF, DIFF1 and ANDOR take two sources or more")
    # Keep the sources referenced and measure them.
    for src in sources:
        if src is None:
            src = b""
        read_ptr(src, &ln)
        ptrs.append(src)
        if ln > maxlen:
            maxlen = ln
    if maxlen == 0:
        return bytearray()
    # Left uninitialized: every byte is written below before it is read.
    res = PyByteArray_FromStringAndSize(NULL, maxlen)
    r = <unsigned char *>PyByteArray_AS_STRING(res)
    m = <size_t>maxlen

    if op == C_DIFF or op == C_DIFF1 or op == C_ANDOR:
        # r: the disjunction of every source but the first; then combined
        # with the first source.
        s = read_ptr(ptrs[1], &ln)
        memcpy(r, s, <size_t>ln)
        memset(r + ln, 0, m - <size_t>ln)
        for k in range(2, nsrc):
            s = read_ptr(ptrs[k], &ln)
            or_into(r, s, <size_t>ln)
        s = read_ptr(ptrs[0], &ln)
        i = 0
        with nogil:
            if op == C_DIFF:
                while i + 8 <= <size_t>ln:
                    skv_store64(r + i, skv_load64(s + i) & ~skv_load64(r + i))
                    i += 8
                while i < <size_t>ln:
                    r[i] = s[i] & ~r[i]
                    i += 1
                memset(r + ln, 0, m - <size_t>ln)
            elif op == C_DIFF1:
                while i + 8 <= <size_t>ln:
                    skv_store64(r + i, ~skv_load64(s + i) & skv_load64(r + i))
                    i += 8
                while i < <size_t>ln:
                    r[i] = ~s[i] & r[i]
                    i += 1
            else:
                while i + 8 <= <size_t>ln:
                    skv_store64(r + i, skv_load64(s + i) & skv_load64(r + i))
                    i += 8
                while i < <size_t>ln:
                    r[i] = s[i] & r[i]
                    i += 1
                memset(r + ln, 0, m - <size_t>ln)
        return res

    s = read_ptr(ptrs[0], &ln)
    memcpy(r, s, <size_t>ln)
    memset(r + ln, 0, m - <size_t>ln)
    if op == C_NOT:
        i = 0
        with nogil:
            while i + 8 <= m:
                skv_store64(r + i, ~skv_load64(r + i))
                i += 8
            while i < m:
                r[i] = ~r[i]
                i += 1
        return res

    if op == C_ONE:
        # t collects the bits seen in two sources or more.
        t = <unsigned char *>calloc(m, 1)
        if t == NULL:
            raise MemoryError()
    for k in range(1, nsrc):
        s = read_ptr(ptrs[k], &ln)
        i = 0
        with nogil:
            if op == C_AND:
                while i + 8 <= <size_t>ln:
                    skv_store64(r + i, skv_load64(r + i) & skv_load64(s + i))
                    i += 8
                while i < <size_t>ln:
                    r[i] &= s[i]
                    i += 1
                memset(r + ln, 0, m - <size_t>ln)
            elif op == C_OR:
                or_into(r, s, <size_t>ln)
            elif op == C_XOR:
                while i + 8 <= <size_t>ln:
                    skv_store64(r + i, skv_load64(r + i) ^ skv_load64(s + i))
                    i += 8
                while i < <size_t>ln:
                    r[i] ^= s[i]
                    i += 1
            else:  # ONE
                while i + 8 <= <size_t>ln:
                    a = skv_load64(r + i)
                    b = skv_load64(s + i)
                    skv_store64(t + i, skv_load64(t + i) | (a & b))
                    skv_store64(r + i, a ^ b)
                    i += 8
                while i < <size_t>ln:
                    t[i] |= r[i] & s[i]
                    r[i] ^= s[i]
                    i += 1
    if op == C_ONE:
        i = 0
        with nogil:
            while i + 8 <= m:
                w = skv_load64(r + i) & ~skv_load64(t + i)
                skv_store64(r + i, w)
                i += 8
            while i < m:
                r[i] &= ~t[i]
                i += 1
        free(t)
    return res


# ---------------------------------------------------------------- BITFIELD

cdef uint64_t read_bits(const unsigned char *p, Py_ssize_t n, uint64_t offset, int bits) noexcept nogil:
    """The `bits` (1..64) bits at offset, most significant first, as an
    unsigned integer; bytes at or past n read as zeros."""
    cdef uint64_t byte = offset >> 3
    cdef unsigned int shift = offset & 7
    cdef uint64_t hi = 0
    cdef unsigned int lo = 0
    cdef int j
    for j in range(8):
        hi <<= 8
        if byte + j < <uint64_t>n:
            hi |= p[byte + j]
    if shift:
        if byte + 8 < <uint64_t>n:
            lo = p[byte + 8]
        hi = (hi << shift) | (lo >> (8 - shift))
    return hi >> (64 - bits)


cdef void write_bits(unsigned char *p, uint64_t offset, int bits, uint64_t value) noexcept nogil:
    """Stores the low `bits` bits of value at offset (the buffer holds them)."""
    cdef int j
    cdef uint64_t byte
    cdef unsigned int bit
    for j in range(bits):
        byte = offset >> 3
        bit = 7 - (offset & 7)
        if (value >> (bits - 1 - j)) & 1:
            p[byte] |= <unsigned char>(1u << bit)
        else:
            p[byte] &= <unsigned char>~(1u << bit)
        offset += 1


cdef inline int64_t sign_extend(uint64_t v, int bits) noexcept nogil:
    if bits < 64 and (v >> (bits - 1)) & 1:
        v |= (<uint64_t>0xffffffffffffffffULL) << bits
    return <int64_t>v


cdef int unsigned_overflow(uint64_t value, int64_t incr, int bits, int owtype,
                           uint64_t *limit) noexcept nogil:
    """Redis's check for value + incr stored in `bits` unsigned bits: 0 if
    it fits, 1 on overflow, -1 on underflow; then *limit is what WRAP or SAT
    store. A value above the maximum counts as an overflow (so SET of a
    negative value to an unsigned field saturates to the maximum)."""
    cdef uint64_t mx = (<uint64_t>0xffffffffffffffffULL) if bits == 64 else ((<uint64_t>1 << bits) - 1)
    cdef int64_t maxincr = <int64_t>(mx - value)
    cdef int64_t minincr = <int64_t>(<uint64_t>0 - value)
    cdef int code = 0
    if value > mx or (incr > 0 and incr > maxincr):
        code = 1
        if owtype == 1:
            limit[0] = mx
    elif incr < 0 and incr < minincr:
        code = -1
        if owtype == 1:
            limit[0] = 0
    else:
        return 0
    if owtype == 0:
        if bits == 64:
            limit[0] = value + <uint64_t>incr
        else:
            limit[0] = (value + <uint64_t>incr) & ((<uint64_t>1 << bits) - 1)
    return code


cdef int signed_overflow(int64_t value, int64_t incr, int bits, int owtype,
                         int64_t *limit) noexcept nogil:
    """The signed counterpart of unsigned_overflow; WRAP keeps the low bits
    and sign-extends them."""
    cdef int64_t mx = 0x7fffffffffffffffLL if bits == 64 else ((<int64_t>1 << (bits - 1)) - 1)
    cdef int64_t mn = -mx - 1
    # computed modulo 2**64, only used where they cannot have wrapped
    cdef int64_t maxincr = <int64_t>(<uint64_t>mx - <uint64_t>value)
    cdef int64_t minincr = <int64_t>(<uint64_t>mn - <uint64_t>value)
    cdef int code = 0
    cdef uint64_t c
    if value > mx or (bits != 64 and incr > maxincr) or (value >= 0 and incr > 0 and incr > maxincr):
        code = 1
        if owtype == 1:
            limit[0] = mx
    elif value < mn or (bits != 64 and incr < minincr) or (value < 0 and incr < 0 and incr < minincr):
        code = -1
        if owtype == 1:
            limit[0] = mn
    else:
        return 0
    if owtype == 0:
        c = <uint64_t>value + <uint64_t>incr
        limit[0] = sign_extend(c & ((<uint64_t>0xffffffffffffffffULL) if bits == 64
                                    else ((<uint64_t>1 << bits) - 1)), bits)
    return code


def get_field(v, unsigned long long offset, int bits, bint signed):
    """The integer of `bits` bits at bit offset (zeros past the end)."""
    cdef Py_ssize_t n
    cdef const unsigned char *p
    cdef uint64_t u
    if bits < 1 or bits > 64:
        raise ValueError("bits must be 1..64")
    if v is None:
        return 0
    p = read_ptr(v, &n)
    u = read_bits(p, n, offset, bits)
    return sign_extend(u, bits) if signed else u


def set_field(v, unsigned long long offset, int bits, object value):
    """Writes the low `bits` bits of value (any int in -2**63..2**64-1) at
    bit offset of the bytearray v, which must be long enough."""
    cdef Py_ssize_t n
    cdef unsigned char *p = write_ptr(v, &n)
    cdef uint64_t u = <uint64_t>(value & 0xffffffffffffffff)
    if bits < 1 or bits > 64:
        raise ValueError("bits must be 1..64")
    if ((offset + bits - 1) >> 3) >= <unsigned long long>n:
        raise IndexError("bit field past the end of the buffer")
    write_bits(p, offset, bits, u)


def overflow(long long value, long long incr, int bits, bint signed, int owtype):
    """(code, limit) of Redis's overflow check for value + incr in a field of
    `bits` bits: code 0 (fits), 1 (overflow) or -1 (underflow); limit is the
    value WRAP or SAT would store (None when it fits, or for FAIL). For an
    unsigned field, value is taken modulo 2**64 as Redis does."""
    cdef int64_t slimit = 0
    cdef uint64_t ulimit = 0
    cdef int code
    if signed:
        code = signed_overflow(value, incr, bits, owtype, &slimit)
        return code, (slimit if code and owtype != 2 else None)
    code = unsigned_overflow(<uint64_t>value, incr, bits, owtype, &ulimit)
    return code, (ulimit if code and owtype != 2 else None)


def bitfield(v, list ops, bint grown):
    """Runs BITFIELD's parsed operations in order and returns (replies,
    changes).

    ops: tuples (opcode, offset, bits, signed, value, owtype) with opcode
    BF_GET/BF_SET/BF_INCRBY and owtype OVERFLOW_*. v: for a command with
    writes, the bytearray already grown to hold its farthest written bit
    (grown: whether it was just created or extended); for GET only, bytes,
    bytearray or None. A reply is the field's integer, or None where FAIL
    refused a write. changes counts the writes that changed something (every
    write counts when the value was grown), as Redis's dirty counter does."""
    cdef Py_ssize_t n = 0
    cdef const unsigned char *p = NULL
    cdef unsigned char *w = NULL
    cdef list replies = []
    cdef int opcode, bits, owtype, code
    cdef bint signed
    cdef uint64_t offset, uold, unew, ulimit
    cdef int64_t sold, snew, sval, slimit
    cdef long changes = 0
    if v is not None:
        p = read_ptr(v, &n)
    for op in ops:
        opcode, offset, bits, signed, val, owtype = op
        if bits < 1 or bits > 64:
            raise ValueError("bits must be 1..64")
        if opcode == 0:
            u = read_bits(p, n, offset, bits) if p != NULL else 0
            replies.append(sign_extend(u, bits) if signed else u)
            continue
        if w == NULL:
            w = write_ptr(v, &n)
            p = w
        if ((offset + bits - 1) >> 3) >= <uint64_t>n:
            raise IndexError("bit field past the end of the buffer")
        sval = val
        if signed:
            sold = sign_extend(read_bits(p, n, offset, bits), bits)
            slimit = 0
            if opcode == 2:
                code = signed_overflow(sold, sval, bits, owtype, &slimit)
                snew = slimit if code else <int64_t>(<uint64_t>sold + <uint64_t>sval)
                result = snew
            else:
                snew = sval
                code = signed_overflow(snew, 0, bits, owtype, &slimit)
                if code:
                    snew = slimit
                result = sold
            if code and owtype == 2:
                replies.append(None)
                continue
            replies.append(result)
            write_bits(w, offset, bits, <uint64_t>snew)
            if grown or sold != snew:
                changes += 1
        else:
            uold = read_bits(p, n, offset, bits)
            ulimit = 0
            if opcode == 2:
                unew = uold + <uint64_t>sval
                code = unsigned_overflow(uold, sval, bits, owtype, &ulimit)
                if code:
                    unew = ulimit
                result = <int64_t>unew
            else:
                unew = <uint64_t>sval
                code = unsigned_overflow(unew, 0, bits, owtype, &ulimit)
                if code:
                    unew = ulimit
                result = <int64_t>uold
            if code and owtype == 2:
                replies.append(None)
                continue
            replies.append(result)
            write_bits(w, offset, bits, unew)
            if grown or uold != unew:
                changes += 1
    return replies, changes
