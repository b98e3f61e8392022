"""MULTI/EXEC/DISCARD/WATCH/UNWATCH. Queuing happens in the gate (core.pxi),
which also runs EXEC's commands through call(); these handlers open, close
and inspect the transaction."""

from shardkv import errors
from shardkv.commands.common import OK
from shardkv.commands.table import command
from shardkv.errors import ReplyError
from shardkv.native import _native

MULTI = _native.CLIENT_FLAGS["MULTI"]


@command("multi", 1, flags="noscript loading stale fast no_multi allow_busy",
         acl="fast transaction", group="transactions", since="1.2.0", internal="tx_control",
         summary="Opens a transaction: later commands are queued until EXEC.")
def multi(c, argv):
    c.flags |= MULTI
    c.multi_queue = []
    return OK


@command("exec", 1, flags="noscript loading stale skip_commandlog", acl="slow transaction",
         group="transactions", since="1.2.0", internal="tx_control",
         complexity="Depends on commands in the transaction",
         summary="Runs the queued commands of a transaction atomically.")
def exec_(c, argv):
    return c.server.exec_transaction(c)


@command("discard", 1, flags="noscript loading stale fast allow_busy", acl="fast transaction",
         group="transactions", since="2.0.0", internal="tx_control",
         complexity="O(N), when N is the number of queued commands",
         summary="Drops the queued commands of a transaction.")
def discard(c, argv):
    if not c.flag(MULTI):
        raise ReplyError(errors.DISCARD_WITHOUT_MULTI)
    c.server.discard_transaction(c)
    return OK


@command("watch", -2, flags="noscript loading stale fast no_multi allow_busy",
         acl="fast transaction", keys=(1, -1, 1), specs=["RO: index 1, range -1 1 0"],
         group="transactions", since="2.2.0", internal="tx_control",
         complexity="O(1) for every key.",
         summary="Makes the next EXEC fail if any of these keys changes first.")
def watch(c, argv):
    for key in argv[1:]:
        c.server.watch(c, key)
    return OK


@command("unwatch", 1, flags="noscript loading stale fast allow_busy", acl="fast transaction",
         group="transactions", since="2.2.0",
         summary="Forgets every key WATCHed by this connection.")
def unwatch(c, argv):
    c.server.unwatch_all(c)
    return OK
