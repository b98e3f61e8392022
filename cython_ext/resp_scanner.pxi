# The reply scanner: sans-IO, finds where each complete RESP2/RESP3 reply ends
# in a byte stream without building any Python object for it. The router
# uses it to hand a worker's reply bytes to the right client unchanged, and
# replication uses it to frame a primary's stream. An attribute (|) belongs
# to the reply that follows it; a push (>) is reported as out-of-band.



cdef class ReplyScanner:
    """Feeds bytes, yields the byte length of each complete reply."""

    cdef bytearray buf
    cdef Py_ssize_t pos          # start of the first reply not yet returned

    def __cinit__(self):
        self.buf = bytearray()
        self.pos = 0

    def feed(self, data):
        if self.pos and self.pos == len(self.buf):
            del self.buf[:]
            self.pos = 0
        self.buf += data

    def next_reply(self):
        """(reply bytes, is_push) for the next complete reply, or None.
        Raises ValueError on bytes that are not RESP."""
        cdef Py_ssize_t end
        cdef bint push = False
        cdef const unsigned char *p
        cdef Py_ssize_t n = len(self.buf)
        if self.pos >= n:
            return None
        p = self.buf
        push = p[self.pos] == c'>'
        end = scan_reply(p, self.pos, n)
        if end == -1:
            return None
        out = bytes(self.buf[self.pos:end])
        self.pos = end
        if self.pos > 65536 and self.pos * 2 > n:
            del self.buf[:self.pos]
            self.pos = 0
        return out, push

    @property
    def pending_bytes(self):
        return len(self.buf) - self.pos


cdef Py_ssize_t scan_line(const unsigned char *p, Py_ssize_t i, Py_ssize_t n):
    """Index just past the CRLF that ends the line starting at i, or -1."""
    cdef const unsigned char *nl = <const unsigned char *>memchr(p + i, c'\n', n - i)
    if nl == NULL:
        return -1
    if nl == p + i or nl[-1] != c'\r':
        raise ValueError("RESP line without CRLF")
    return nl - p + 1


cdef long long line_int(const unsigned char *p, Py_ssize_t i, Py_ssize_t end):
    """The integer on a header line p[i+1 .. end-2]."""
    cdef long long v
    if not parse_ll(<const char *>p + i + 1, end - i - 3, &v):
        raise ValueError("bad RESP length")
    return v


cdef Py_ssize_t scan_reply(const unsigned char *p, Py_ssize_t i, Py_ssize_t n) except -2:
    """End of the complete reply starting at i, or -1 if more bytes are needed.
    Walks nested aggregates with an explicit count of items still owed."""
    cdef long long owed = 1      # items still to read at any depth, flattened
    cdef Py_ssize_t end
    cdef long long count
    cdef unsigned char t
    while owed > 0:
        if i >= n:
            return -1
        t = p[i]
        end = scan_line(p, i, n)
        if end == -1:
            return -1
        owed -= 1
        if t == c'+' or t == c'-' or t == c':' or t == c'_' or t == c',' or t == c'#' or t == c'(':
            i = end
        elif t == c'$' or t == c'=' or t == c'!':
            count = line_int(p, i, end)
            if count < 0:
                i = end          # $-1: a null
            else:
                if end + count + 2 > n:
                    return -1
                if p[end + count] != c'\r' or p[end + count + 1] != c'\n':
                    raise ValueError("bulk without CRLF")
                i = end + count + 2
        elif t == c'*' or t == c'~' or t == c'>':
            count = line_int(p, i, end)
            if count > 0:
                owed += count
            i = end
        elif t == c'%':
            count = line_int(p, i, end)
            if count > 0:
                owed += 2 * count
            i = end
        elif t == c'|':
            # an attribute map, then the reply it describes
            count = line_int(p, i, end)
            owed += 2 * count + 1
            i = end
        else:
            raise ValueError("unknown RESP type byte %r" % chr(t))
    return i
