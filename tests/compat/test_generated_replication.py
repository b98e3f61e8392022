"""The generated programs of every command family, run on a shardkv primary
that has a shardkv replica: after each program the replica must hold the
very same data (DEBUG DIGEST, which covers values and expiry times).

This checks the propagation of every write command, including the ones whose
effect must be rewritten to replicate deterministically (SPOP, SRANDMEMBER
count, INCRBYFLOAT, XADD *, XREADGROUP, ZRANDMEMBER, PFCOUNT's cache,
relative expiry, MULTI/EXEC), against the replica applying the stream.

Profiles as the other generated tests (HYPOTHESIS_PROFILE=long for more).
"""

from __future__ import annotations

import time

import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st

from . import harness
from . import test_generated as strings
from . import test_generated_bitmaps as bitmaps
from . import test_generated_collections as collections
from . import test_generated_geo as geo
from . import test_generated_hll as hll
from . import test_generated_streams as streams
from . import test_generated_zsets as zsets

pytestmark = pytest.mark.compat

PROFILE = harness.hypothesis_profile("replication", 150)

programs = st.one_of(strings.program, bitmaps.program, collections.program, hll.program,
                     streams.program, zsets.program, geo.program(2))


def _client(srv):
    return redis.Redis(host=harness.HOST, port=srv.port, protocol=2, socket_timeout=10)


def _in_sync(primary, replica, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        offset = primary.info("replication")["master_repl_offset"]
        q = replica.info("replication")
        if q.get("master_link_status") == "up" and q.get("slave_repl_offset") == offset:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"replica not in sync: primary at {offset}, replica {q}")
        time.sleep(0.01)


@pytest.fixture(scope="module")
def replicated(request):
    reason = harness.shardkv_import_error()
    if reason:
        pytest.skip(reason)
    primary = harness.start_shardkv(["--repl-diskless-sync-delay", "0"])
    request.addfinalizer(primary.cleanup)
    replica = harness.start_shardkv(["--replicaof", harness.HOST, str(primary.port)])
    request.addfinalizer(replica.cleanup)
    p, q = _client(primary), _client(replica)
    _in_sync(p, q)
    return primary, p, q


@PROFILE
@given(commands=programs)
def test_generated_programs_replicate(replicated, commands):
    primary, p, q = replicated
    c = harness.prepare_connection(primary, 2)
    try:
        for args in commands:
            harness.run_command(c, args)
    finally:
        c.close()
    _in_sync(p, q)
    assert p.execute_command("DEBUG", "DIGEST") == q.execute_command("DEBUG", "DIGEST"), commands
