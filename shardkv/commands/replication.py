"""Replication commands: REPLICAOF/SLAVEOF, ROLE and WAIT for users; REPLCONF,
PSYNC and SYNC, which replicas send to their primary. The protocol itself
lives in shardkv/replication.py."""

import logging

from shardkv import errors
from shardkv.commands.common import NO_REPLY, OK, Status, int_arg, parse_int
from shardkv.commands.table import command
from shardkv.errors import ReplyError
from shardkv.native import _native

F = _native.CLIENT_FLAGS
log = logging.getLogger("shardkv")
ADMIN = dict(acl="admin slow dangerous", group="server")


def _replicaof(c, argv):
    s = c.server
    repl = s.repl
    if argv[1].lower() == b"no" and argv[2].lower() == b"one":
        if s.is_replica:
            repl.unset_master()
            log.info("MASTER MODE enabled (user request from '%s')" % c.addr)
        return OK
    port = parse_int(argv[2])
    if port is None or not 0 <= port <= 65535:
        raise ReplyError(errors.INVALID_MASTER_PORT)
    host = argv[1].decode("latin-1")
    if s.is_replica and repl.master_host == host and repl.master_port == port:
        return Status(b"OK Already connected to specified master")
    repl.set_master(host, port)
    log.info("REPLICAOF %s:%d enabled (user request from '%s')" % (host, port, c.addr))
    return OK


@command("replicaof", 3, flags="admin noscript stale no_async_loading", since="5.0.0",
         summary="Makes this server a replica of another, or (NO ONE) a primary.", **ADMIN)
def replicaof(c, argv):
    return _replicaof(c, argv)


@command("slaveof", 3, flags="admin noscript stale no_async_loading", since="1.0.0",
         summary="Makes this server a replica of another, or (NO ONE) a primary (old name of REPLICAOF).",
         **ADMIN)
def slaveof(c, argv):
    return _replicaof(c, argv)


@command("replconf", -1, flags="admin noscript loading stale allow_busy", since="3.0.0",
         summary="A replica's settings and offset acknowledgements, for its primary.", **ADMIN)
def replconf(c, argv):
    if len(argv) % 2 == 0:
        raise ReplyError(errors.SYNTAX)
    options = [(argv[i], argv[i + 1]) for i in range(1, len(argv), 2)]
    return OK if c.server.repl.replconf(c, options) else NO_REPLY


@command("psync", -3, flags="admin noscript no_async_loading no_multi", since="2.8.0",
         summary="Starts, or continues from an offset, a replication stream.", **ADMIN)
def psync(c, argv):
    offset = int_arg(argv[2])
    c.server.repl.psync(c, argv[1].decode("latin-1"), offset)
    return NO_REPLY


@command("sync", 1, flags="admin noscript no_async_loading no_multi", since="1.0.0",
         summary="Starts a replication stream (the protocol before PSYNC).", **ADMIN)
def sync(c, argv):
    c.server.repl.psync(c, "?", -1, pre_psync=True)
    return NO_REPLY


@command("role", 1, flags="noscript loading stale fast", acl="admin fast dangerous", group="server",
         since="2.8.12", summary="Tells whether this server is a primary or a replica, with its offsets.")
def role(c, argv):
    return c.server.repl.role()


@command("wait", 3, flags="blocking", acl="slow blocking connection", group="generic", since="3.0.0",
         tips="request_policy:all_shards response_policy:agg_min",
         summary="Waits until the writes of this connection reached a number of replicas.")
def wait(c, argv):
    s = c.server
    if s.is_replica:
        raise ReplyError(errors.WAIT_ON_REPLICA)
    numreplicas = int_arg(argv[1])
    timeout = parse_int(argv[2])
    if timeout is None:
        raise ReplyError(errors.TIMEOUT_NOT_INTEGER)
    if timeout < 0:
        raise ReplyError(errors.TIMEOUT_NEGATIVE)
    in_transaction = bool(c.flags & F["EXECUTING"]) or s.call_depth > 1
    return s.repl.wait(c, numreplicas, timeout, in_transaction)
