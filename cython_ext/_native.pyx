# cython: language_level=3
# shardkv's compiled core, one extension module built from the files it
# includes: the keyspace table, the RESP parser and writer, the event loop,
# the command gate and the hot string commands. See _native.pxd for the
# declarations they share.

include "keyspace.pxi"
include "resp_parser.pxi"
include "dtoa.pxi"
include "resp_writer.pxi"
include "loop.pxi"
include "core.pxi"
include "listtype.pxi"
include "hot.pxi"
include "crc16.pxi"
include "resp_scanner.pxi"
include "router.pxi"

NATIVE_VERSION = 1
