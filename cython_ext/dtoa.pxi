# Doubles as valkey 9.1 prints them in replies (d2string() in util.c, used by
# addReplyDouble for RESP2 bulk strings and RESP3 doubles):
#
#   NaN -> "nan", +-infinity -> "inf" / "-inf", zeros -> "0" / "-0";
#   integral values in [-2^62, 2^62] -> the whole integer ("10000000000000000");
#   anything else -> the digits of Grisu2 (fpconv_dtoa) laid out as fpconv does.
#
# Grisu2 (Loitsch, "Printing Floating-Point Numbers Quickly and Accurately with
# Integers", 2010) scales the double and its two rounding boundaries by a cached
# power of ten so that the result has its binary point 32..60 bits from the top,
# then emits decimal digits of the upper boundary until the remainder falls
# inside the (slightly narrowed) boundary interval, and finally nudges the last
# digit towards the double. The text always reads back as the same double, and
# is nearly always, but not always, the shortest such text (1e23 prints as
# "99999999999999990000000"); valkey prints the same, so the quirks are kept.
#
# Layout of the digits D (n of them, value D * 10^K, first digit at 10^E with
# E = K + n - 1):
#   K >= 0 and K < 8 (so E < n + 7)   -> D followed by K zeros ("9223372036854776000")
#   K < 0 and (K > -7 or |E| < 4)     -> plain decimal ("0.00001", "123.456")
#   otherwise                         -> d.ddd e+-E, exponent without padding
#                                        ("1e+21", "1e-7", "6.948674738744653e+5")

cimport cython
from libc.stdint cimport uint64_t
from libc.string cimport memcpy, memset


cdef struct _DiyFp:
    uint64_t f      # significand
    int e           # binary exponent: the value is f * 2^e


# 10^k for k = -348, -340, ..., 340, each as a 64-bit significand with its top
# bit set (rounded to nearest) and the binary exponent that goes with it.
cdef uint64_t[87] _DTOA_POW10_F = [
    0xfa8fd5a0081c0288ULL, 0xbaaee17fa23ebf76ULL, 0x8b16fb203055ac76ULL,
    0xcf42894a5dce35eaULL, 0x9a6bb0aa55653b2dULL, 0xe61acf033d1a45dfULL,
    0xab70fe17c79ac6caULL, 0xff77b1fcbebcdc4fULL, 0xbe5691ef416bd60cULL,
    0x8dd01fad907ffc3cULL, 0xd3515c2831559a83ULL, 0x9d71ac8fada6c9b5ULL,
    0xea9c227723ee8bcbULL, 0xaecc49914078536dULL, 0x823c12795db6ce57ULL,
    0xc21094364dfb5637ULL, 0x9096ea6f3848984fULL, 0xd77485cb25823ac7ULL,
    0xa086cfcd97bf97f4ULL, 0xef340a98172aace5ULL, 0xb23867fb2a35b28eULL,
    0x84c8d4dfd2c63f3bULL, 0xc5dd44271ad3cdbaULL, 0x936b9fcebb25c996ULL,
    0xdbac6c247d62a584ULL, 0xa3ab66580d5fdaf6ULL, 0xf3e2f893dec3f126ULL,
    0xb5b5ada8aaff80b8ULL, 0x87625f056c7c4a8bULL, 0xc9bcff6034c13053ULL,
    0x964e858c91ba2655ULL, 0xdff9772470297ebdULL, 0xa6dfbd9fb8e5b88fULL,
    0xf8a95fcf88747d94ULL, 0xb94470938fa89bcfULL, 0x8a08f0f8bf0f156bULL,
    0xcdb02555653131b6ULL, 0x993fe2c6d07b7facULL, 0xe45c10c42a2b3b06ULL,
    0xaa242499697392d3ULL, 0xfd87b5f28300ca0eULL, 0xbce5086492111aebULL,
    0x8cbccc096f5088ccULL, 0xd1b71758e219652cULL, 0x9c40000000000000ULL,
    0xe8d4a51000000000ULL, 0xad78ebc5ac620000ULL, 0x813f3978f8940984ULL,
    0xc097ce7bc90715b3ULL, 0x8f7e32ce7bea5c70ULL, 0xd5d238a4abe98068ULL,
    0x9f4f2726179a2245ULL, 0xed63a231d4c4fb27ULL, 0xb0de65388cc8ada8ULL,
    0x83c7088e1aab65dbULL, 0xc45d1df942711d9aULL, 0x924d692ca61be758ULL,
    0xda01ee641a708deaULL, 0xa26da3999aef774aULL, 0xf209787bb47d6b85ULL,
    0xb454e4a179dd1877ULL, 0x865b86925b9bc5c2ULL, 0xc83553c5c8965d3dULL,
    0x952ab45cfa97a0b3ULL, 0xde469fbd99a05fe3ULL, 0xa59bc234db398c25ULL,
    0xf6c69a72a3989f5cULL, 0xb7dcbf5354e9beceULL, 0x88fcf317f22241e2ULL,
    0xcc20ce9bd35c78a5ULL, 0x98165af37b2153dfULL, 0xe2a0b5dc971f303aULL,
    0xa8d9d1535ce3b396ULL, 0xfb9b7cd9a4a7443cULL, 0xbb764c4ca7a44410ULL,
    0x8bab8eefb6409c1aULL, 0xd01fef10a657842cULL, 0x9b10a4e5e9913129ULL,
    0xe7109bfba19c0c9dULL, 0xac2820d9623bf429ULL, 0x80444b5e7aa7cf85ULL,
    0xbf21e44003acdd2dULL, 0x8e679c2f5e44ff8fULL, 0xd433179d9c8cb841ULL,
    0x9e19db92b4e31ba9ULL, 0xeb96bf6ebadf77d9ULL, 0xaf87023b9bf0ee6bULL
]
cdef int[87] _DTOA_POW10_E = [
    -1220, -1193, -1166, -1140, -1113, -1087, -1060, -1034, -1007, -980, -954, -927,
    -901, -874, -847, -821, -794, -768, -741, -715, -688, -661, -635, -608,
    -582, -555, -529, -502, -475, -449, -422, -396, -369, -343, -316, -289,
    -263, -236, -210, -183, -157, -130, -103, -77, -50, -24, 3, 30,
    56, 83, 109, 136, 162, 189, 216, 242, 269, 295, 322, 348,
    375, 402, 428, 455, 481, 508, 534, 561, 588, 614, 641, 667,
    694, 720, 747, 774, 800, 827, 853, 880, 907, 933, 960, 986,
    1013, 1039, 1066
]

cdef enum:
    _DTOA_FIRST_POW10 = -348
    _DTOA_POW10_STEP = 8
    _DTOA_MIN_EXP = -60     # window for the scaled exponent: the integral part
    _DTOA_MAX_EXP = -32     # of the scaled upper boundary fits in 32 bits


cdef inline _DiyFp _dtoa_mul(_DiyFp x, _DiyFp y) noexcept nogil:
    """The top 64 bits of x.f * y.f, rounded (half up) on the dropped half."""
    cdef uint64_t lo32 = 0xFFFFFFFFULL
    cdef uint64_t xh = x.f >> 32, xl = x.f & lo32
    cdef uint64_t yh = y.f >> 32, yl = y.f & lo32
    cdef uint64_t hh = xh * yh, hl = xh * yl, lh = xl * yh, ll = xl * yl
    cdef uint64_t mid = (ll >> 32) + (hl & lo32) + (lh & lo32) + (<uint64_t>1 << 31)
    cdef _DiyFp r
    r.f = hh + (hl >> 32) + (lh >> 32) + (mid >> 32)
    r.e = x.e + y.e + 64
    return r


cdef inline void _dtoa_round_last(char *digits, int n, uint64_t delta, uint64_t rest,
                                  uint64_t ten_kappa, uint64_t wdist) noexcept nogil:
    """Lowers the last digit while the candidate stays inside the interval
    (rest <= delta) and gets closer to the double (at wdist below the upper
    boundary); rest is the distance from the candidate to the upper boundary."""
    while (rest < wdist and delta - rest >= ten_kappa
           and (rest + ten_kappa < wdist or wdist - rest > rest + ten_kappa - wdist)):
        digits[n - 1] -= 1
        rest += ten_kappa


@cython.cdivision(True)
cdef int _dtoa_digits(_DiyFp w, _DiyFp up, _DiyFp lo, char *digits, int *K) noexcept nogil:
    """Digits of the scaled upper boundary up to the first prefix that lies in
    [lo, up]; adds the decimal exponent of the last digit to K[0]."""
    cdef uint64_t wdist = up.f - w.f
    cdef uint64_t delta = up.f - lo.f
    cdef int shift = -up.e
    cdef uint64_t one = (<uint64_t>1) << shift
    cdef uint64_t mask = one - 1
    cdef uint64_t integral = up.f >> shift      # < 2^32, so at most 10 digits
    cdef uint64_t fraction = up.f & mask
    cdef uint64_t div = 1000000000ULL
    cdef uint64_t digit, rest, scale
    cdef int n = 0
    cdef int kappa = 10
    # digits of the integral part, leading zeros skipped
    while kappa > 0:
        digit = integral // div
        if digit != 0 or n != 0:
            digits[n] = <char>(c'0' + digit)
            n += 1
        integral -= digit * div
        kappa -= 1
        rest = (integral << shift) + fraction
        if rest <= delta:
            K[0] += kappa
            _dtoa_round_last(digits, n, delta, rest, div << shift, wdist)
            return n
        div //= 10
    # digits of the fractional part; the interval grows by ten with each one
    scale = 1
    while True:
        fraction *= 10
        delta *= 10
        scale *= 10
        kappa -= 1
        digit = fraction >> shift
        if digit != 0 or n != 0:
            digits[n] = <char>(c'0' + digit)
            n += 1
        fraction &= mask
        if fraction < delta:
            K[0] += kappa
            _dtoa_round_last(digits, n, delta, fraction, one, wdist * scale)
            return n


@cython.cdivision(True)
cdef int _dtoa_grisu2(uint64_t bits, char *digits, int *K) noexcept nogil:
    """Grisu2 digits of the finite, non-zero double with these IEEE bits (sign
    ignored): returns their count and sets K[0] so the value is D * 10^K."""
    cdef uint64_t hidden = (<uint64_t>1) << 52
    cdef uint64_t m = bits & (hidden - 1)
    cdef int biased = <int>((bits >> 52) & 0x7FF)
    cdef int e, shift, approx, idx, k
    cdef _DiyFp w, up, lo, c
    if biased != 0:
        m += hidden
        e = biased - 1075
    else:
        e = -1074
    # upper boundary (m + 1/2) * 2^e, normalised to bit 63
    up.f = (m << 1) + 1
    up.e = e - 1
    while (up.f & (hidden << 1)) == 0:
        up.f <<= 1
        up.e -= 1
    up.f <<= 10
    up.e -= 10
    # lower boundary (m - 1/2) * 2^e, or (m - 1/4) * 2^e when only the hidden
    # bit is set, brought to the exponent of the upper one
    shift = 2 if m == hidden else 1
    lo.f = (m << shift) - 1
    lo.e = e - shift
    lo.f <<= lo.e - up.e
    lo.e = up.e
    # the double itself, normalised to bit 63
    w.f = m
    w.e = e
    while (w.f & hidden) == 0:
        w.f <<= 1
        w.e -= 1
    w.f <<= 11
    w.e -= 11
    # a cached power of ten that brings the exponent of up into the window:
    # guess from log10(2), then step (the guess is never negative here)
    approx = <int>((<double>(-(up.e + 87))) * 0.30102999566398114)
    idx = (approx - _DTOA_FIRST_POW10) // _DTOA_POW10_STEP
    while True:
        k = up.e + _DTOA_POW10_E[idx] + 64
        if k < _DTOA_MIN_EXP:
            idx += 1
        elif k > _DTOA_MAX_EXP:
            idx -= 1
        else:
            break
    c.f = _DTOA_POW10_F[idx]
    c.e = _DTOA_POW10_E[idx]
    w = _dtoa_mul(w, c)
    up = _dtoa_mul(up, c)
    lo = _dtoa_mul(lo, c)
    # the products may be off by one unit: narrow the interval to stay safe
    lo.f += 1
    up.f -= 1
    K[0] = -(_DTOA_FIRST_POW10 + idx * _DTOA_POW10_STEP)
    return _dtoa_digits(w, up, lo, digits, K)


@cython.cdivision(True)
cdef int _dtoa_uint(char *out, uint64_t v) noexcept nogil:
    """v in decimal; returns the number of bytes."""
    cdef char tmp[24]
    cdef int n = 0, i = 0
    while True:
        tmp[n] = <char>(c'0' + v % 10)
        n += 1
        v //= 10
        if v == 0:
            break
    while n > 0:
        n -= 1
        out[i] = tmp[n]
        i += 1
    return i


cdef int _dtoa_layout(const char *digits, int n, int K, bint neg, char *out) noexcept nogil:
    """Lays out the digits D (value D * 10^K) as fpconv_dtoa does."""
    cdef int first = K + n - 1         # decimal exponent of the first digit
    cdef int afirst = -first if first < 0 else first
    cdef int point, i
    if K >= 0 and afirst < n + 7:
        # an integer with at most 7 zeros appended
        memcpy(out, digits, n)
        memset(out + n, c'0', K)
        return n + K
    if K < 0 and (K > -7 or afirst < 4):
        point = n + K                  # digits before the decimal point
        if point <= 0:
            out[0] = c'0'
            out[1] = c'.'
            memset(out + 2, c'0', -point)
            memcpy(out + 2 - point, digits, n)
            return n + 2 - point
        memcpy(out, digits, point)
        out[point] = c'.'
        memcpy(out + point + 1, digits + point, n - point)
        return n + 1
    # scientific notation (fpconv keeps at most 18 bytes of digits with the sign)
    if n > 18 - neg:
        n = 18 - neg
    i = 0
    out[i] = digits[0]
    i += 1
    if n > 1:
        out[i] = c'.'
        memcpy(out + i + 1, digits + 1, n - 1)
        i += n
    out[i] = c'e'
    out[i + 1] = c'-' if first < 0 else c'+'
    i += 2
    return i + _dtoa_uint(out + i, <uint64_t>afirst)


cdef int format_double_into(char *out, double d) noexcept nogil:
    """Writes d as valkey's d2string() does into out (at least 32 bytes);
    returns the number of bytes written."""
    cdef uint64_t bits
    cdef long long ll
    cdef char digits[24]
    cdef int n, K = 0, i = 0
    cdef bint neg
    memcpy(&bits, &d, 8)
    neg = (bits >> 63) != 0
    if d != d:
        out[0] = c'n'
        out[1] = c'a'
        out[2] = c'n'
        return 3
    if neg:
        out[0] = c'-'
        i = 1
    if (bits & 0x7FFFFFFFFFFFFFFFULL) == 0x7FF0000000000000ULL:
        out[i] = c'i'
        out[i + 1] = c'n'
        out[i + 2] = c'f'
        return i + 3
    if d == 0:
        out[i] = c'0'
        return i + 1
    # integral values within +-2^62 print as the integer
    if -4611686018427387904.0 <= d <= 4611686018427387904.0:
        ll = <long long>d
        if <double>ll == d:
            if ll < 0:
                return i + _dtoa_uint(out + i, <uint64_t>(-ll))
            return i + _dtoa_uint(out + i, <uint64_t>ll)
    n = _dtoa_grisu2(bits, digits, &K)
    return i + _dtoa_layout(digits, n, K, neg, out + i)


cdef bytes format_double(double d):
    """A double as valkey 9.1 prints it in replies (see the top of this file)."""
    cdef char buf[32]
    cdef int n = format_double_into(buf, d)
    return buf[:n]


def py_format_double(double d):
    return format_double(d)
