"""shardkv.geohash without sockets: scores, cell centres, geohash strings,
distances, neighbours, search cells and the number formats, checked
against values valkey-server 9.1 gives for the same inputs."""

import math
import random

import pytest

from shardkv import geohash as gh

PALERMO = (13.361389, 38.115556)
CATANIA = (15.087269, 37.502669)


# ---------------------------------------------------------------- scores and positions

def test_scores_of_known_places():
    assert gh.encode_score(*PALERMO) == 3479099956230698
    assert gh.encode_score(*CATANIA) == 3479447370796909


def test_decode_gives_the_cell_centre():
    lon, lat = gh.decode_score(3479099956230698.0)
    assert gh.format_coord(lon) == b"13.36138933897018433"
    assert gh.format_coord(lat) == b"38.11555639549629859"
    lon, lat = gh.decode_score(3479447370796909.0)
    assert (gh.format_coord(lon), gh.format_coord(lat)) == (b"15.08726745843887329",
                                                            b"37.50266842333162032")


def test_limits_are_indexable_and_clamped():
    # the top cell's centre is past the limit: held to it
    lon, lat = gh.decode_score(float(gh.encode_score(180.0, gh.LAT_MAX)))
    assert lon == 180.0 and lat == gh.LAT_MAX
    assert gh.format_coord(lat) == b"85.0511287799999991"
    lon, lat = gh.decode_score(float(gh.encode_score(-180.0, gh.LAT_MIN)))
    assert gh.format_coord(lon) == b"-179.99999731779098511"
    assert gh.format_coord(lat) == b"-85.05112751263942528"


def test_out_of_range_positions_do_not_encode():
    assert gh.encode(180.0001, 0, 26) is None
    assert gh.encode(0, 85.06, 26) is None
    assert gh.encode(0, -90, 26) is None


@pytest.mark.parametrize("score,bits", [
    (-5.0, 2**64 - 5),
    (1.5, 1),
    (-1e19, 1 << 63),
    (-math.inf, 1 << 63),
    (1e19, 10000000000000000000),
    (2e19, 0),
    (math.inf, 0),
    (1e300, 0),
])
def test_scores_convert_to_bits_as_c_does(score, bits):
    assert gh.score_to_bits(score) == bits


@pytest.mark.parametrize("score,lon,lat", [
    (-5.0, b"180", b"85.0511287799999991"),
    (1e300, b"-179.99999731779098511", b"-85.05112751263942528"),
    (-math.inf, b"180", b"-85.05112751263942528"),
    (1.5, b"-179.99999731779098511", b"-85.05112497791824921"),
])
def test_odd_scores_decode_as_valkey(score, lon, lat):
    x, y = gh.decode_score(score)
    assert (gh.format_coord(x), gh.format_coord(y)) == (lon, lat)


def test_interleave_round_trip():
    rng = random.Random(7)
    for _ in range(200):
        a, b = rng.getrandbits(32), rng.getrandbits(32)
        assert gh.deinterleave(gh.interleave(a, b)) == (a, b)
    # latitude on the even bits, longitude on the odd ones
    assert gh.interleave(1, 0) == 1 and gh.interleave(0, 1) == 2


def test_encode_decode_round_trip_stays_in_the_cell():
    rng = random.Random(3)
    for _ in range(500):
        lon = rng.uniform(-180, 180)
        lat = rng.uniform(gh.LAT_MIN, gh.LAT_MAX)
        bits = gh.encode(lon, lat, 26)
        lo1, lo2, la1, la2 = gh.decode_area(bits, 26)
        assert lo1 <= lon <= lo2 and la1 <= lat <= la2


# ---------------------------------------------------------------- GEOHASH

def test_geohash_strings():
    assert gh.geohash_string(3479099956230698.0) == b"sqc8b49rny0"
    assert gh.geohash_string(3479447370796909.0) == b"sqdtr74hyu0"
    # the poles of the index and odd scores
    assert gh.geohash_string(-5.0) == b"bp05b5048p0"
    assert gh.geohash_string(0.0) == b"00bh0hbj200"
    assert gh.geohash_string(float(gh.encode_score(180, 0))) == b"80000000000"


# ---------------------------------------------------------------- distances

def test_distance_palermo_catania():
    p = gh.decode_score(3479099956230698.0)
    c = gh.decode_score(3479447370796909.0)
    d = gh.distance(*p, *c)
    assert gh.format_distance(d) == b"166274.1516"
    assert gh.format_distance(d / 1000) == b"166.2742"
    assert gh.format_distance(d / 1609.34) == b"103.3182"
    assert gh.format_distance(d / 0.3048) == b"545518.8700"


def test_distance_on_a_meridian_uses_the_latitude_only():
    assert gh.distance(10, 0, 10, 1) == gh.lat_distance(0, 1)
    assert gh.distance(10, 0, 10 + 1e-14, 1) == gh.lat_distance(0, 1)   # |sin| under 1e-15


def test_distance_is_nan_not_an_exception_for_bad_input():
    assert math.isnan(gh.distance(0, 0, math.inf, 0))


@pytest.mark.parametrize("d,text", [
    (0.0, b"0.0000"), (-0.0, b"0.0000"), (0.00004, b"0.0000"), (0.00005, b"0.0000"),
    (0.00015, b"0.0001"), (0.00025, b"0.0002"), (0.00035, b"0.0004"), (1.23456, b"1.2346"), (12345.6789, b"12345.6789"),
    (-1.5, b"-1.5000"), (math.nan, b"-922337203685477.5808"),
])
def test_format_distance(d, text):
    assert gh.format_distance(d) == text


@pytest.mark.parametrize("x,text", [
    (180.0, b"180"), (0.0, b"0"), (-0.0, b"0"), (-1e-20, b"0"), (0.5, b"0.5"),
    (2.682209014892578e-06, b"0.00000268220901489"),
])
def test_format_coord(x, text):
    assert gh.format_coord(x) == text


def test_pair_error_text():
    assert gh.format_pair_error(181.0, 0.0) == "ERR invalid longitude,latitude pair 181.000000,0.000000"
    assert gh.format_pair_error(math.inf, -0.0) == "ERR invalid longitude,latitude pair inf,-0.000000"


# ---------------------------------------------------------------- cells

def test_neighbours_are_adjacent_cells():
    step = 10
    bits = gh.encode(*PALERMO, step)
    lo1, lo2, la1, la2 = gh.decode_area(bits, step)
    n = gh.neighbours(bits, step)
    north = gh.decode_area(n["north"], step)
    south = gh.decode_area(n["south"], step)
    east = gh.decode_area(n["east"], step)
    west = gh.decode_area(n["west"], step)
    assert north[2] == pytest.approx(la2) and north[0] == lo1
    assert south[3] == pytest.approx(la1) and south[0] == lo1
    assert east[0] == pytest.approx(lo2) and east[2] == la1
    assert west[1] == pytest.approx(lo1) and west[2] == la1
    ne = gh.decode_area(n["north_east"], step)
    assert ne[0] == pytest.approx(lo2) and ne[2] == pytest.approx(la2)


def test_neighbours_wrap_at_the_antimeridian():
    step = 8
    bits = gh.encode(179.9, 0, step)
    east = gh.decode_area(gh.neighbours(bits, step)["east"], step)
    assert east[0] == -180.0


@pytest.mark.parametrize("radius,lat,step", [
    (0, 0, 26), (1, 0, 24), (100, 0, 17), (1000, 0, 14), (100000, 0, 7),
    (5000000, 0, 2), (1e9, 0, 1), (1000, 70, 13), (1000, -85, 12), (math.inf, 0, 1),
])
def test_estimate_step(radius, lat, step):
    assert gh.estimate_step(radius, lat) == step


def test_search_cells_cover_the_circle():
    rng = random.Random(11)
    for _ in range(300):
        lon = rng.uniform(-180, 180)
        lat = rng.uniform(-80, 80)
        radius = 10 ** rng.uniform(0, 6.5)
        shape = gh.Shape(gh.RADIUS, lon, lat, radius=radius, conversion=1.0)
        cells = gh.search_cells(shape)
        assert len(cells) == 9 and cells[0] is not None
        # a point just inside the circle, due north, is in one of the cells
        dlat = math.degrees(radius * 0.99 / gh.EARTH_RADIUS)
        if lat + dlat < gh.LAT_MAX:
            score = gh.encode_score(lon, lat + dlat)
            assert any(c is not None and gh.score_range(*c)[0] <= score < gh.score_range(*c)[1]
                       for c in cells)


def test_score_range_of_a_cell():
    lo, hi = gh.score_range(0b101010, 3)
    assert lo == 0b101010 << 46 and hi == 0b101011 << 46


# ---------------------------------------------------------------- shapes

def test_box_contains():
    shape = gh.Shape(gh.BOX, 0.0, 0.0, width=200.0, height=100.0, conversion=1000.0)
    assert shape.contains(0.5, 0.0) is not None       # ~55.6 km east, half width 100 km
    assert shape.contains(0.0, 0.5) is None           # ~55.6 km north, half height 50 km
    assert shape.contains(0.0, 0.0) == 0.0


def test_radius_contains():
    shape = gh.Shape(gh.RADIUS, *gh.decode_score(3479099956230698.0), radius=200.0,
                     conversion=1000.0)
    c = gh.decode_score(3479447370796909.0)
    assert gh.format_distance(shape.contains(*c)) == b"166274.1516"
    shape.radius = 100.0
    assert shape.contains(*c) is None


def test_polygon_centroid_and_contains():
    square = [(10.0, 10.0), (12.0, 10.0), (12.0, 12.0), (10.0, 12.0)]
    shape = gh.Shape(gh.POLYGON, vertices=square)
    box = gh.bounding_box(shape)
    assert box == (10.0, 10.0, 12.0, 12.0)
    assert shape.lon == pytest.approx(11.0) and shape.lat == pytest.approx(11.0, abs=1e-2)
    assert shape.contains(11.0, 11.0) is not None
    assert shape.contains(13.0, 11.0) is None
    assert shape.contains(11.0, 9.9) is None
