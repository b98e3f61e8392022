"""Hypothesis-generated command sequences over the geo commands (GEOADD,
GEOPOS, GEODIST, GEOHASH, GEOSEARCH, GEOSEARCHSTORE, GEORADIUS,
GEORADIUSBYMEMBER and the _RO variants), compared byte for byte with
valkey: scores, positions, distances, geohashes, result orders (with and
without ASC/DESC, COUNT and ANY) and errors.

Positions cluster around a few places (Sicily, New York, the antimeridian
near Fiji, the edges of the index at +-85.05112878) so that searches find
several members, members often share a cell (equal distances, so the
order of ties is compared too), and some positions and options are invalid
on purpose. Two keys are sorted sets, "z3" a plain ZADD set with arbitrary
scores, and "str" a string (WRONGTYPE).

Coordinates in RESP3 are doubles printed with 17 decimals; until the reply
writer offers that form (shardkv._native.DoubleText), RESP3 programs leave
out the commands that reply with coordinates (GEOPOS, WITHCOORD).

Profiles (HYPOTHESIS_PROFILE env var, applied to these tests only):
  ci   (default) 120 examples, derandomized, no example database
  long           2000 examples, random, example database on
"""

from __future__ import annotations


import pytest
from hypothesis import given
from hypothesis import strategies as st

from . import harness
from .test_generated import run_program

pytestmark = pytest.mark.compat

PROFILE = harness.hypothesis_profile("geo", 120)


def _resp3_coordinates():
    try:
        from shardkv.native import _native
    except ImportError:
        return True
    return hasattr(_native, "DoubleText")


RESP3_COORDS = _resp3_coordinates()

# ---------------------------------------------------------------- strategies

GEO_KEYS = [b"g1", b"g2"]
PROLOGUE = [[b"SET", b"str", b"v"],
            [b"ZADD", b"z3", b"0", b"zero", b"-5", b"neg", b"3479099956230698", b"palermo",
             b"1.5", b"frac", b"4503599627370496", b"top"]]
key = st.sampled_from(GEO_KEYS * 4 + [b"z3", b"str", b"missing"])
member = st.sampled_from([b"a", b"b", b"c", b"d", b"e", b"f", b"1", b"2", b"", b"\x00x",
                          b"zero", b"palermo"])

CENTRES = [(13.361389, 38.115556), (15.087269, 37.502669), (-73.9798091, 40.7598464),
           (179.8, -17.0), (-179.9, -16.5), (0.0, 0.0), (10.0, 85.0), (-120.0, -84.9)]


def b(x) -> bytes:
    if isinstance(x, float):
        return repr(x).encode()
    return str(x).encode()


@st.composite
def position(draw):
    """(lon, lat) arguments: near a centre, a limit, or invalid now and then."""
    kind = draw(st.integers(0, 19))
    if kind == 0:
        return draw(st.sampled_from([
            (b"180", b"85.05112878"), (b"-180", b"-85.05112878"), (b"180", b"0"),
            (b"181", b"0"), (b"0", b"85.06"), (b"x", b"1"), (b"1", b"nan"), (b"inf", b"0"),
        ]))
    lon, lat = draw(st.sampled_from(CENTRES))
    if kind < 4:        # exactly a centre: many members in one cell
        return b(lon), b(lat)
    dlon = draw(st.floats(-2.0, 2.0, allow_nan=False))
    dlat = draw(st.floats(-1.0, 1.0, allow_nan=False))
    lon = max(-180.0, min(180.0, round(lon + dlon, draw(st.integers(1, 7)))))
    lat = max(-85.05112878, min(85.05112878, round(lat + dlat, draw(st.integers(1, 7)))))
    return b(lon), b(lat)


unit = st.sampled_from([b"km", b"km", b"km", b"KM", b"mi", b"mi", b"m", b"ft", b"yd"])
distance = st.one_of(
    st.integers(20, 400).map(b),
    st.integers(20, 400).map(b),
    st.sampled_from([b"0", b"1", b"5", b"2500", b"50000", b"300000", b"-1", b"x", b"inf",
                     b"12.5"]),
)


@st.composite
def geoadd_cmd(draw):
    args = [b"GEOADD", draw(key)]
    args += draw(st.lists(st.sampled_from([b"NX", b"XX", b"CH"]), max_size=2))
    for _ in range(draw(st.integers(1, 4))):
        lon, lat = draw(position())
        args += [lon, lat, draw(member)]
    if draw(st.integers(0, 15)) == 0:
        args.append(b"extra")
    return args


@st.composite
def options(draw, coords, store_form):
    """Trailing options of a search: WITH*, ASC/DESC, COUNT [ANY] and, for
    GEORADIUS, STORE/STOREDIST."""
    opts = []
    storing = (store_form == "georadius" and draw(st.integers(0, 3)) == 0
               or store_form == "geosearchstore")
    # WITH* options and storing conflict: try that only now and then
    if not storing or draw(st.integers(0, 15)) == 0:
        if coords:
            for w in (b"WITHDIST", b"WITHHASH", b"WITHCOORD"):
                if draw(st.integers(0, 2)) == 0:
                    opts.append([w])
        elif draw(st.integers(0, 2)) == 0:
            opts.append([b"WITHDIST"])
    if draw(st.booleans()):
        opts.append([draw(st.sampled_from([b"ASC", b"DESC"]))])
    if draw(st.booleans()):
        count = [b"COUNT", b(draw(st.sampled_from([1, 2, 3, 5, 0])))]
        if draw(st.integers(0, 2)) == 0:
            count.append(b"ANY")
        opts.append(count)
    elif draw(st.integers(0, 15)) == 0:
        opts.append([b"ANY"])
    if store_form == "georadius" and storing:
        opts.append([draw(st.sampled_from([b"STORE", b"STOREDIST"])), draw(key)])
    if store_form == "geosearchstore" and draw(st.booleans()):
        opts.append([b"STOREDIST"])
    return [x for o in draw(st.permutations(opts)) for x in o]


@st.composite
def search_cmd(draw, coords):
    form = draw(st.sampled_from(["geosearch", "geosearchstore", "georadius", "georadiusbymember",
                                 "georadius_ro", "georadiusbymember_ro"]))
    src = draw(key)
    if form in ("geosearch", "geosearchstore"):
        head = [form.upper().encode()]
        if form == "geosearchstore":
            head.append(draw(key))
        head.append(src)
        parts = []
        if draw(st.booleans()):
            parts.append([b"FROMMEMBER", draw(member)])
        else:
            parts.append([b"FROMLONLAT", *draw(position())])
        if draw(st.booleans()):
            parts.append([b"BYRADIUS", draw(distance), draw(unit)])
        else:
            parts.append([b"BYBOX", draw(distance), draw(distance), draw(unit)])
        if draw(st.integers(0, 20)) == 0:
            parts.pop(draw(st.integers(0, 1)))
        args = head + [x for p in draw(st.permutations(parts)) for x in p]
        return args + draw(options(coords and form == "geosearch", form))
    if form.startswith("georadiusbymember"):
        args = [form.upper().encode(), src, draw(member), draw(distance), draw(unit)]
    else:
        args = [form.upper().encode(), src, *draw(position()), draw(distance), draw(unit)]
    store_form = "georadius" if not form.endswith("_ro") else None
    return args + draw(options(coords, store_form))


def read_cmds(coords):
    cmds = [
        st.tuples(key, member, member).map(lambda t: [b"GEODIST", *t]),
        st.tuples(key, member, member, unit).map(lambda t: [b"GEODIST", *t]),
        st.tuples(key, st.lists(member, min_size=1, max_size=4)).map(
            lambda t: [b"GEOHASH", t[0], *t[1]]),
        st.just([b"ZRANGE", b"g1", b"0", b"-1", b"WITHSCORES"]),
        key.map(lambda k: [b"ZCARD", k]),
        key.map(lambda k: [b"OBJECT", b"ENCODING", k]),
    ]
    if coords:
        cmds.append(st.tuples(key, st.lists(member, min_size=1, max_size=4)).map(
            lambda t: [b"GEOPOS", t[0], *t[1]]))
    return st.one_of(*cmds)


def command(coords):
    return st.one_of(geoadd_cmd(), geoadd_cmd(), search_cmd(coords), search_cmd(coords),
                     read_cmds(coords))


@st.composite
def seed_cmd(draw, k):
    """A first GEOADD that gives key k a few members, so searches find some."""
    args = [b"GEOADD", k]
    for m in draw(st.lists(member, min_size=3, max_size=10, unique=True)):
        lon, lat = draw(position())
        args += [lon, lat, m]
    return args


@st.composite
def program(draw, protocol):
    coords = protocol == 2 or RESP3_COORDS
    seeds = [draw(seed_cmd(k)) for k in GEO_KEYS]
    body = draw(st.lists(command(coords), min_size=4, max_size=25))
    return PROLOGUE + seeds + body


@st.composite
def protocol_and_program(draw):
    protocol = draw(st.sampled_from([2, 3]))
    return protocol, draw(program(protocol))


# ---------------------------------------------------------------- comparison


@PROFILE
@given(case=protocol_and_program())
def test_generated_geo(valkey_server, target_server, case):
    protocol, commands = case
    run_program(valkey_server, target_server, commands, protocol)
