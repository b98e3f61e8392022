# Key hashing for Redis Cluster slots: CRC16 (XMODEM: polynomial 0x1021, no
# reflection, initial value 0) of the key, or of its hash tag, mod 16384. The
# hash tag is the part between the first '{' and the first '}' after it, when
# that part is not empty.

from libc.stdint cimport uint16_t

cdef uint16_t CRC16_TABLE[256]

cdef void _fill_crc16_table():
    cdef int i, j
    cdef uint16_t crc
    for i in range(256):
        crc = <uint16_t>(i << 8)
        for j in range(8):
            if crc & 0x8000:
                crc = <uint16_t>((crc << 1) ^ 0x1021)
            else:
                crc = <uint16_t>(crc << 1)
        CRC16_TABLE[i] = crc

_fill_crc16_table()


cdef inline uint16_t crc16_c(const unsigned char *s, Py_ssize_t n):
    cdef uint16_t crc = 0
    cdef Py_ssize_t i
    for i in range(n):
        crc = <uint16_t>((crc << 8) ^ CRC16_TABLE[((crc >> 8) ^ s[i]) & 0xff])
    return crc


cdef int key_slot_c(const unsigned char *s, Py_ssize_t n):
    cdef Py_ssize_t start, end
    for start in range(n):
        if s[start] == c'{':
            break
    else:
        return crc16_c(s, n) & 16383
    for end in range(start + 1, n):
        if s[end] == c'}':
            break
    else:
        return crc16_c(s, n) & 16383
    if end == start + 1:
        return crc16_c(s, n) & 16383
    return crc16_c(s + start + 1, end - start - 1) & 16383


def crc16(data):
    cdef const unsigned char[:] v = data
    if v.shape[0] == 0:
        return 0
    return crc16_c(&v[0], v.shape[0])


def key_slot(key):
    """The cluster slot (0..16383) of a key, honouring hash tags."""
    cdef const unsigned char[:] v = key
    if v.shape[0] == 0:
        return 0
    return key_slot_c(&v[0], v.shape[0])
