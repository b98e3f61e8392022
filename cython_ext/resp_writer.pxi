# The reply writer: encodes replies into one growable C buffer per client, in
# RESP2 or RESP3 as the client chose with HELLO. The event loop writes the
# whole buffer once per loop pass. Handlers written in Python return plain
# values that value() maps to RESP:
#   bytes/bytearray/memoryview/str -> bulk string      int -> integer
#   None -> null bulk ($-1 / _)      NULL_ARRAY -> null array (*-1 / _)
#   list/tuple -> array              dict -> map (flat array in RESP2)
#   RespSet -> set (array in RESP2)  float -> double (bulk string in RESP2)
#   bool -> boolean (integer in RESP2)
#   Status -> +simple string         ReplyError -> -error
#   Verbatim -> verbatim string (bulk in RESP2)   Push -> push (array in RESP2)
#   DoubleText -> a double already printed (bulk string in RESP2)

from cpython.bytes cimport PyBytes_Check, PyBytes_CheckExact
from cpython.unicode cimport PyUnicode_Check
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE

class Status(bytes):
    """A simple-string reply (+OK)."""
    __slots__ = ()


class ReplyError(Exception):
    """A command error: the reply is '-' + message and the connection stays."""

    def __init__(self, message):
        Exception.__init__(self, message)
        self.message = message


class RespSet(list):
    """An array that RESP3 sends as a set."""
    __slots__ = ()


class Verbatim(bytes):
    """Text that RESP3 sends as a verbatim string of format txt."""
    __slots__ = ()


class Push(list):
    """An out-of-band push message (RESP3 >); an array in RESP2."""
    __slots__ = ()


class DoubleText(bytes):
    """The text of a double printed by the command itself (GEOPOS and
    WITHCOORD print coordinates as Redis prints long doubles, 17 decimals):
    a RESP3 double, a bulk string in RESP2."""
    __slots__ = ()


class _NullArray:
    __slots__ = ()

    def __repr__(self):
        return "NULL_ARRAY"


NULL_ARRAY = _NullArray()
OK = Status(b"OK")
QUEUED = Status(b"QUEUED")
PONG = Status(b"PONG")

cdef object _Status = Status
cdef object _RespSet = RespSet
cdef object _Verbatim = Verbatim
cdef object _Push = Push
cdef object _DoubleText = DoubleText
cdef object _NULL_ARRAY = NULL_ARRAY
cdef object _ReplyError = ReplyError


cdef inline Py_ssize_t fmt_ll(char *out, long long v):
    """Writes v in decimal, returns the number of bytes."""
    cdef char tmp[24]
    cdef Py_ssize_t n = 0, i
    cdef unsigned long long u
    cdef bint neg = v < 0
    if neg:
        u = <unsigned long long>(-(v + 1)) + 1
    else:
        u = <unsigned long long>v
    while True:
        tmp[n] = c'0' + <char>(u % 10)
        n += 1
        u //= 10
        if u == 0:
            break
    i = 0
    if neg:
        out[0] = c'-'
        i = 1
    while n > 0:
        n -= 1
        out[i] = tmp[n]
        i += 1
    return i


cdef class ReplyBuffer:
    """A growable byte buffer with RESP encoders."""

    def __cinit__(self, int proto=2):
        self.cap = 16384
        self.data = <char *>PyMem_Malloc(self.cap)
        if self.data == NULL:
            raise MemoryError()
        self.proto = proto

    def __dealloc__(self):
        PyMem_Free(self.data)

    cdef int reserve(self, Py_ssize_t n) except -1:
        cdef Py_ssize_t need
        cdef char *nd
        if self.cap - self.length >= n:
            return 0
        if self.sent > 0:
            memmove(self.data, self.data + self.sent, self.length - self.sent)
            self.length -= self.sent
            self.sent = 0
            if self.cap - self.length >= n:
                return 0
        need = self.cap * 2
        while need - self.length < n:
            need *= 2
        nd = <char *>PyMem_Realloc(self.data, need)
        if nd == NULL:
            raise MemoryError()
        self.data = nd
        self.cap = need
        return 0

    cdef void consume(self, Py_ssize_t n):
        """Marks n more bytes as written to the socket."""
        cdef char *nd
        self.sent += n
        if self.sent >= self.length:
            self.sent = 0
            self.length = 0
            if self.cap > 1048576:
                nd = <char *>PyMem_Realloc(self.data, 16384)
                if nd != NULL:
                    self.data = nd
                    self.cap = 16384

    cdef int raw(self, const char *s, Py_ssize_t n) except -1:
        if self.cap - self.length < n:
            self.reserve(n)
        memcpy(self.data + self.length, s, n)
        self.length += n
        return 0

    cdef int simple(self, bytes s) except -1:
        cdef Py_ssize_t n = PyBytes_GET_SIZE(s)
        self.reserve(n + 3)
        self.data[self.length] = c'+'
        memcpy(self.data + self.length + 1, PyBytes_AS_STRING(s), n)
        self.data[self.length + n + 1] = c'\r'
        self.data[self.length + n + 2] = c'\n'
        self.length += n + 3
        return 0

    cdef int error(self, object msg) except -1:
        """Writes an error reply. Newlines in the text become spaces, as in
        Redis, so a reply can never break the protocol framing."""
        cdef bytes b
        if PyUnicode_Check(msg):
            try:
                b = (<str>msg).encode("latin-1")
            except UnicodeEncodeError:
                b = (<str>msg).encode("utf-8")
        else:
            b = bytes(msg)
        if b"\r" in b or b"\n" in b:
            b = b.replace(b"\r", b" ").replace(b"\n", b" ")
        self.raw("-", 1)
        self.raw(PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b))
        self.raw("\r\n", 2)
        return 0

    cdef int header(self, char kind, long long n) except -1:
        self.reserve(24)
        self.data[self.length] = kind
        self.length += 1 + fmt_ll(self.data + self.length + 1, n)
        self.data[self.length] = c'\r'
        self.data[self.length + 1] = c'\n'
        self.length += 2
        return 0

    cdef int integer(self, long long v) except -1:
        return self.header(c':', v)

    cdef int bulk_cstr(self, const char *s, Py_ssize_t n) except -1:
        self.reserve(n + 26)
        self.header(c'$', n)
        memcpy(self.data + self.length, s, n)
        self.data[self.length + n] = c'\r'
        self.data[self.length + n + 1] = c'\n'
        self.length += n + 2
        return 0

    cdef int bulk(self, object v) except -1:
        cdef Py_buffer view
        if PyBytes_Check(v):
            return self.bulk_cstr(PyBytes_AS_STRING(v), PyBytes_GET_SIZE(v))
        if PyUnicode_Check(v):
            b = (<str>v).encode("utf-8")
            return self.bulk_cstr(PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b))
        PyObject_GetBuffer(v, &view, PyBUF_SIMPLE)
        try:
            self.bulk_cstr(<const char *>view.buf, view.len)
        finally:
            PyBuffer_Release(&view)
        return 0

    cdef int null(self) except -1:
        if self.proto == 3:
            return self.raw("_\r\n", 3)
        return self.raw("$-1\r\n", 5)

    cdef int null_array(self) except -1:
        if self.proto == 3:
            return self.raw("_\r\n", 3)
        return self.raw("*-1\r\n", 5)

    cdef int array(self, long long n) except -1:
        return self.header(c'*', n)

    cdef int map(self, long long n) except -1:
        if self.proto == 3:
            return self.header(c'%', n)
        return self.header(c'*', n * 2)

    cdef int set_header(self, long long n) except -1:
        if self.proto == 3:
            return self.header(c'~', n)
        return self.header(c'*', n)

    cdef int push(self, long long n) except -1:
        if self.proto == 3:
            return self.header(c'>', n)
        return self.header(c'*', n)

    cdef int double(self, double d) except -1:
        cdef bytes s = format_double(d)
        if self.proto == 3:
            self.raw(",", 1)
            self.raw(PyBytes_AS_STRING(s), PyBytes_GET_SIZE(s))
            return self.raw("\r\n", 2)
        return self.bulk_cstr(PyBytes_AS_STRING(s), PyBytes_GET_SIZE(s))

    cdef int double_text(self, bytes s) except -1:
        if self.proto == 3:
            self.raw(",", 1)
            self.raw(PyBytes_AS_STRING(s), PyBytes_GET_SIZE(s))
            return self.raw("\r\n", 2)
        return self.bulk_cstr(PyBytes_AS_STRING(s), PyBytes_GET_SIZE(s))

    cdef int boolean(self, bint b) except -1:
        if self.proto == 3:
            return self.raw("#t\r\n" if b else "#f\r\n", 4)
        return self.raw(":1\r\n" if b else ":0\r\n", 4)

    cdef int verbatim(self, object text, bytes fmt) except -1:
        cdef bytes b = text if type(text) is bytes else bytes(text)
        if self.proto == 3:
            self.header(c'=', PyBytes_GET_SIZE(b) + 4)
            self.raw(PyBytes_AS_STRING(fmt), 3)
            self.raw(":", 1)
            self.raw(PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b))
            return self.raw("\r\n", 2)
        return self.bulk_cstr(PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b))

    cdef int value(self, object v) except -1:
        cdef type t = type(v)
        if t is bytes:
            return self.bulk_cstr(PyBytes_AS_STRING(v), PyBytes_GET_SIZE(v))
        if t is int:
            return self.integer(v)
        if v is None:
            return self.null()
        if t is list or t is tuple:
            self.array(len(v))
            for item in v:
                self.value(item)
            return 0
        if t is _Status:
            return self.simple(bytes(v))
        if t is bytearray or t is memoryview or t is str:
            return self.bulk(v)
        if t is float:
            return self.double(v)
        if t is bool:
            return self.boolean(v)
        if t is dict:
            self.map(len(v))
            for k, item in (<dict>v).items():
                self.value(k)
                self.value(item)
            return 0
        if t is _RespSet:
            self.set_header(len(v))
            for item in v:
                self.value(item)
            return 0
        if v is _NULL_ARRAY:
            return self.null_array()
        if t is _Verbatim:
            return self.verbatim(v, b"txt")
        if t is _DoubleText:
            return self.double_text(bytes(v))
        if t is _Push:
            self.push(len(v))
            for item in v:
                self.value(item)
            return 0
        if isinstance(v, BaseException):
            return self.error(getattr(v, "message", str(v)))
        if isinstance(v, int):
            return self.integer(v)
        raise TypeError("no RESP encoding for %r" % (t,))

    # ------------------------------------------------------------ Python view
    def add(self, v):
        """Encodes one reply value."""
        self.value(v)

    def add_error(self, msg):
        self.error(msg)

    def add_encoded(self, bytes data):
        """Appends bytes already in RESP (a message encoded once for many
        subscribers)."""
        self.raw(PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))

    def getvalue(self):
        return PyBytes_FromStringAndSize(self.data + self.sent, self.length - self.sent)

    def take(self):
        """Returns the pending bytes and empties the buffer."""
        out = PyBytes_FromStringAndSize(self.data + self.sent, self.length - self.sent)
        self.length = self.sent = 0
        return out

    def __len__(self):
        return self.length - self.sent
