"""Geohash arithmetic for the geo commands, as Redis and Valkey do it: pure
functions over floats and ints, no I/O.

A position is stored as the score of a sorted-set member: a 52-bit integer
whose even bits are the latitude cell and odd bits the longitude cell, each
26 bits wide, over longitudes -180..180 and latitudes -85.05112878..85.05112878
(the Web Mercator limits; the poles cannot be indexed). Decoding gives the
centre of the cell, so GEOPOS returns slightly moved coordinates, the same ones
Redis returns. GEOHASH re-encodes that centre over the standard latitude range
-90..90 and spells it in the geohash base32 alphabet.

A search (GEOSEARCH, GEORADIUS) scans nine cells: the one holding the centre,
at a step (bits per axis) chosen from the radius, and its eight neighbours,
dropping those the shape cannot reach. Each cell is a range of scores;
members in range are kept if they fall inside the shape. Every float
operation here is the one Redis's C code does, in the same order, so
distances and cell choices agree to the last bit (Python's math module calls
the same libm).
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_EVEN, Decimal

LONG_MIN = -180.0
LONG_MAX = 180.0
LAT_MIN = -85.05112878
LAT_MAX = 85.05112878
STEP_MAX = 26                       # bits per axis: 52-bit scores
EARTH_RADIUS = 6372797.560856       # meters, Redis's quadratic mean radius
MERCATOR_MAX = 20037726.37
# Below this |sin(dlon/2)| two longitudes count as equal (about 6 nanometres).
LON_EPSILON = 1e-15
D_R = math.pi / 180.0

GEO_RANGES = ((LONG_MIN, LONG_MAX), (LAT_MIN, LAT_MAX))
STANDARD_RANGES = ((-180.0, 180.0), (-90.0, 90.0))
BASE32 = b"0123456789bcdefghjkmnpqrstuvwxyz"

RADIUS, BOX, POLYGON = "radius", "box", "polygon"

_U64 = (1 << 64) - 1
_TOP = 1 << 63
_EVEN = 0x5555555555555555
_ODD = 0xAAAAAAAAAAAAAAAA

_atan2 = math.atan2
_isfinite = math.isfinite
_math_sin, _math_cos, _math_sqrt, _math_asin = math.sin, math.cos, math.sqrt, math.asin


# libm's answers where Python's math module raises instead (infinite
# arguments, values out of the domain): NaN, which C code carries along.
def _sin(x):
    return math.sin(x) if _isfinite(x) else math.nan


def _cos(x):
    return math.cos(x) if _isfinite(x) else math.nan


def _sqrt(x):
    return math.sqrt(x) if x >= 0 else math.nan


def _asin(x):
    return math.asin(x) if -1.0 <= x <= 1.0 else math.nan


def deg_rad(a):
    return a * D_R


def rad_deg(a):
    return a / D_R


# ---------------------------------------------------------------- bits

def _spread(v):
    """The 32 low bits of v moved to the even bit positions of a 64-bit word."""
    v &= 0xFFFFFFFF
    v = (v | (v << 16)) & 0x0000FFFF0000FFFF
    v = (v | (v << 8)) & 0x00FF00FF00FF00FF
    v = (v | (v << 4)) & 0x0F0F0F0F0F0F0F0F
    v = (v | (v << 2)) & 0x3333333333333333
    return (v | (v << 1)) & _EVEN


def _gather(v):
    """The even bits of a 64-bit word packed into 32 bits (inverse of _spread)."""
    v &= _EVEN
    v = (v | (v >> 1)) & 0x3333333333333333
    v = (v | (v >> 2)) & 0x0F0F0F0F0F0F0F0F
    v = (v | (v >> 4)) & 0x00FF00FF00FF00FF
    v = (v | (v >> 8)) & 0x0000FFFF0000FFFF
    return (v | (v >> 16)) & 0xFFFFFFFF


def interleave(lat_cell, lon_cell):
    """Latitude bits at even positions, longitude bits at odd ones."""
    return _spread(lat_cell) | (_spread(lon_cell) << 1)


def deinterleave(bits):
    """(latitude cell, longitude cell) of interleaved bits."""
    return _gather(bits), _gather(bits >> 1)


def score_to_bits(score):
    """The score as C's (uint64_t) cast of a double gives it on x86-64 (what
    Redis decodes): truncation, two's complement for negatives, and the
    saturating conversions for values out of range."""
    if score != score:
        return _TOP
    if score >= 9223372036854775808.0:
        rest = score - 9223372036854775808.0
        low = int(rest) if rest < 9223372036854775808.0 else _TOP
        return (low ^ _TOP) & _U64
    if score < -9223372036854775808.0:
        return _TOP
    return int(score) & _U64


# ---------------------------------------------------------------- encode / decode

def encode(lon, lat, step, ranges=GEO_RANGES):
    """The cell bits of (lon, lat) at `step` bits per axis, or None outside
    the ranges."""
    (lon_min, lon_max), (lat_min, lat_max) = ranges
    if lon > LONG_MAX or lon < LONG_MIN or lat > LAT_MAX or lat < LAT_MIN:
        return None
    if lat < lat_min or lat > lat_max or lon < lon_min or lon > lon_max:
        return None
    lat_off = (lat - lat_min) / (lat_max - lat_min) * float(1 << step)
    lon_off = (lon - lon_min) / (lon_max - lon_min) * float(1 << step)
    return interleave(int(lat_off), int(lon_off))


def align52(bits, step):
    return (bits << (52 - step * 2)) & _U64


def encode_score(lon, lat):
    """The 52-bit sorted-set score of a position (GEOADD)."""
    return align52(encode(lon, lat, STEP_MAX), STEP_MAX)


def decode_area(bits, step, ranges=GEO_RANGES):
    """(lon_min, lon_max, lat_min, lat_max) of a cell."""
    (lon_min, lon_max), (lat_min, lat_max) = ranges
    lat_cell, lon_cell = deinterleave(bits)
    div = float(1 << step)
    lat_scale = lat_max - lat_min
    lon_scale = lon_max - lon_min
    return (lon_min + (lon_cell / div) * lon_scale,
            lon_min + ((lon_cell + 1) / div) * lon_scale,
            lat_min + (lat_cell / div) * lat_scale,
            lat_min + ((lat_cell + 1) / div) * lat_scale)


_CELLS = float(1 << STEP_MAX)
_LON_SCALE = LONG_MAX - LONG_MIN
_LAT_SCALE = LAT_MAX - LAT_MIN


def decode_score(score):
    """(lon, lat) of a score: the centre of its cell, held to the limits.
    (decode_area at step 26, inlined: searches decode every candidate.)"""
    bits = int(score) if 0.0 <= score < 9223372036854775808.0 else score_to_bits(score)
    v = bits & _EVEN
    v = (v | (v >> 1)) & 0x3333333333333333
    v = (v | (v >> 2)) & 0x0F0F0F0F0F0F0F0F
    v = (v | (v >> 4)) & 0x00FF00FF00FF00FF
    v = (v | (v >> 8)) & 0x0000FFFF0000FFFF
    lat_cell = (v | (v >> 16)) & 0xFFFFFFFF
    v = (bits >> 1) & _EVEN
    v = (v | (v >> 1)) & 0x3333333333333333
    v = (v | (v >> 2)) & 0x0F0F0F0F0F0F0F0F
    v = (v | (v >> 4)) & 0x00FF00FF00FF00FF
    v = (v | (v >> 8)) & 0x0000FFFF0000FFFF
    lon_cell = (v | (v >> 16)) & 0xFFFFFFFF
    lon = ((LONG_MIN + (lon_cell / _CELLS) * _LON_SCALE)
           + (LONG_MIN + ((lon_cell + 1) / _CELLS) * _LON_SCALE)) / 2
    lat = ((LAT_MIN + (lat_cell / _CELLS) * _LAT_SCALE)
           + (LAT_MIN + ((lat_cell + 1) / _CELLS) * _LAT_SCALE)) / 2
    if lon > LONG_MAX:
        lon = LONG_MAX
    elif lon < LONG_MIN:
        lon = LONG_MIN
    if lat > LAT_MAX:
        lat = LAT_MAX
    elif lat < LAT_MIN:
        lat = LAT_MIN
    return lon, lat


def geohash_string(score):
    """The 11-character GEOHASH text of a score: its cell centre encoded over
    the standard -90..90 latitudes; the 11th character stands for bits
    Redis does not have and is always '0'."""
    lon, lat = decode_score(score)
    bits = encode(lon, lat, STEP_MAX, STANDARD_RANGES)
    out = bytearray(11)
    for i in range(10):
        out[i] = BASE32[(bits >> (52 - (i + 1) * 5)) & 0x1F]
    out[10] = BASE32[0]
    return bytes(out)


# ---------------------------------------------------------------- neighbours

def _move_x(bits, step, d):
    """One cell east (d > 0) or west (d < 0): the odd (longitude) bits."""
    if d == 0:
        return bits
    x = bits & _ODD
    y = bits & _EVEN
    zz = _EVEN >> (64 - step * 2)
    if d > 0:
        x = x + (zz + 1)
    else:
        x = (x | zz) - (zz + 1)
    x &= _ODD >> (64 - step * 2)
    return (x | y) & _U64


def _move_y(bits, step, d):
    """One cell north (d > 0) or south (d < 0): the even (latitude) bits."""
    if d == 0:
        return bits
    x = bits & _ODD
    y = bits & _EVEN
    zz = _ODD >> (64 - step * 2)
    if d > 0:
        y = y + (zz + 1)
    else:
        y = (y | zz) - (zz + 1)
    y &= _EVEN >> (64 - step * 2)
    return (x | y) & _U64


# The order Redis scans the nine cells in, as (dx, dy) from the centre.
NEIGHBOUR_MOVES = {
    "north": (0, 1), "south": (0, -1), "east": (1, 0), "west": (-1, 0),
    "north_east": (1, 1), "north_west": (-1, 1), "south_east": (1, -1), "south_west": (-1, -1),
}
SCAN_ORDER = ("centre", "north", "south", "east", "west",
              "north_east", "north_west", "south_east", "south_west")


def neighbours(bits, step):
    """name -> bits of the eight cells around a cell (wrapping at the edges
    as the bit arithmetic does)."""
    return {name: _move_y(_move_x(bits, step, dx), step, dy)
            for name, (dx, dy) in NEIGHBOUR_MOVES.items()}


# ---------------------------------------------------------------- distances

def lat_distance(lat1, lat2):
    """Meters along a meridian."""
    return EARTH_RADIUS * abs(deg_rad(lat2) - deg_rad(lat1))


def distance(lon1, lat1, lon2, lat2):
    """Great-circle distance in meters (haversine), as Redis computes it."""
    if not (_isfinite(lon1) and _isfinite(lon2) and _isfinite(lat1) and _isfinite(lat2)):
        return _distance_nonfinite(lon1, lat1, lon2, lat2)
    v = _math_sin((lon2 * D_R - lon1 * D_R) / 2)
    if -LON_EPSILON <= v <= LON_EPSILON:
        return EARTH_RADIUS * abs(lat2 * D_R - lat1 * D_R)
    lat1r = lat1 * D_R
    lat2r = lat2 * D_R
    u = _math_sin((lat2r - lat1r) / 2)
    a = u * u + _math_cos(lat1r) * _math_cos(lat2r) * v * v
    x = _math_sqrt(a)
    return 2.0 * EARTH_RADIUS * (_math_asin(x) if x <= 1.0 else math.nan)


def _distance_nonfinite(lon1, lat1, lon2, lat2):
    # the same steps with libm's NaN answers for infinite arguments
    v = _sin((deg_rad(lon2) - deg_rad(lon1)) / 2)
    if abs(v) <= LON_EPSILON:
        return lat_distance(lat1, lat2)
    lat1r = deg_rad(lat1)
    lat2r = deg_rad(lat2)
    u = _sin((lat2r - lat1r) / 2)
    a = u * u + _cos(lat1r) * _cos(lat2r) * v * v
    return 2.0 * EARTH_RADIUS * _asin(_sqrt(a))


# ---------------------------------------------------------------- shapes

class Shape:
    """A search area: a circle (radius), an axis-aligned box (width and
    height) around a centre, or a polygon (vertices, centre = centroid).
    Sizes are in `unit`s; `conversion` is meters per unit."""

    __slots__ = ("kind", "lon", "lat", "radius", "width", "height", "conversion",
                 "vertices", "bounds")

    def __init__(self, kind, lon=0.0, lat=0.0, radius=0.0, width=0.0, height=0.0,
                 conversion=1.0, vertices=None):
        self.kind = kind
        self.lon, self.lat = lon, lat
        self.radius, self.width, self.height = radius, width, height
        self.conversion = conversion
        self.vertices = vertices
        self.bounds = None

    def contains(self, lon, lat):
        """The distance in meters from the centre if (lon, lat) is inside,
        else None."""
        if self.kind == RADIUS:
            d = distance(self.lon, self.lat, lon, lat)
            return None if d > self.radius * self.conversion else d
        if self.kind == BOX:
            return in_rectangle(self.width * self.conversion, self.height * self.conversion,
                                self.lon, self.lat, lon, lat)
        return in_polygon(self.lon, self.lat, lon, lat, self.vertices)


def in_rectangle(width_m, height_m, x1, y1, x2, y2):
    """Distance from the box centre (x1, y1) to (x2, y2) if the point is in
    the box, else None. The latitude test is the cheap one, so it goes first."""
    if lat_distance(y2, y1) > height_m / 2:
        return None
    if distance(x2, y2, x1, y2) > width_m / 2:
        return None
    return distance(x1, y1, x2, y2)


def in_polygon(clon, clat, lon, lat, vertices):
    """Distance from the centroid if (lon, lat) is inside the polygon (ray
    casting on plain longitude/latitude), else None."""
    inside = False
    n = len(vertices)
    j = n - 1
    for i in range(n):
        ax, ay = vertices[i]
        bx, by = vertices[j]
        if (ay > lat) != (by > lat) and lon < (bx - ax) * (lat - ay) / (by - ay) + ax:
            inside = not inside
        j = i
    return distance(clon, clat, lon, lat) if inside else None


def estimate_step(range_m, lat):
    """Bits per axis of the nine cells that cover a search of this radius."""
    if range_m == 0:
        return 26
    step = 1
    while range_m < MERCATOR_MAX:
        range_m *= 2
        step += 1
    step -= 2
    if lat > 66 or lat < -66:
        step -= 1
        if lat > 80 or lat < -80:
            step -= 1
    return max(1, min(26, step))


def bounding_box(shape):
    """(min_lon, min_lat, max_lon, max_lat) around the shape; for a polygon
    this also sets the shape's centre to the vertices' centroid."""
    if shape.kind == POLYGON:
        min_lon, max_lon = LONG_MAX, LONG_MIN
        min_lat, max_lat = LAT_MAX, LAT_MIN
        x = y = z = 0.0
        for lon, lat in shape.vertices:
            min_lon = lon if lon < min_lon else min_lon
            max_lon = lon if lon > max_lon else max_lon
            min_lat = lat if lat < min_lat else min_lat
            max_lat = lat if lat > max_lat else max_lat
            lon_r = deg_rad(lon)
            lat_r = deg_rad(lat)
            x += _cos(lat_r) * _cos(lon_r)
            y += _cos(lat_r) * _sin(lon_r)
            z += _sin(lat_r)
        shape.lon = rad_deg(_atan2(y, x))
        shape.lat = rad_deg(_atan2(z, _sqrt(x * x + y * y)))
        return min_lon, min_lat, max_lon, max_lat
    if shape.kind == RADIUS:
        height = width = shape.conversion * shape.radius
    else:
        height = shape.conversion * shape.height / 2
        width = shape.conversion * shape.width / 2
    lon, lat = shape.lon, shape.lat
    lat_delta = rad_deg(height / EARTH_RADIUS)
    long_delta_top = rad_deg(width / EARTH_RADIUS / _cos(deg_rad(lat + lat_delta)))
    long_delta_bottom = rad_deg(width / EARTH_RADIUS / _cos(deg_rad(lat - lat_delta)))
    # the wide edge is the one nearer the equator
    delta = long_delta_bottom if lat < 0 else long_delta_top
    return lon - delta, lat - lat_delta, lon + delta, lat + lat_delta


def search_cells(shape):
    """The cells to scan for a shape, in Redis's order: a list of
    (bits, step), with None for the neighbours the shape cannot reach."""
    min_lon, min_lat, max_lon, max_lat = shape.bounds = bounding_box(shape)
    lon, lat = shape.lon, shape.lat
    if shape.kind == RADIUS:
        radius_m = shape.radius
    elif shape.kind == BOX:
        radius_m = _sqrt((shape.width / 2) * (shape.width / 2) + (shape.height / 2) * (shape.height / 2))
    else:
        # the farthest corner of the bounding box from the centroid
        radius_m = distance(lon, lat, min_lon, max_lat)
        for d in (distance(lon, lat, max_lon, max_lat), distance(lon, lat, min_lon, min_lat),
                  distance(lon, lat, max_lon, min_lat)):
            if d > radius_m:
                radius_m = d
    radius_m *= shape.conversion

    step = estimate_step(radius_m, lat)
    centre = encode(lon, lat, step) or 0
    around = neighbours(centre, step)
    # the estimated step may be too fine when the area reaches past a
    # neighbouring cell: then use cells twice as large
    if step > 1:
        north = decode_area(around["north"], step)
        south = decode_area(around["south"], step)
        east = decode_area(around["east"], step)
        west = decode_area(around["west"], step)
        if north[3] < max_lat or south[2] > min_lat or east[1] < max_lon or west[0] > min_lon:
            step -= 1
            centre = encode(lon, lat, step) or 0
            around = neighbours(centre, step)
    area = decode_area(centre, step)
    dropped = set()
    if step >= 2:
        if area[2] < min_lat:
            dropped.update(("south", "south_west", "south_east"))
        if area[3] > max_lat:
            dropped.update(("north", "north_east", "north_west"))
        if area[0] < min_lon:
            dropped.update(("west", "south_west", "north_west"))
        if area[1] > max_lon:
            dropped.update(("east", "south_east", "north_east"))
    cells = [(centre, step)]
    for name in SCAN_ORDER[1:]:
        cells.append(None if name in dropped else (around[name], step))
    return cells


def score_range(bits, step):
    """[min, max) of the scores inside a cell."""
    return align52(bits, step), align52(bits + 1, step)


# ---------------------------------------------------------------- text

def format_distance(d):
    """A distance with 4 decimals, as Redis prints them (rounded to nearest
    even on d * 10000, like llrint)."""
    if d == 0:
        return b"0.0000"
    scaled = d * 10000.0
    if scaled != scaled or scaled >= 9.223372036854775807e18 or scaled < -9.223372036854775808e18:
        svalue = -(1 << 63)     # llrint's "invalid" result
    else:
        svalue = round(scaled)
    sign = b"-" if svalue < 0 else b""
    q, r = divmod(abs(svalue), 10000)
    return b"%s%d.%04d" % (sign, q, r)


_Q17 = Decimal("1e-17")


def format_coord(x):
    """A coordinate as Redis prints long doubles for humans: 17 decimals
    ("%.17Lf") without trailing zeros."""
    if x != x:
        return b"nan"
    if x in (math.inf, -math.inf):
        return b"inf" if x > 0 else b"-inf"
    text = format(Decimal(x).quantize(_Q17, rounding=ROUND_HALF_EVEN), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if text == "-0":
        text = "0"
    return text.encode()


def format_pair_error(lon, lat):
    """The text of Redis's "%f,%f" for an invalid position."""
    return "ERR invalid longitude,latitude pair %s,%s" % (_c_f(lon), _c_f(lat))


def _c_f(x):
    if x != x:
        return "-nan" if math.copysign(1.0, x) < 0 else "nan"
    if x in (math.inf, -math.inf):
        return "inf" if x > 0 else "-inf"
    return "%f" % x
