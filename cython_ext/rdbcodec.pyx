"""The byte-level pieces of Redis's RDB format, compiled: shardkv._rdbcodec.

This module owns the encodings a snapshot is made of and nothing above them:

* CRC64 as Redis computes it (Jones polynomial 0xad93d23594c935a9,
  reflected input and output, initial value 0, no final xor), which closes
  every RDB file and every DUMP payload;
* LZF compression and decompression (the liblzf stream format: literal runs
  of up to 32 bytes and back references of up to 264 bytes within 8 KB),
  which RDB uses for strings longer than 20 bytes;
* RDB lengths (6, 14, 32 or 64 bits) and strings (plain, small integers as
  INT8/16/32, LZF-compressed);
* listpacks (Redis 7's compact list of strings and integers), intsets and,
  for loading files of older servers, ziplists.

`Writer` builds RDB bytes in a growable C buffer; `Reader` parses them from
a bytes object and raises RdbError on anything malformed: every length is
checked against the bytes that remain before anything is allocated, so a
hostile payload cannot make the server allocate without bound. The record
level (which types, in which order) lives in shardkv/persistence/rdb.py.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE, PyBytes_FromStringAndSize
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE
from libc.stdint cimport int64_t, uint64_t, uint32_t, uint16_t, int16_t, int32_t, int8_t, uint8_t
from libc.stdlib cimport malloc, realloc, free
from libc.string cimport memcpy, memset


class RdbError(ValueError):
    """Malformed RDB data (a truncated file, a bad length, a bad encoding)."""


# ---------------------------------------------------------------- CRC64

cdef uint64_t CRC64_TABLE[8][256]


cdef void _crc64_init():
    cdef uint64_t poly = 0x95ac9329ac4bc9b5ULL   # 0xad93d23594c935a9 bit-reversed
    cdef uint64_t crc
    cdef int i, j
    for i in range(256):
        crc = i
        for j in range(8):
            if crc & 1:
                crc = (crc >> 1) ^ poly
            else:
                crc >>= 1
        CRC64_TABLE[0][i] = crc
    for i in range(256):
        crc = CRC64_TABLE[0][i]
        for j in range(1, 8):
            crc = CRC64_TABLE[0][crc & 0xff] ^ (crc >> 8)
            CRC64_TABLE[j][i] = crc


_crc64_init()


cdef uint64_t crc64_update(uint64_t crc, const unsigned char *p, Py_ssize_t n) nogil:
    """Slice-by-8 over the reflected table: eight bytes per step."""
    cdef uint64_t w
    while n >= 8:
        memcpy(&w, p, 8)          # little-endian hosts only (x86-64, aarch64)
        crc ^= w
        crc = (CRC64_TABLE[7][crc & 0xff] ^ CRC64_TABLE[6][(crc >> 8) & 0xff] ^
               CRC64_TABLE[5][(crc >> 16) & 0xff] ^ CRC64_TABLE[4][(crc >> 24) & 0xff] ^
               CRC64_TABLE[3][(crc >> 32) & 0xff] ^ CRC64_TABLE[2][(crc >> 40) & 0xff] ^
               CRC64_TABLE[1][(crc >> 48) & 0xff] ^ CRC64_TABLE[0][crc >> 56])
        p += 8
        n -= 8
    while n > 0:
        crc = CRC64_TABLE[0][(crc ^ p[0]) & 0xff] ^ (crc >> 8)
        p += 1
        n -= 1
    return crc


def crc64(data, uint64_t crc=0):
    """Redis's CRC64 of data (bytes-like), continuing from crc."""
    cdef const unsigned char[:] view = memoryview(data).cast("B")
    if view.shape[0] == 0:
        return crc
    return crc64_update(crc, &view[0], view.shape[0])


# ---------------------------------------------------------------- LZF

DEF LZF_HLOG = 14
DEF LZF_HSIZE = 16384
DEF LZF_MAX_LIT = 32
DEF LZF_MAX_OFF = 8192
DEF LZF_MAX_REF = 264            # (7 + 255) + 2


cdef Py_ssize_t lzf_compress_raw(const unsigned char *src, Py_ssize_t n,
                                 unsigned char *out, Py_ssize_t out_len) nogil:
    """Compresses n bytes into out; the compressed size, or 0 if it does not
    fit out_len bytes. Greedy matching through a hash of the next 3 bytes."""
    cdef uint32_t htab[LZF_HSIZE]
    cdef Py_ssize_t ip = 0, op = 1, lit = 0, ref, off, length, maxlen
    cdef uint32_t h
    if n == 0:
        return 0
    if out_len < 2:
        return 0
    memset(htab, 0, sizeof(htab))
    # out[op - lit - 1] is the control byte of the literal run being built
    while ip + 2 < n:
        h = ((<uint32_t>src[ip] << 16) | (<uint32_t>src[ip + 1] << 8) | src[ip + 2])
        h = ((h * 2654435761U) >> (32 - LZF_HLOG)) & (LZF_HSIZE - 1)
        ref = <Py_ssize_t>htab[h] - 1
        htab[h] = <uint32_t>(ip + 1)
        off = ip - ref - 1
        if (ref >= 0 and off < LZF_MAX_OFF and src[ref] == src[ip]
                and src[ref + 1] == src[ip + 1] and src[ref + 2] == src[ip + 2]):
            maxlen = n - ip
            if maxlen > LZF_MAX_REF:
                maxlen = LZF_MAX_REF
            length = 3
            while length < maxlen and src[ref + length] == src[ip + length]:
                length += 1
            # close the literal run (drop its control byte if it is empty)
            if op + 3 + 1 >= out_len:
                return 0
            if lit:
                out[op - lit - 1] = <unsigned char>(lit - 1)
            else:
                op -= 1
            length -= 2
            if length < 7:
                out[op] = <unsigned char>((off >> 8) + (length << 5))
                op += 1
            else:
                out[op] = <unsigned char>((off >> 8) + (7 << 5))
                out[op + 1] = <unsigned char>(length - 7)
                op += 2
            out[op] = <unsigned char>(off & 0xff)
            op += 1
            # start a new (empty) literal run
            op += 1
            lit = 0
            ip += length + 2
            # index the positions inside the match (cheaply: the last two)
            if ip + 2 < n:
                for ref in range(ip - 2, ip):
                    h = ((<uint32_t>src[ref] << 16) | (<uint32_t>src[ref + 1] << 8) | src[ref + 2])
                    h = ((h * 2654435761U) >> (32 - LZF_HLOG)) & (LZF_HSIZE - 1)
                    htab[h] = <uint32_t>(ref + 1)
            continue
        if op >= out_len:
            return 0
        out[op] = src[ip]
        op += 1
        ip += 1
        lit += 1
        if lit == LZF_MAX_LIT:
            out[op - lit - 1] = <unsigned char>(LZF_MAX_LIT - 1)
            lit = 0
            op += 1
    while ip < n:
        if op >= out_len:
            return 0
        out[op] = src[ip]
        op += 1
        ip += 1
        lit += 1
        if lit == LZF_MAX_LIT:
            out[op - lit - 1] = <unsigned char>(LZF_MAX_LIT - 1)
            lit = 0
            op += 1
    if lit:
        out[op - lit - 1] = <unsigned char>(lit - 1)
    else:
        op -= 1
    return op


cdef Py_ssize_t lzf_decompress_raw(const unsigned char *src, Py_ssize_t n,
                                   unsigned char *out, Py_ssize_t out_len) nogil:
    """Decompresses n bytes into exactly out_len bytes; -1 on a bad stream."""
    cdef Py_ssize_t ip = 0, op = 0, length, ref
    cdef unsigned int ctrl
    while ip < n:
        ctrl = src[ip]
        ip += 1
        if ctrl < 32:
            length = ctrl + 1
            if op + length > out_len or ip + length > n:
                return -1
            memcpy(out + op, src + ip, length)
            op += length
            ip += length
        else:
            length = ctrl >> 5
            if length == 7:
                if ip >= n:
                    return -1
                length += src[ip]
                ip += 1
            if ip >= n:
                return -1
            ref = op - ((ctrl & 0x1f) << 8) - src[ip] - 1
            ip += 1
            length += 2
            if ref < 0 or op + length > out_len:
                return -1
            # byte by byte: a reference may overlap what it produces
            while length > 0:
                out[op] = out[ref]
                op += 1
                ref += 1
                length -= 1
    return op


def lzf_compress(data):
    """LZF-compressed data, or None when it would not be smaller."""
    cdef bytes b = bytes(data)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(b)
    if n < 4:
        return None
    cdef bytes out = PyBytes_FromStringAndSize(NULL, n)
    cdef Py_ssize_t m = lzf_compress_raw(<const unsigned char *>PyBytes_AS_STRING(b), n,
                                         <unsigned char *>PyBytes_AS_STRING(out), n - 1)
    if m == 0:
        return None
    return out[:m]


def lzf_decompress(data, Py_ssize_t length):
    """The length bytes data decompresses to; RdbError if it does not."""
    cdef bytes b = bytes(data)
    if length < 0:
        raise RdbError("bad LZF length")
    cdef bytes out = PyBytes_FromStringAndSize(NULL, length)
    cdef Py_ssize_t m = lzf_decompress_raw(<const unsigned char *>PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b),
                                           <unsigned char *>PyBytes_AS_STRING(out), length)
    if m != length:
        raise RdbError("Invalid LZF compressed string")
    return out


# ---------------------------------------------------------------- integers in strings

cdef bint parse_int64(const char *p, Py_ssize_t n, int64_t *out) nogil:
    """string2ll's rules: optional '-', digits, no leading zero (but "0"),
    no "-0", no spaces, within 64 bits."""
    cdef uint64_t v = 0, limit
    cdef Py_ssize_t i = 0
    cdef bint neg = False
    if n == 0 or n > 20:
        return False
    if n == 1 and p[0] == c'0':
        out[0] = 0
        return True
    if p[0] == c'-':
        neg = True
        i = 1
        if n == 1:
            return False
    if p[i] < c'1' or p[i] > c'9':
        return False
    while i < n:
        if p[i] < c'0' or p[i] > c'9':
            return False
        if v > (<uint64_t>0xFFFFFFFFFFFFFFFFULL - <uint64_t>(p[i] - c'0')) // 10:
            return False
        v = v * 10 + <uint64_t>(p[i] - c'0')
        i += 1
    if neg:
        limit = (<uint64_t>1) << 63
        if v > limit:
            return False
        out[0] = <int64_t>(0 - v)
    else:
        if v > 0x7FFFFFFFFFFFFFFFULL:
            return False
        out[0] = <int64_t>v
    return True


def string_to_int(data):
    """The integer a listpack would store data as, or None."""
    cdef bytes b = bytes(data)
    cdef int64_t v
    if parse_int64(PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b), &v):
        return v
    return None


# ---------------------------------------------------------------- Writer

cdef class Writer:
    """RDB bytes under construction. `compress` enables LZF for strings
    longer than 20 bytes (rdbcompression). take() returns the bytes written
    since the last take(); the CRC64 of everything written so far is kept."""

    cdef unsigned char *buf
    cdef Py_ssize_t length
    cdef Py_ssize_t cap
    cdef public bint compress
    cdef public bint checksum
    cdef uint64_t crc
    cdef unsigned char *scratch
    cdef Py_ssize_t scratch_cap
    cdef public long long total

    def __cinit__(self, bint compress=True, bint checksum=True):
        self.cap = 65536
        self.buf = <unsigned char *>malloc(self.cap)
        if self.buf == NULL:
            raise MemoryError()
        self.length = 0
        self.compress = compress
        self.checksum = checksum
        self.crc = 0
        self.scratch = NULL
        self.scratch_cap = 0
        self.total = 0

    def __dealloc__(self):
        free(self.buf)
        free(self.scratch)

    cdef int reserve(self, Py_ssize_t n) except -1:
        cdef Py_ssize_t need = self.length + n
        cdef Py_ssize_t cap = self.cap
        cdef unsigned char *p
        if need <= cap:
            return 0
        while cap < need:
            cap *= 2
        p = <unsigned char *>realloc(self.buf, cap)
        if p == NULL:
            raise MemoryError()
        self.buf = p
        self.cap = cap
        return 0

    cdef inline int raw(self, const void *p, Py_ssize_t n) except -1:
        self.reserve(n)
        memcpy(self.buf + self.length, p, n)
        self.length += n
        return 0

    def __len__(self):
        return self.length

    def take(self):
        """The pending bytes (folded into the running CRC64), and a fresh buffer."""
        cdef bytes out = PyBytes_FromStringAndSize(<char *>self.buf, self.length)
        if self.checksum:
            self.crc = crc64_update(self.crc, self.buf, self.length)
        self.total += self.length
        self.length = 0
        return out

    def crc_value(self):
        """The CRC64 of everything taken so far (0 when checksums are off)."""
        return self.crc if self.checksum else 0

    cpdef write_bytes(self, data):
        cdef const unsigned char[:] v = memoryview(data).cast("B")
        if v.shape[0]:
            self.raw(&v[0], v.shape[0])

    cpdef write_byte(self, int b):
        cdef unsigned char c = <unsigned char>b
        self.raw(&c, 1)

    cpdef write_len(self, uint64_t n):
        cdef unsigned char tmp[9]
        cdef uint32_t n32
        cdef int i
        if n < 64:
            tmp[0] = <unsigned char>n
            self.raw(tmp, 1)
        elif n < 16384:
            tmp[0] = <unsigned char>(0x40 | (n >> 8))
            tmp[1] = <unsigned char>(n & 0xff)
            self.raw(tmp, 2)
        elif n <= 0xFFFFFFFFULL:
            tmp[0] = 0x80
            for i in range(4):
                tmp[1 + i] = <unsigned char>((n >> (8 * (3 - i))) & 0xff)
            self.raw(tmp, 5)
        else:
            tmp[0] = 0x81
            for i in range(8):
                tmp[1 + i] = <unsigned char>((n >> (8 * (7 - i))) & 0xff)
            self.raw(tmp, 9)

    cpdef write_ms(self, int64_t ms):
        """A millisecond time: 8 bytes, little endian."""
        self.raw(&ms, 8)

    cpdef write_u64le(self, uint64_t v):
        self.raw(&v, 8)

    cpdef write_double(self, double d):
        """A binary double (ZSET_2 scores): 8 bytes, little endian."""
        self.raw(&d, 8)

    cdef int _string(self, const unsigned char *p, Py_ssize_t n) except -1:
        cdef int64_t v
        cdef unsigned char tmp[5]
        cdef Py_ssize_t m
        if n <= 11 and parse_int64(<const char *>p, n, &v):
            if -128 <= v <= 127:
                tmp[0] = 0xC0
                tmp[1] = <unsigned char>(v & 0xff)
                self.raw(tmp, 2)
                return 0
            if -32768 <= v <= 32767:
                tmp[0] = 0xC1
                tmp[1] = <unsigned char>(v & 0xff)
                tmp[2] = <unsigned char>((v >> 8) & 0xff)
                self.raw(tmp, 3)
                return 0
            if -2147483648 <= v <= 2147483647:
                tmp[0] = 0xC2
                tmp[1] = <unsigned char>(v & 0xff)
                tmp[2] = <unsigned char>((v >> 8) & 0xff)
                tmp[3] = <unsigned char>((v >> 16) & 0xff)
                tmp[4] = <unsigned char>((v >> 24) & 0xff)
                self.raw(tmp, 5)
                return 0
        if self.compress and n > 20:
            if self.scratch_cap < n:
                free(self.scratch)
                self.scratch = <unsigned char *>malloc(n)
                if self.scratch == NULL:
                    self.scratch_cap = 0
                    raise MemoryError()
                self.scratch_cap = n
            with nogil:
                m = lzf_compress_raw(p, n, self.scratch, n - 4)
            if m > 0:
                tmp[0] = 0xC3
                self.raw(tmp, 1)
                self.write_len(m)
                self.write_len(n)
                self.raw(self.scratch, m)
                return 0
        self.write_len(n)
        if n:
            self.raw(p, n)
        return 0

    cpdef write_string(self, s):
        """An RDB string: integer-encoded, LZF-compressed or plain."""
        if type(s) is bytes:
            self._string(<const unsigned char *>PyBytes_AS_STRING(s), PyBytes_GET_SIZE(s))
        elif type(s) is bytearray:
            self._string(<const unsigned char *>PyByteArray_AS_STRING(s), PyByteArray_GET_SIZE(s))
        else:
            s = bytes(s)
            self._string(<const unsigned char *>PyBytes_AS_STRING(s), PyBytes_GET_SIZE(s))

    cpdef write_string_key(self, key, value, int64_t expire_ms):
        """A whole string key: [EXPIRETIME_MS] STRING type, key, value."""
        cdef unsigned char t
        if expire_ms >= 0:
            t = 0xFC
            self.raw(&t, 1)
            self.raw(&expire_ms, 8)
        t = 0
        self.raw(&t, 1)
        self.write_string(key)
        self.write_string(value)

    def write_string_entries(self, list items, get_meta, out_write, Py_ssize_t chunk):
        """The fast path of a snapshot: writes every (key, value) of items
        whose value is a string, with its expiry time from get_meta (None
        when the database has no TTLs), handing full chunks to out_write.
        Returns the (key, value, when) entries of the other values, for the
        caller to write."""
        cdef list rest = []
        cdef object key, value, t
        cdef int64_t when
        for key, value in items:
            when = -1 if get_meta is None else get_meta(key, -1)
            t = type(value)
            if t is bytes or t is bytearray:
                self.write_string_key(key, value, when)
                if self.length >= chunk:
                    out_write(self.take())
            else:
                rest.append((key, value, when))
        return rest

    def write_strings(self, items):
        """Many strings in a row (members of a SET, field/value pairs...)."""
        for s in items:
            self.write_string(s)


# ---------------------------------------------------------------- listpack

cdef inline Py_ssize_t _backlen_size(Py_ssize_t l) nogil:
    if l <= 127:
        return 1
    if l < 16383:
        return 2
    if l < 2097151:
        return 3
    if l < 268435455:
        return 4
    return 5


cdef inline void _put_backlen(unsigned char *p, Py_ssize_t l) noexcept nogil:
    """The entry length written for reading backwards: the last byte holds
    the low 7 bits; every byte but the first has its high bit set."""
    cdef Py_ssize_t k = _backlen_size(l), i
    for i in range(k):
        p[k - 1 - i] = <unsigned char>((l >> (7 * i)) & 127)
    for i in range(k - 1):
        p[i + 1] |= 128
    # the first byte carries the high bits, without the continuation bit


def listpack_encode(entries):
    """A listpack holding entries (bytes-like objects or ints), each stored
    as an integer when it is one (lpStringToInt64's rules)."""
    cdef list items = list(entries)
    cdef Py_ssize_t total = 7, n, enc_len, i
    cdef int64_t v
    cdef list encoded = []
    cdef bytes b
    cdef unsigned char hdr[9]
    cdef unsigned char bl[5]
    cdef const char *p
    parts = []
    for item in items:
        if isinstance(item, int):
            v = item
            is_int = True
        else:
            b = bytes(item)
            p = PyBytes_AS_STRING(b)
            n = PyBytes_GET_SIZE(b)
            is_int = parse_int64(p, n, &v)
        if is_int:
            if 0 <= v <= 127:
                hdr[0] = <unsigned char>v
                enc_len = 1
            elif -4096 <= v <= 4095:
                if v < 0:
                    v = (1 << 13) + v
                hdr[0] = <unsigned char>(0xC0 | (v >> 8))
                hdr[1] = <unsigned char>(v & 0xff)
                enc_len = 2
            elif -32768 <= v <= 32767:
                hdr[0] = 0xF1
                hdr[1] = <unsigned char>(v & 0xff)
                hdr[2] = <unsigned char>((v >> 8) & 0xff)
                enc_len = 3
            elif -8388608 <= v <= 8388607:
                hdr[0] = 0xF2
                for i in range(3):
                    hdr[1 + i] = <unsigned char>((v >> (8 * i)) & 0xff)
                enc_len = 4
            elif -2147483648 <= v <= 2147483647:
                hdr[0] = 0xF3
                for i in range(4):
                    hdr[1 + i] = <unsigned char>((v >> (8 * i)) & 0xff)
                enc_len = 5
            else:
                hdr[0] = 0xF4
                for i in range(8):
                    hdr[1 + i] = <unsigned char>((<uint64_t>v >> (8 * i)) & 0xff)
                enc_len = 9
            _put_backlen(bl, enc_len)
            parts.append(PyBytes_FromStringAndSize(<char *>hdr, enc_len))
            parts.append(PyBytes_FromStringAndSize(<char *>bl, _backlen_size(enc_len)))
            total += enc_len + _backlen_size(enc_len)
            continue
        if n < 64:
            hdr[0] = <unsigned char>(0x80 | n)
            i = 1
        elif n < 4096:
            hdr[0] = <unsigned char>(0xE0 | (n >> 8))
            hdr[1] = <unsigned char>(n & 0xff)
            i = 2
        else:
            hdr[0] = 0xF0
            hdr[1] = <unsigned char>(n & 0xff)
            hdr[2] = <unsigned char>((n >> 8) & 0xff)
            hdr[3] = <unsigned char>((n >> 16) & 0xff)
            hdr[4] = <unsigned char>((n >> 24) & 0xff)
            i = 5
        enc_len = i + n
        _put_backlen(bl, enc_len)
        parts.append(PyBytes_FromStringAndSize(<char *>hdr, i))
        parts.append(b)
        parts.append(PyBytes_FromStringAndSize(<char *>bl, _backlen_size(enc_len)))
        total += enc_len + _backlen_size(enc_len)
    count = len(items)
    head = bytes([total & 0xff, (total >> 8) & 0xff, (total >> 16) & 0xff, (total >> 24) & 0xff,
                  min(count, 65535) & 0xff, (min(count, 65535) >> 8) & 0xff])
    return head + b"".join(parts) + b"\xff"


def listpack_decode(data, Py_ssize_t max_entries=-1):
    """The entries of a listpack, as bytes (integers in decimal). Checks the
    header, every entry against the bytes that remain, each back length and
    the end marker; RdbError on anything else."""
    cdef bytes b = bytes(data)
    cdef const unsigned char *p = <const unsigned char *>PyBytes_AS_STRING(b)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(b)
    cdef Py_ssize_t pos = 6, start, slen, hlen, enc_len, bl, k, i
    cdef uint32_t total
    cdef unsigned int count, c
    cdef int64_t v
    cdef uint64_t u
    cdef list out = []
    if n < 7:
        raise RdbError("listpack too short")
    total = p[0] | (p[1] << 8) | (p[2] << 16) | (<uint32_t>p[3] << 24)
    if total != n:
        raise RdbError("listpack size mismatch")
    count = p[4] | (p[5] << 8)
    while True:
        if pos >= n:
            raise RdbError("listpack without end marker")
        c = p[pos]
        if c == 0xFF:
            if pos != n - 1:
                raise RdbError("listpack end marker before its end")
            break
        start = pos
        slen = -1
        if c < 0x80:
            v = c
            hlen = 1
            slen = -2
        elif c < 0xC0:
            slen = c & 0x3F
            hlen = 1
        elif c < 0xE0:
            if pos + 2 > n:
                raise RdbError("truncated listpack entry")
            u = ((c & 0x1F) << 8) | p[pos + 1]
            v = <int64_t>u
            if u >= 4096:
                v = <int64_t>u - 8192
            hlen = 2
            slen = -2
        elif c < 0xF0:
            if pos + 2 > n:
                raise RdbError("truncated listpack entry")
            slen = ((c & 0x0F) << 8) | p[pos + 1]
            hlen = 2
        elif c == 0xF0:
            if pos + 5 > n:
                raise RdbError("truncated listpack entry")
            slen = p[pos + 1] | (p[pos + 2] << 8) | (p[pos + 3] << 16) | (<Py_ssize_t>p[pos + 4] << 24)
            hlen = 5
        elif 0xF1 <= c <= 0xF4:
            k = (2, 3, 4, 8)[c - 0xF1]
            if pos + 1 + k > n:
                raise RdbError("truncated listpack entry")
            u = 0
            for i in range(k):
                u |= (<uint64_t>p[pos + 1 + i]) << (8 * i)
            if k < 8 and (u >> (8 * k - 1)) & 1:
                u |= (<uint64_t>0xFFFFFFFFFFFFFFFFULL) << (8 * k)
            v = <int64_t>u
            hlen = 1 + k
            slen = -2
        else:
            raise RdbError("bad listpack entry encoding")
        if slen >= 0:
            if slen > n - pos - hlen:
                raise RdbError("listpack entry past the end")
            enc_len = hlen + slen
            out.append(PyBytes_FromStringAndSize(<const char *>p + pos + hlen, slen))
        else:
            enc_len = hlen
            out.append(b"%d" % v)
        pos += enc_len
        bl = _backlen_size(enc_len)
        if pos + bl > n:
            raise RdbError("listpack back length past the end")
        # the back length must read back to the entry's length
        u = 0
        for i in range(bl):
            u = (u << 7) | (p[pos + i] & 127)
        if <Py_ssize_t>u != enc_len:
            raise RdbError("bad listpack back length")
        pos += bl
        if max_entries >= 0 and len(out) > max_entries:
            raise RdbError("listpack has too many entries")
    if count != 65535 and count != len(out):
        raise RdbError("listpack count mismatch")
    return out


# ---------------------------------------------------------------- intset

def intset_encode(values):
    """An intset of the integers (sorted here), at the narrowest width."""
    cdef list vs = sorted(values)
    cdef int width = 2
    if vs and (vs[0] < -2147483648 or vs[len(vs) - 1] > 2147483647):
        width = 8
    elif vs and (vs[0] < -32768 or vs[len(vs) - 1] > 32767):
        width = 4
    parts = [width.to_bytes(4, "little"), len(vs).to_bytes(4, "little")]
    for v in vs:
        parts.append(int(v).to_bytes(width, "little", signed=True))
    return b"".join(parts)


def intset_decode(data):
    """The integers of an intset; RdbError unless its header, size and
    (strictly ascending) order hold."""
    cdef bytes b = bytes(data)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(b)
    if n < 8:
        raise RdbError("intset too short")
    width = int.from_bytes(b[0:4], "little")
    count = int.from_bytes(b[4:8], "little")
    if width not in (2, 4, 8):
        raise RdbError("bad intset encoding")
    if 8 + width * count != n:
        raise RdbError("intset size mismatch")
    out = [int.from_bytes(b[8 + i * width: 8 + (i + 1) * width], "little", signed=True)
           for i in range(count)]
    for i in range(1, count):
        if out[i] <= out[i - 1]:
            raise RdbError("intset not sorted")
    return out


# ---------------------------------------------------------------- ziplist

def ziplist_decode(data):
    """The entries of a ziplist (Redis before 7), as bytes."""
    cdef bytes b = bytes(data)
    cdef const unsigned char *p = <const unsigned char *>PyBytes_AS_STRING(b)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(b), pos = 10, slen, k, i
    cdef unsigned int c
    cdef int64_t v
    cdef uint64_t u
    cdef list out = []
    if n < 11:
        raise RdbError("ziplist too short")
    if (p[0] | (p[1] << 8) | (p[2] << 16) | (<Py_ssize_t>p[3] << 24)) != n:
        raise RdbError("ziplist size mismatch")
    while True:
        if pos >= n:
            raise RdbError("ziplist without end marker")
        if p[pos] == 0xFF:
            break
        # previous entry length: 1 byte, or 0xFE and 4 bytes
        if p[pos] == 0xFE:
            pos += 5
        else:
            pos += 1
        if pos >= n:
            raise RdbError("truncated ziplist entry")
        c = p[pos]
        slen = -1
        if (c >> 6) == 0:
            slen = c & 0x3F
            pos += 1
        elif (c >> 6) == 1:
            if pos + 2 > n:
                raise RdbError("truncated ziplist entry")
            slen = ((c & 0x3F) << 8) | p[pos + 1]
            pos += 2
        elif (c >> 6) == 2:
            if pos + 5 > n:
                raise RdbError("truncated ziplist entry")
            slen = (<Py_ssize_t>p[pos + 1] << 24) | (p[pos + 2] << 16) | (p[pos + 3] << 8) | p[pos + 4]
            pos += 5
        else:
            if c == 0xC0:
                k = 2
            elif c == 0xD0:
                k = 4
            elif c == 0xE0:
                k = 8
            elif c == 0xF0:
                k = 3
            elif c == 0xFE:
                k = 1
            elif 0xF1 <= c <= 0xFD:
                out.append(b"%d" % (c - 0xF1))
                pos += 1
                continue
            else:
                raise RdbError("bad ziplist entry encoding")
            if pos + 1 + k > n:
                raise RdbError("truncated ziplist entry")
            u = 0
            for i in range(k):
                u |= (<uint64_t>p[pos + 1 + i]) << (8 * i)
            if k < 8 and (u >> (8 * k - 1)) & 1:
                u |= (<uint64_t>0xFFFFFFFFFFFFFFFFULL) << (8 * k)
            v = <int64_t>u
            out.append(b"%d" % v)
            pos += 1 + k
            continue
        if slen > n - pos:
            raise RdbError("ziplist entry past the end")
        out.append(PyBytes_FromStringAndSize(<const char *>p + pos, slen))
        pos += slen
    return out


# ---------------------------------------------------------------- Reader

cdef class Reader:
    """Reads RDB records from a bytes object. Every read checks the bytes
    that remain; a short or malformed input raises RdbError."""

    cdef bytes data
    cdef const unsigned char *p
    cdef public Py_ssize_t pos
    cdef Py_ssize_t n

    def __cinit__(self, bytes data, Py_ssize_t pos=0):
        self.data = data
        self.p = <const unsigned char *>PyBytes_AS_STRING(data)
        self.n = PyBytes_GET_SIZE(data)
        self.pos = pos

    @property
    def remaining(self):
        return self.n - self.pos

    cdef inline int need(self, Py_ssize_t k) except -1:
        if k < 0 or k > self.n - self.pos:
            raise RdbError("Unexpected EOF reading RDB file")
        return 0

    cpdef int read_byte(self) except -1:
        self.need(1)
        self.pos += 1
        return self.p[self.pos - 1]

    cpdef bytes read_raw(self, Py_ssize_t k):
        self.need(k)
        self.pos += k
        return PyBytes_FromStringAndSize(<const char *>self.p + self.pos - k, k)

    cdef uint64_t _len(self, bint *encoded) except? 0xFFFFFFFFFFFFFFFF:
        cdef unsigned int c
        cdef uint64_t v = 0
        cdef int i
        self.need(1)
        c = self.p[self.pos]
        self.pos += 1
        encoded[0] = False
        if (c >> 6) == 0:
            return c & 0x3F
        if (c >> 6) == 1:
            self.need(1)
            self.pos += 1
            return ((c & 0x3F) << 8) | self.p[self.pos - 1]
        if (c >> 6) == 3:
            encoded[0] = True
            return c & 0x3F
        if c == 0x80:
            self.need(4)
            for i in range(4):
                v = (v << 8) | self.p[self.pos + i]
            self.pos += 4
            return v
        if c == 0x81:
            self.need(8)
            for i in range(8):
                v = (v << 8) | self.p[self.pos + i]
            self.pos += 8
            return v
        raise RdbError("Unknown length encoding %d in rdbLoadLen()" % c)

    cpdef uint64_t read_len(self) except? 0xFFFFFFFFFFFFFFFF:
        cdef bint enc
        cdef uint64_t v = self._len(&enc)
        if enc:
            raise RdbError("unexpected encoded length")
        return v

    cpdef object read_string(self):
        cdef bint enc
        cdef uint64_t v = self._len(&enc)
        cdef uint64_t clen, ulen
        cdef int64_t iv
        cdef bytes out
        cdef Py_ssize_t m
        if not enc:
            self.need(<Py_ssize_t>v if v < <uint64_t>self.n + 1 else -1)
            self.pos += <Py_ssize_t>v
            return PyBytes_FromStringAndSize(<const char *>self.p + self.pos - <Py_ssize_t>v, <Py_ssize_t>v)
        if v == 0:
            self.need(1)
            self.pos += 1
            return b"%d" % (<int8_t>self.p[self.pos - 1])
        if v == 1:
            self.need(2)
            self.pos += 2
            return b"%d" % (<int16_t>(self.p[self.pos - 2] | (self.p[self.pos - 1] << 8)))
        if v == 2:
            self.need(4)
            self.pos += 4
            iv = <int32_t>(<uint32_t>self.p[self.pos - 4] | (<uint32_t>self.p[self.pos - 3] << 8) |
                           (<uint32_t>self.p[self.pos - 2] << 16) | (<uint32_t>self.p[self.pos - 1] << 24))
            return b"%d" % iv
        if v == 3:
            clen = self.read_len()
            ulen = self.read_len()
            self.need(<Py_ssize_t>clen if clen < <uint64_t>self.n + 1 else -1)
            # LZF expands at most ~ 264/2 times per back reference: a length
            # claiming more than that is a lie, refuse it before allocating
            if ulen > clen * 132 + 64 or ulen > 0x7FFFFFFFFFFF:
                raise RdbError("Invalid LZF compressed string")
            out = PyBytes_FromStringAndSize(NULL, <Py_ssize_t>ulen)
            m = lzf_decompress_raw(self.p + self.pos, <Py_ssize_t>clen,
                                   <unsigned char *>PyBytes_AS_STRING(out), <Py_ssize_t>ulen)
            if m != <Py_ssize_t>ulen:
                raise RdbError("Invalid LZF compressed string")
            self.pos += <Py_ssize_t>clen
            return out
        raise RdbError("Unknown RDB string encoding type %d" % v)

    cpdef int64_t read_ms(self) except? -0x7FFFFFFFFFFFFFFF:
        cdef int64_t v
        self.need(8)
        memcpy(&v, self.p + self.pos, 8)
        self.pos += 8
        return v

    cpdef int64_t read_i32le(self) except? -0x7FFFFFFFFFFFFFFF:
        cdef int32_t v
        self.need(4)
        memcpy(&v, self.p + self.pos, 4)
        self.pos += 4
        return v

    cpdef double read_double(self) except? -1.5:
        cdef double d
        self.need(8)
        memcpy(&d, self.p + self.pos, 8)
        self.pos += 8
        return d

    def read_string_records(self, list out, int64_t now_ms, bint skip_expired):
        """The fast path of a load: reads consecutive string keys (with or
        without an EXPIRETIME_MS before them) into out as (key, value, when),
        dropping those past their time when skip_expired. Stops before the
        first record of another kind. Returns how many were dropped."""
        cdef Py_ssize_t save
        cdef int64_t when
        cdef int dropped = 0
        cdef unsigned char op
        while self.pos < self.n:
            save = self.pos
            op = self.p[self.pos]
            when = -1
            if op == 0xFC:
                if self.n - self.pos < 10 or self.p[self.pos + 9] != 0:
                    return dropped
                memcpy(&when, self.p + self.pos + 1, 8)
                self.pos += 9
            elif op != 0:
                return dropped
            self.pos += 1
            try:
                key = self.read_string()
                value = self.read_string()
            except RdbError:
                self.pos = save
                raise
            if skip_expired and when != -1 and when <= now_ms:
                dropped += 1
                continue
            out.append((key, value, when))
        return dropped

    def read_string_double(self):
        """An old-style (ZSET type 3) score: a length byte and its text;
        253 nan, 254 +inf, 255 -inf."""
        cdef int k = self.read_byte()
        if k == 253:
            return float("nan")
        if k == 254:
            return float("inf")
        if k == 255:
            return float("-inf")
        try:
            return float(self.read_raw(k))
        except ValueError:
            raise RdbError("bad double value") from None

    def read_strings(self, Py_ssize_t count):
        """count strings in a row."""
        cdef list out = []
        cdef Py_ssize_t i
        # each string takes at least one byte: a count beyond the input is a lie
        if count > self.n - self.pos:
            raise RdbError("Unexpected EOF reading RDB file")
        for i in range(count):
            out.append(self.read_string())
        return out


# ---------------------------------------------------------------- AOF command streams

def scan_commands(data, Py_ssize_t max_args=1048576, long long max_bulk=4294967296):
    """Checks a RESP command stream (an append-only file) without building
    the commands: (commands, end, status, offset). status 0: the stream is
    whole commands; 1: it stops inside a command that starts at `end`;
    2: malformed at `offset` (end is then the last good boundary)."""
    cdef const unsigned char[:] v = memoryview(data).cast("B")
    cdef Py_ssize_t n = v.shape[0], pos = 0, start, i, argc, k
    cdef long long num
    cdef long long count = 0
    cdef unsigned char c
    cdef int neg
    while pos < n:
        start = pos
        for i in range(-1, 2147483647):
            # i == -1: the "*<argc>" header; then "$<len>" headers and bulks
            if pos >= n:
                return count, start, 1, pos
            c = v[pos]
            if (i == -1 and c != 0x2A) or (i >= 0 and c != 0x24):
                return count, start, 2, pos
            pos += 1
            num = 0
            neg = 0
            k = 0
            while True:
                if pos >= n:
                    return count, start, 1, pos
                c = v[pos]
                if c == 0x0D:
                    break
                if c == 0x2D and k == 0:
                    neg = 1
                elif 0x30 <= c <= 0x39 and num < 100000000000:
                    num = num * 10 + (c - 0x30)
                else:
                    return count, start, 2, pos
                pos += 1
                k += 1
            if pos + 1 >= n:
                return count, start, 1, pos
            if v[pos + 1] != 0x0A or k == 0 or neg:
                return count, start, 2, pos
            pos += 2
            if i == -1:
                if num < 1 or num > max_args:
                    return count, start, 2, start
                argc = <Py_ssize_t>num
                continue
            if num > max_bulk:
                return count, start, 2, pos
            if pos + num + 2 > n:
                return count, start, 1, pos
            if v[pos + num] != 0x0D or v[pos + num + 1] != 0x0A:
                return count, start, 2, pos + num
            pos += <Py_ssize_t>num + 2
            if i + 1 == argc:
                break
        count += 1
    return count, pos, 0, pos
