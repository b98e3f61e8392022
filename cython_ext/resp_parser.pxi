# The request parser: sans-IO and incremental, after Redis's networking.c.
# The event loop reads straight into the parser's buffer (reserve/commit);
# tests call feed(). parse_next() returns one command as a list of bytes, or
# None when more bytes are needed; a malformed stream sets `error` to Redis's
# exact "Protocol error: ..." text and the parser stays failed.
#
# A bulk's data must be followed by CRLF, as Valkey 9.1 checks.
#
# Limits, checked before any memory is set aside for the data they announce:
# a multibulk count or bulk length line longer than 64 KiB, a bulk length over
# proto-max-bulk-len, and (for clients that still have to AUTH) more than 10
# arguments or a bulk over 16 KiB.

from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.mem cimport PyMem_Realloc
from libc.string cimport memchr, memmove, memcpy

DEF INLINE_MAX = 65536
DEF READ_CHUNK = 16384
DEF UNAUTH_MAX_ARGS = 10
DEF UNAUTH_MAX_BULK = 16384


class ProtocolError(Exception):
    """The client sent bytes that are not RESP; the connection must close."""


cdef inline bint parse_ll(const char *s, Py_ssize_t n, long long *out):
    """Strict decimal parser, like Redis's string2ll: an optional '-', no '+',
    no spaces, no leading zeros, no overflow."""
    cdef Py_ssize_t i = 0
    cdef bint neg = False
    cdef unsigned long long v = 0, lim
    if n <= 0 or n > 20:
        return False
    if n == 1 and s[0] == c'0':
        out[0] = 0
        return True
    if s[0] == c'-':
        neg = True
        i = 1
        if n == 1:
            return False
    if s[i] < c'1' or s[i] > c'9':
        return False
    lim = 9223372036854775808ULL if neg else 9223372036854775807ULL
    while i < n:
        if s[i] < c'0' or s[i] > c'9':
            return False
        if v > (lim - <unsigned long long>(s[i] - c'0')) // 10:
            return False
        v = v * 10 + <unsigned long long>(s[i] - c'0')
        i += 1
    if neg:
        out[0] = -<long long>(v - 1) - 1 if v else 0
    else:
        out[0] = <long long>v
    return True


cdef inline char *find_line_end(char *p, Py_ssize_t n, char ch):
    """Finds ch in p[:n] the way Valkey looks for an inline command's newline
    (strchr): a NUL byte ends the search, so a NUL before ch means "not found
    yet". Multibulk headers are searched with memchr, as Valkey does."""
    cdef char *hit = <char *>memchr(p, ch, n)
    if hit == NULL:
        return NULL
    if memchr(p, 0, hit - p) != NULL:
        return NULL
    return hit


cdef inline int hexval(char c):
    if c'0' <= c <= c'9':
        return c - c'0'
    if c'a' <= c <= c'f':
        return c - c'a' + 10
    if c'A' <= c <= c'F':
        return c - c'A' + 10
    return -1


cdef object split_inline(const char *s, Py_ssize_t n):
    """Splits an inline command line as Redis's sdssplitargs does: spaces
    separate arguments, "double quotes" take \\n \\r \\t \\b \\a \\\\ \\" and
    \\xHH escapes, 'single quotes' take \\'. Returns None on unbalanced quotes."""
    cdef list args = []
    cdef Py_ssize_t i = 0
    cdef bytearray cur
    cdef bint inq, insq, done
    cdef char c
    while True:
        while i < n and (s[i] == c' ' or s[i] == c'\n' or s[i] == c'\r' or s[i] == c'\t' or s[i] == c'\v' or s[i] == c'\f'):
            i += 1
        if i >= n:
            return args
        cur = bytearray()
        inq = insq = done = False
        while not done:
            if inq:
                if i >= n:
                    return None
                c = s[i]
                if c == c'\\' and i + 3 < n and s[i + 1] == c'x' and hexval(s[i + 2]) >= 0 and hexval(s[i + 3]) >= 0:
                    cur.append(hexval(s[i + 2]) * 16 + hexval(s[i + 3]))
                    i += 3
                elif c == c'\\' and i + 1 < n:
                    i += 1
                    c = s[i]
                    if c == c'n':
                        cur.append(10)
                    elif c == c'r':
                        cur.append(13)
                    elif c == c't':
                        cur.append(9)
                    elif c == c'b':
                        cur.append(8)
                    elif c == c'a':
                        cur.append(7)
                    else:
                        cur.append(<unsigned char>c)
                elif c == c'"':
                    # the closing quote must be followed by a space or the end
                    if i + 1 < n and not (s[i + 1] == c' ' or s[i + 1] == c'\n' or s[i + 1] == c'\r' or s[i + 1] == c'\t' or s[i + 1] == c'\v' or s[i + 1] == c'\f'):
                        return None
                    done = True
                else:
                    cur.append(<unsigned char>c)
            elif insq:
                if i >= n:
                    return None
                c = s[i]
                if c == c'\\' and i + 1 < n and s[i + 1] == c"'":
                    i += 1
                    cur.append(39)
                elif c == c"'":
                    if i + 1 < n and not (s[i + 1] == c' ' or s[i + 1] == c'\n' or s[i + 1] == c'\r' or s[i + 1] == c'\t' or s[i + 1] == c'\v' or s[i + 1] == c'\f'):
                        return None
                    done = True
                else:
                    cur.append(<unsigned char>c)
            else:
                if i >= n:
                    done = True
                    break
                c = s[i]
                if c == c' ' or c == c'\n' or c == c'\r' or c == c'\t' or c == c'\0':
                    done = True
                elif c == c'"':
                    inq = True
                elif c == c"'":
                    insq = True
                else:
                    cur.append(<unsigned char>c)
            if i < n:
                i += 1
        args.append(bytes(cur))


cdef class RequestParser:
    """Turns a byte stream into commands (lists of bytes)."""

    def __cinit__(self, long long max_bulk_len=512 * 1024 * 1024):
        self.cap = READ_CHUNK * 2
        self.buf = <char *>PyMem_Malloc(self.cap)
        if self.buf == NULL:
            raise MemoryError()
        self.max_bulk_len = max_bulk_len
        self.bulk_len = -1

    def __dealloc__(self):
        PyMem_Free(self.buf)

    cdef char *reserve(self, Py_ssize_t n) except NULL:
        """Makes room for n more bytes at the end and returns where they go."""
        cdef char *nb
        cdef Py_ssize_t need
        # the command being parsed keeps its bytes: the router forwards them
        cdef Py_ssize_t base = self.cmd_start if self.kind != 0 else self.start
        if base > 0 and (base == self.end or self.cap - self.end < n):
            memmove(self.buf, self.buf + base, self.end - base)
            self.end -= base
            self.start -= base
            self.cmd_start -= base if self.kind != 0 else 0
            if self.kind == 0:
                self.cmd_start = self.start
        if self.cap - self.end < n:
            need = self.cap * 2
            while need - self.end < n:
                need *= 2
            nb = <char *>PyMem_Realloc(self.buf, need)
            if nb == NULL:
                raise MemoryError()
            self.buf = nb
            self.cap = need
        return self.buf + self.end

    cdef inline void commit(self, Py_ssize_t n):
        self.end += n

    cdef Py_ssize_t buffered(self):
        return self.end - self.start

    def feed(self, data):
        cdef const unsigned char[:] view = data
        cdef Py_ssize_t n = view.shape[0]
        if n:
            memcpy(self.reserve(n), &view[0], n)
            self.commit(n)

    def next_command(self):
        """The next complete command, or None if more bytes are needed.
        Raises ProtocolError for a malformed stream."""
        cmd = self.parse_next()
        if self.error is not None:
            raise ProtocolError(self.error)
        return cmd

    def last_raw(self):
        """The exact bytes of the command parse_next returned last."""
        return PyBytes_FromStringAndSize(self.buf + self.cmd_start, self.start - self.cmd_start)

    @property
    def pending_bytes(self):
        return self.end - self.start

    def shrink(self):
        """Gives memory back after a large request has been consumed."""
        cdef char *nb
        if self.start == self.end and self.cap > READ_CHUNK * 8:
            nb = <char *>PyMem_Realloc(self.buf, READ_CHUNK * 2)
            if nb != NULL:
                self.buf = nb
                self.cap = READ_CHUNK * 2
                self.start = self.end = 0

    cdef int _fail(self, str msg) except -1:
        self.error = "Protocol error: " + msg
        self.start = self.end = 0
        return 0

    cdef object parse_next(self):
        while self.error is None and self.start < self.end:
            if self.kind == 0:
                self.kind = 1 if self.buf[self.start] == c'*' else 2
                self.cmd_start = self.start
            if self.kind == 1:
                cmd = self._parse_multibulk()
            else:
                cmd = self._parse_inline()
            if cmd is None:
                return None
            self.kind = 0
            if len(<list>cmd) > 0:
                return cmd
            # an empty line or *0 / *-1: nothing to run, keep going
        return None

    cdef object _parse_inline(self):
        cdef char *p = self.buf + self.start
        cdef Py_ssize_t avail = self.end - self.start
        cdef char *nl = find_line_end(p, avail, c'\n')
        cdef Py_ssize_t linelen
        if nl == NULL:
            if avail > INLINE_MAX:
                self._fail("too big inline request")
            return None
        linelen = nl - p
        if linelen > 0 and p[linelen - 1] == c'\r':
            linelen -= 1
        args = split_inline(p, linelen)
        self.start += (nl - p) + 1
        if args is None:
            self._fail("unbalanced quotes in request")
            return None
        return args

    cdef object _parse_multibulk(self):
        cdef char *p
        cdef char *nl
        cdef Py_ssize_t avail
        cdef long long ll
        if self.mb_remaining == 0:
            # the "*<count>\r\n" header
            p = self.buf + self.start
            avail = self.end - self.start
            nl = <char *>memchr(p, c'\r', avail)
            if nl == NULL:
                if avail > INLINE_MAX:
                    self._fail("too big mbulk count string")
                return None
            if nl - p + 2 > avail:
                return None   # the \n after \r has not arrived yet
            if not parse_ll(p + 1, nl - p - 1, &ll) or ll > 2147483647:
                self._fail("invalid multibulk length")
                return None
            if ll > UNAUTH_MAX_ARGS and self.auth_required:
                self._fail("unauthenticated multibulk length")
                return None
            self.start += nl - p + 2
            if ll <= 0:
                return []
            self.mb_remaining = ll
            self.bulk_len = -1
            # do not trust the count for the allocation: grow as bulks arrive
            self.argv = []
        while self.mb_remaining > 0:
            p = self.buf + self.start
            avail = self.end - self.start
            if self.bulk_len == -1:
                if avail == 0:
                    return None
                nl = <char *>memchr(p, c'\r', avail)
                if nl == NULL:
                    if avail > INLINE_MAX:
                        self._fail("too big bulk count string")
                    return None
                if nl - p + 2 > avail:
                    return None
                if p[0] != c'$':
                    self._fail("expected '$', got '%s'" % chr(<unsigned char>p[0]))
                    return None
                if not parse_ll(p + 1, nl - p - 1, &ll) or ll < 0 or ll > self.max_bulk_len:
                    self._fail("invalid bulk length")
                    return None
                if ll > UNAUTH_MAX_BULK and self.auth_required:
                    self._fail("unauthenticated bulk length")
                    return None
                self.start += nl - p + 2
                self.bulk_len = ll
                p = self.buf + self.start
                avail = self.end - self.start
            if avail < self.bulk_len + 2:
                return None
            # Valkey 9.1 checks the CRLF after the data (Redis 7.0 skipped it)
            if p[self.bulk_len] != c'\r' or p[self.bulk_len + 1] != c'\n':
                self._fail("invalid CRLF in request")
                return None
            self.argv.append(PyBytes_FromStringAndSize(p, self.bulk_len))
            self.start += self.bulk_len + 2
            self.bulk_len = -1
            self.mb_remaining -= 1
        args = self.argv
        self.argv = None
        return args
