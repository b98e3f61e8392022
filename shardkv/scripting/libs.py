"""The libraries Valkey links into its Lua: cjson, cmsgpack, bit and struct,
written here in Python and exposed to the sandbox (bootstrap.py wraps each
function so that a failure raises a Lua error without a position, as a C
library function's luaL_error does).

Each function returns (True, results...) or (False, message). Lua values
arrive as lupa converts them (strings as bytes, numbers as int/float, tables
as lupa tables); `lua` is the owning runtime, used to build tables."""

from __future__ import annotations

import math
import struct as _struct

from lupa import lua51

lua_type = lua51.lua_type


def _num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def fmt14(x):
    """Lua's and cjson's %.14g."""
    if isinstance(x, int):
        x = float(x) if abs(x) >= 1 << 53 else x
        if isinstance(x, int):
            return str(x).encode()
    s = "%.14g" % x
    return s.encode()


# ------------------------------------------------------------------ bit (LuaBitOp)
def _tobit(v):
    if isinstance(v, bytes):
        try:
            v = float(v)
        except ValueError:
            return None
    if not _num(v):
        return None
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return -0x80000000 if False else 0
        # LuaBitOp adds 2^52+2^51 and takes the low word: round half to even
        v = round(v)
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def make_bit():
    def arg(i, v, name):
        r = _tobit(v)
        if r is None:
            raise _LibError("bad argument #%d to '%s' (number expected, got %s)" % (i, name, _tname(v)))
        return r

    def variadic(name, op):
        def f(*args):
            try:
                if not args:
                    raise _LibError("bad argument #1 to '%s' (number expected, got no value)" % name)
                acc = arg(1, args[0], name)
                for i, a in enumerate(args[1:], 2):
                    acc = op(acc, arg(i, a, name))
                return True, _tobit(acc)
            except _LibError as e:
                return False, str(e)
        return f

    def unary(name, op):
        def f(*args):
            try:
                return True, _tobit(op(arg(1, args[0] if args else _NONE, name)))
            except _LibError as e:
                return False, str(e)
        return f

    def shift(name, op):
        def f(*args):
            try:
                x = arg(1, args[0] if args else _NONE, name) & 0xFFFFFFFF
                n = arg(2, args[1] if len(args) > 1 else _NONE, name) & 31
                return True, _tobit(op(x, n))
            except _LibError as e:
                return False, str(e)
        return f

    def arshift(x, n):
        x = x - (1 << 32) if x & 0x80000000 else x
        return x >> n

    def tohex(*args):
        try:
            x = arg(1, args[0] if args else _NONE, "tohex") & 0xFFFFFFFF
            n = 8
            if len(args) > 1 and args[1] is not None:
                n = arg(2, args[1], "tohex")
            upper = n < 0
            n = min(abs(n), 8) if n != -(1 << 31) else 8
            s = ("%0*X" if upper else "%0*x") % (8, x)
            return True, s[8 - n:].encode() if n else b""
        except _LibError as e:
            return False, str(e)

    return {
        "tobit": unary("tobit", lambda x: x),
        "bnot": unary("bnot", lambda x: ~x),
        "band": variadic("band", lambda a, b: a & b),
        "bor": variadic("bor", lambda a, b: a | b),
        "bxor": variadic("bxor", lambda a, b: a ^ b),
        "lshift": shift("lshift", lambda x, n: x << n),
        "rshift": shift("rshift", lambda x, n: x >> n),
        "arshift": shift("arshift", arshift),
        "rol": shift("rol", lambda x, n: (x << n) | (x >> (32 - n)) if n else x),
        "ror": shift("ror", lambda x, n: (x >> n) | (x << (32 - n)) if n else x),
        "bswap": unary("bswap", lambda x: int.from_bytes((x & 0xFFFFFFFF).to_bytes(4, "little"), "big")),
        "tohex": tohex,
    }


class _LibError(Exception):
    pass


class _None:
    pass


_NONE = _None()


def _tname(v):
    if v is _NONE:
        return "no value"
    if v is None:
        return "nil"
    if isinstance(v, bool):
        return "boolean"
    if _num(v):
        return "number"
    if isinstance(v, bytes):
        return "string"
    return lua_type(v) or "userdata"


# ------------------------------------------------------------------ cjson
_ESCAPES = {0x22: b'\\"', 0x5C: b"\\\\", 0x2F: b"\\/", 0x08: b"\\b", 0x0C: b"\\f",
            0x0A: b"\\n", 0x0D: b"\\r", 0x09: b"\\t", 0x7F: b"\\u007f"}


def _json_string(s: bytes) -> bytes:
    out = bytearray(b'"')
    for ch in s:
        e = _ESCAPES.get(ch)
        if e is not None:
            out += e
        elif ch < 0x20:
            out += b"\\u%04x" % ch
        else:
            out.append(ch)
    out += b'"'
    return bytes(out)


def make_cjson(lua, null):
    def encode_value(v, depth, out):
        if isinstance(v, bytes):
            out.append(_json_string(v))
        elif isinstance(v, bool):
            out.append(b"true" if v else b"false")
        elif _num(v):
            if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
                raise _LibError("Cannot serialise number: must not be NaN or Inf")
            out.append(fmt14(v))
        elif v is None:
            out.append(b"null")
        else:
            t = lua_type(v)
            if t == "table":
                encode_table(v, depth + 1, out)
            elif t == "userdata":
                out.append(b"null")
            else:
                raise _LibError("Cannot serialise %s: type not supported" % (t or "userdata"))

    def encode_table(t, depth, out):
        if depth > 1000:
            raise _LibError("Cannot serialise, excessive nesting (%d)" % depth)
        items = list(t.items())
        maxk = 0
        is_array = True
        for k, _ in items:
            if _num(k) and k >= 1 and math.floor(k) == k:
                maxk = max(maxk, int(k))
            else:
                is_array = False
                break
        if is_array and items:
            if maxk > len(items) * 2 and maxk > 10:
                raise _LibError("Cannot serialise table: excessively sparse array")
            out.append(b"[")
            for i in range(1, maxk + 1):
                if i > 1:
                    out.append(b",")
                encode_value(t[i], depth, out)
            out.append(b"]")
            return
        out.append(b"{")
        first = True
        for k, v in items:
            if not first:
                out.append(b",")
            first = False
            if isinstance(k, bytes):
                out.append(_json_string(k))
            elif _num(k):
                out.append(b'"' + fmt14(k) + b'"')
            else:
                raise _LibError("Cannot serialise table: table key must be a number or string")
            out.append(b":")
            encode_value(v, depth, out)
        out.append(b"}")

    def encode(*args):
        if len(args) != 1:
            return False, "bad argument #1 to 'encode' (expected 1 argument)"
        out = []
        try:
            encode_value(args[0], 0, out)
        except _LibError as e:
            return False, str(e)
        return True, b"".join(out)

    def decode(*args):
        if len(args) != 1:
            return False, "bad argument #1 to 'decode' (expected 1 argument)"
        s = args[0]
        if _num(s):
            s = fmt14(s)
        if not isinstance(s, bytes):
            return False, "bad argument #1 to 'decode' (string expected, got %s)" % _tname(s)
        try:
            value, pos = _JsonParser(s, lua, null).parse()
        except _LibError as e:
            return False, str(e)
        return True, value

    return {"encode": encode, "decode": decode, "null": null,
            "encode_keep_buffer": lambda *a: (True,), "encode_max_depth": lambda *a: (True, 1000),
            "decode_max_depth": lambda *a: (True, 1000), "encode_number_precision": lambda *a: (True, 14),
            "encode_invalid_numbers": lambda *a: (True, False), "decode_invalid_numbers": lambda *a: (True, True),
            "encode_sparse_array": lambda *a: (True, False, 2, 10)}


class _JsonParser:
    def __init__(self, s, lua, null):
        self.s, self.i, self.lua, self.null, self.depth = s, 0, lua, null, 0

    def ws(self):
        s, i = self.s, self.i
        while i < len(s) and s[i] in b" \t\r\n":
            i += 1
        self.i = i

    def fail(self, what, found=None):
        if found is None:
            found = self.token_name()
        raise _LibError("Expected %s but found %s at character %d" % (what, found, self.i + 1))

    def token_name(self):
        s, i = self.s, self.i
        if i >= len(s):
            return "T_END"
        c = s[i:i + 1]
        return {b"{": "T_OBJ_BEGIN", b"}": "T_OBJ_END", b"[": "T_ARR_BEGIN", b"]": "T_ARR_END",
                b",": "T_COMMA", b":": "T_COLON", b'"': "T_STRING"}.get(c, "invalid token")

    def parse(self):
        v = self.value()
        self.ws()
        if self.i < len(self.s):
            self.fail("the end", self.token_name())
        return v, self.i

    def value(self):
        self.ws()
        s, i = self.s, self.i
        if i >= len(s):
            self.fail("value", "T_END")
        c = s[i]
        if c == 0x7B:
            return self.obj()
        if c == 0x5B:
            return self.arr()
        if c == 0x22:
            return self.string()
        for lit, val in ((b"true", True), (b"false", False), (b"null", self.null)):
            if s.startswith(lit, i):
                self.i = i + len(lit)
                return val
        j = i
        while j < len(s) and s[j] in b"+-0123456789.eE":
            j += 1
        text = s[i:j]
        try:
            if j == i:
                raise ValueError
            x = float(text)
        except ValueError:
            self.fail("value", "invalid token")
        self.i = j
        return int(x) if x.is_integer() and abs(x) < 1 << 53 else x

    def nest(self):
        self.depth += 1
        if self.depth > 1000:
            raise _LibError("Found too many nested data structures (%d) at character %d" % (self.depth, self.i + 1))

    def arr(self):
        self.nest()
        self.i += 1
        items = []
        self.ws()
        if self.s[self.i:self.i + 1] == b"]":
            self.i += 1
        else:
            while True:
                items.append(self.value())
                self.ws()
                c = self.s[self.i:self.i + 1]
                if c == b",":
                    self.i += 1
                    continue
                if c == b"]":
                    self.i += 1
                    break
                self.fail("comma or array end")
        self.depth -= 1
        t = self.lua.table()
        for n, v in enumerate(items, 1):
            t[n] = v
        return t

    def obj(self):
        self.nest()
        self.i += 1
        t = self.lua.table()
        self.ws()
        if self.s[self.i:self.i + 1] == b"}":
            self.i += 1
        else:
            while True:
                self.ws()
                if self.s[self.i:self.i + 1] != b'"':
                    self.fail("object key string")
                k = self.string()
                self.ws()
                if self.s[self.i:self.i + 1] != b":":
                    self.fail("colon")
                self.i += 1
                t[k] = self.value()
                self.ws()
                c = self.s[self.i:self.i + 1]
                if c == b",":
                    self.i += 1
                    continue
                if c == b"}":
                    self.i += 1
                    break
                self.fail("comma or object end")
        self.depth -= 1
        return t

    def string(self):
        s, i = self.s, self.i + 1
        out = bytearray()
        while True:
            if i >= len(s):
                self.i = self.i
                raise _LibError("Expected value but found invalid token at character %d" % (self.i + 1))
            c = s[i]
            if c == 0x22:
                break
            if c == 0x5C:
                e = s[i + 1:i + 2]
                simple = {b'"': b'"', b"\\": b"\\", b"/": b"/", b"b": b"\b", b"f": b"\f", b"n": b"\n",
                          b"r": b"\r", b"t": b"\t"}.get(e)
                if simple is not None:
                    out += simple
                    i += 2
                    continue
                if e == b"u":
                    try:
                        cp = int(s[i + 2:i + 6], 16)
                    except ValueError:
                        raise _LibError("Expected value but found invalid unicode escape code at character %d"
                                        % (self.i + 1)) from None
                    i += 6
                    if 0xD800 <= cp < 0xDC00 and s[i:i + 2] == b"\\u":
                        lo = int(s[i + 2:i + 6], 16)
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00)
                        i += 6
                    out += chr(cp).encode("utf-8", "surrogatepass")
                    continue
                raise _LibError("Expected value but found invalid escape code at character %d" % (self.i + 1))
            out.append(c)
            i += 1
        self.i = i + 1
        return bytes(out)


# ------------------------------------------------------------------ cmsgpack
def make_cmsgpack(lua):
    def is_array(t):
        n = 0
        maxk = 0
        for k, _ in t.items():
            if not (_num(k) and k >= 1 and math.floor(k) == k):
                return 0
            n += 1
            maxk = max(maxk, int(k))
        return maxk if maxk == n else 0

    def enc(v, depth, out):
        if isinstance(v, bytes):
            n = len(v)
            if n < 32:
                out.append(bytes([0xA0 | n]))
            elif n <= 0xFF:
                out.append(b"\xd9" + bytes([n]))
            elif n <= 0xFFFF:
                out.append(b"\xda" + n.to_bytes(2, "big"))
            else:
                out.append(b"\xdb" + n.to_bytes(4, "big"))
            out.append(v)
        elif isinstance(v, bool):
            out.append(b"\xc3" if v else b"\xc2")
        elif _num(v):
            if (isinstance(v, int) or (math.isfinite(v) and v == math.floor(v))) and -(1 << 63) <= v < 1 << 64:
                enc_int(int(v), out)
            else:
                f = _struct.unpack(">f", _struct.pack(">f", v))[0] if math.isfinite(v) and abs(v) < 3.4e38 else None
                if f is not None and f == v or (not math.isfinite(v)):
                    out.append(b"\xca" + _struct.pack(">f", v))
                else:
                    out.append(b"\xcb" + _struct.pack(">d", v))
        elif v is None:
            out.append(b"\xc0")
        elif lua_type(v) == "table" and depth < 16:
            n = is_array(v)
            if n:
                hdr(n, 0x90, b"\xdc", b"\xdd", out)
                for i in range(1, n + 1):
                    enc(v[i], depth + 1, out)
            else:
                items = list(v.items())
                hdr(len(items), 0x80, b"\xde", b"\xdf", out)
                for k, x in items:
                    enc(k, depth + 1, out)
                    enc(x, depth + 1, out)
        else:
            out.append(b"\xc0")

    def hdr(n, fix, b16, b32, out):
        if n < 16:
            out.append(bytes([fix | n]))
        elif n <= 0xFFFF:
            out.append(b16 + n.to_bytes(2, "big"))
        else:
            out.append(b32 + n.to_bytes(4, "big"))

    def enc_int(n, out):
        if n >= 0:
            if n < 128:
                out.append(bytes([n]))
            elif n <= 0xFF:
                out.append(b"\xcc" + bytes([n]))
            elif n <= 0xFFFF:
                out.append(b"\xcd" + n.to_bytes(2, "big"))
            elif n <= 0xFFFFFFFF:
                out.append(b"\xce" + n.to_bytes(4, "big"))
            else:
                out.append(b"\xcf" + n.to_bytes(8, "big"))
        else:
            if n >= -32:
                out.append(bytes([n & 0xFF]))
            elif n >= -128:
                out.append(b"\xd0" + n.to_bytes(1, "big", signed=True))
            elif n >= -32768:
                out.append(b"\xd1" + n.to_bytes(2, "big", signed=True))
            elif n >= -(1 << 31):
                out.append(b"\xd2" + n.to_bytes(4, "big", signed=True))
            else:
                out.append(b"\xd3" + n.to_bytes(8, "big", signed=True))

    def pack(*args):
        if not args:
            return False, "MessagePack pack needs input."
        out = []
        for a in args:
            enc(a, 0, out)
        return True, b"".join(out)

    def dec(s, i):
        if i >= len(s):
            raise IndexError
        c = s[i]
        i += 1
        if c < 0x80:
            return c, i
        if c >= 0xE0:
            return c - 256, i
        if 0xA0 <= c <= 0xBF:
            n = c & 0x1F
            return take(s, i, n)
        if 0x90 <= c <= 0x9F:
            return arr(s, i, c & 0x0F)
        if 0x80 <= c <= 0x8F:
            return mp(s, i, c & 0x0F)
        fixed = {0xCC: (1, False), 0xCD: (2, False), 0xCE: (4, False), 0xCF: (8, False),
                 0xD0: (1, True), 0xD1: (2, True), 0xD2: (4, True), 0xD3: (8, True)}
        if c in fixed:
            n, signed = fixed[c]
            b, i = take(s, i, n)
            return int.from_bytes(b, "big", signed=signed), i
        if c == 0xC0:
            return None, i
        if c in (0xC2, 0xC3):
            return c == 0xC3, i
        if c == 0xCA:
            b, i = take(s, i, 4)
            return _struct.unpack(">f", b)[0], i
        if c == 0xCB:
            b, i = take(s, i, 8)
            return _struct.unpack(">d", b)[0], i
        if c in (0xD9, 0xDA, 0xDB, 0xC4, 0xC5, 0xC6):
            w = {0xD9: 1, 0xDA: 2, 0xDB: 4, 0xC4: 1, 0xC5: 2, 0xC6: 4}[c]
            b, i = take(s, i, w)
            return take(s, i, int.from_bytes(b, "big"))
        if c in (0xDC, 0xDD):
            b, i = take(s, i, 2 if c == 0xDC else 4)
            return arr(s, i, int.from_bytes(b, "big"))
        if c in (0xDE, 0xDF):
            b, i = take(s, i, 2 if c == 0xDE else 4)
            return mp(s, i, int.from_bytes(b, "big"))
        raise IndexError

    def take(s, i, n):
        if i + n > len(s):
            raise IndexError
        return s[i:i + n], i + n

    def arr(s, i, n):
        t = lua.table()
        for j in range(1, n + 1):
            v, i = dec(s, i)
            t[j] = v
        return t, i

    def mp(s, i, n):
        t = lua.table()
        for _ in range(n):
            k, i = dec(s, i)
            v, i = dec(s, i)
            if k is not None:
                t[k] = v
        return t, i

    def unpack_gen(name, limit_arg):
        def f(*args):
            if not args or not isinstance(args[0], (bytes, int, float)) or isinstance(args[0], bool):
                return False, "bad argument #1 to '%s' (string expected, got %s)" % (
                    name, _tname(args[0] if args else _NONE))
            s = args[0] if isinstance(args[0], bytes) else fmt14(args[0])
            limit = 0
            offset = 0
            if limit_arg and len(args) > 1:
                limit = int(args[1])
                if len(args) > 2:
                    offset = int(args[2])
            if offset < 0 or limit < 0:
                return False, "Invalid request to unpack with offset of %d and limit of %d." % (offset, len(s))
            if offset > len(s):
                return False, "Start offset %d greater than input length %d." % (offset, len(s))
            vals = []
            i = offset
            try:
                while i < len(s) and (not limit or len(vals) < limit):
                    v, i = dec(s, i)
                    vals.append(v)
            except IndexError:
                return False, "Missing bytes in input."
            if limit_arg:
                return (True, (-1 if i >= len(s) else i), *vals)
            return (True, *vals)
        return f

    return {"pack": pack, "unpack": unpack_gen("unpack", False),
            "unpack_one": unpack_gen("unpack_one", True), "unpack_limit": unpack_gen("unpack_limit", True)}


# ------------------------------------------------------------------ struct (Roberto Ierusalimschy's)
def make_struct(lua):
    def parse(fmt):
        """(kind, size, endian, align) items of a format string."""
        i = 0
        endian = "<"
        maxalign = 1
        while i < len(fmt):
            c = chr(fmt[i])
            i += 1
            n = None
            j = i
            while j < len(fmt) and 48 <= fmt[j] <= 57:
                j += 1
            if j > i:
                n = int(fmt[i:j])
                i = j
            if c in " ":
                continue
            if c == ">":
                endian = ">"
                continue
            if c == "<":
                endian = "<"
                continue
            if c == "=":
                endian = "<"
                continue
            if c == "!":
                maxalign = n if n else 8
                continue
            yield c, n, endian, maxalign

    sizes = {"b": 1, "B": 1, "h": 2, "H": 2, "l": 8, "L": 8, "T": 8, "f": 4, "d": 8, "x": 1}

    def item_size(c, n):
        if c in "iI":
            return n if n else 4
        if c == "c":
            return n if n is not None else 1
        if c == "s":
            return 0
        return sizes.get(c)

    def align(pos, c, size, maxalign):
        if c in "cs x" or size <= 1:
            return 0
        a = min(size, maxalign)
        if a & (a - 1):
            raise _LibError("bad argument #1 to 'pack' (alignment must be power of 2)")
        return (-pos) % a

    def pack(*args):
        try:
            if not args or not isinstance(args[0], bytes):
                raise _LibError("bad argument #1 to 'pack' (string expected, got %s)"
                                % _tname(args[0] if args else _NONE))
            out = bytearray()
            argi = 1
            for c, n, endian, maxalign in parse(args[0]):
                size = item_size(c, n)
                if size is None:
                    raise _LibError("invalid format option '%s'" % c)
                out += b"\0" * align(len(out), c, size, maxalign)
                if c == "x":
                    out += b"\0"
                    continue
                argi += 1
                if argi - 1 >= len(args):
                    raise _LibError("bad argument #%d to 'pack' (%s expected, got no value)"
                                    % (argi, "string" if c in "cs" else "number"))
                v = args[argi - 1]
                if c in "bBhHlLTiI":
                    if not _num(v):
                        raise _LibError("bad argument #%d to 'pack' (number expected, got %s)" % (argi, _tname(v)))
                    iv = int(v) & ((1 << (8 * size)) - 1)
                    out += iv.to_bytes(size, "big" if endian == ">" else "little")
                elif c in "fd":
                    out += _struct.pack(endian + c, float(v))
                elif c == "c":
                    s = v if isinstance(v, bytes) else fmt14(v)
                    if n is None:
                        n = len(s) if size == 0 else size
                    if n > len(s):
                        raise _LibError("bad argument #%d to 'pack' (string too short)" % argi)
                    out += s[:n] if n else s
                elif c == "s":
                    s = v if isinstance(v, bytes) else fmt14(v)
                    out += s + b"\0"
            return True, bytes(out)
        except _LibError as e:
            return False, str(e)

    def unpack(*args):
        try:
            if len(args) < 2 or not isinstance(args[0], bytes) or not isinstance(args[1], bytes):
                raise _LibError("bad argument #%d to 'unpack' (string expected, got %s)"
                                % ((1, _tname(args[0] if args else _NONE)) if not args or not isinstance(args[0], bytes)
                                   else (2, _tname(args[1] if len(args) > 1 else _NONE))))
            data = args[1]
            pos = int(args[2]) - 1 if len(args) > 2 and args[2] is not None else 0
            vals = []
            for c, n, endian, maxalign in parse(args[0]):
                size = item_size(c, n)
                if size is None:
                    raise _LibError("invalid format option '%s'" % c)
                pos += align(pos, c, size, maxalign)
                if pos + size > len(data):
                    raise _LibError("bad argument #2 to 'unpack' (data string too short)")
                if c == "x":
                    pos += 1
                    continue
                if c in "bBhHlLTiI":
                    raw = data[pos:pos + size]
                    v = int.from_bytes(raw, "big" if endian == ">" else "little", signed=c in "bhli")
                    vals.append(v if abs(v) < 1 << 53 else float(v))
                    pos += size
                elif c in "fd":
                    vals.append(_struct.unpack(endian + c, data[pos:pos + size])[0])
                    pos += size
                elif c == "c":
                    if size == 0:
                        if not vals or not _num(vals[-1]):
                            raise _LibError("format 'c0' needs a previous size")
                        size = int(vals.pop())
                        if pos + size > len(data):
                            raise _LibError("bad argument #2 to 'unpack' (data string too short)")
                    vals.append(data[pos:pos + size])
                    pos += size
                elif c == "s":
                    end = data.find(b"\0", pos)
                    if end < 0:
                        raise _LibError("bad argument #2 to 'unpack' (unfinished string in data)")
                    vals.append(data[pos:end])
                    pos = end + 1
            return (True, *vals, pos + 1)
        except _LibError as e:
            return False, str(e)

    def size(*args):
        try:
            if not args or not isinstance(args[0], bytes):
                raise _LibError("bad argument #1 to 'size' (string expected, got %s)"
                                % _tname(args[0] if args else _NONE))
            pos = 0
            for c, n, _endian, maxalign in parse(args[0]):
                sz = item_size(c, n)
                if sz is None:
                    raise _LibError("invalid format option '%s'" % c)
                if c == "s" or (c == "c" and sz == 0):
                    raise _LibError("bad argument #1 to 'size' (options 'c0' - 's' not allowed)")
                pos += align(pos, c, sz, maxalign) + sz
            return True, pos
        except _LibError as e:
            return False, str(e)

    return {"pack": pack, "unpack": unpack, "size": size}
