"""The same corpus through `shardkv start --shards 3`: a client of the router
must get the replies of a single server, except where a command needs keys of
several shards together and the router answers CROSSSLOT (Redis Cluster's
rule), or where a case is listed in SHARDED_DIFFERENCES with its reason."""

from __future__ import annotations

import pytest

from . import harness
from .test_corpus import OPEN_BUGS, PARAMS, unimplemented

pytestmark = pytest.mark.compat

CROSSSLOT = b"-CROSSSLOT Keys in request don't hash to the same slot\r\n"

# (file, case): reason the reply through the router differs, by design
SHARDED_DIFFERENCES: dict[tuple[str, str], str] = {
    ("scripting.txt", "eval-redis-api"): (
        "a script that declares no keys runs on shard 0 and may not touch keys of other shards "
        "(Redis Cluster's 'non local key' error)"),
    ("connection.txt", "client-misc"): "CLIENT KILL is refused through the router (connect to a shard)",
    ("tracking.txt", "tracking-several-keys-and-flush"): (
        "FLUSHALL reaches every worker, and each sends its invalidate null (valkey: one)"),
    **{("pubsub.txt", case): (
        "a keyspace event of a key on another worker reaches a router subscriber through "
        "worker 0, after the worker's reply: it may arrive after the replies of the next "
        "commands") for case in ("keyspace-events", "keyspace-events-classes",
                                 "keyspace-events-new-and-keymiss")},
    ("tracking.txt", "tracking-default-mode"): (
        "invalidation pushes from another worker may arrive a reply later through the router"),
}


@pytest.mark.parametrize("case,proto", PARAMS)
def test_corpus_through_router(case, proto, valkey_server, sharded_server):
    if case.error:
        pytest.skip(f"corpus syntax error: {case.error}")
    results = harness.run_case(case, {"valkey": valkey_server, "target": sharded_server}, proto)
    bad = harness.first_mismatch(results, "valkey", "target")
    if bad is None:
        return
    msg = harness.describe_mismatch(case, proto, bad, "valkey", "target", results)
    if bad.replies["target"] == CROSSSLOT:
        pytest.xfail("keys on several shards: CROSSSLOT, as in Redis Cluster\n" + msg)
    if case.key in harness.KNOWN_DIFFERENCES or case.key in OPEN_BUGS \
            or unimplemented(case, upto=bad.line.lineno):
        pytest.xfail("differs on one server too (see test_corpus.py)\n" + msg)
    if case.key in SHARDED_DIFFERENCES:
        pytest.xfail(SHARDED_DIFFERENCES[case.key] + "\n" + msg)
    pytest.fail(msg, pytrace=False)
