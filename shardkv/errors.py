"""Every error text shardkv sends, in one place, worded exactly as Redis words
them (clients and tests match on these strings)."""

from shardkv.native import _native

ReplyError = _native.ReplyError

WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
SYNTAX = "ERR syntax error"
NOT_INTEGER = "ERR value is not an integer or out of range"
NOT_FLOAT = "ERR value is not a valid float"
OVERFLOW = "ERR increment or decrement would overflow"
NO_SUCH_KEY = "ERR no such key"
DB_INDEX_OUT_OF_RANGE = "ERR DB index is out of range"
INVALID_DB_INDEX = "ERR invalid DB index"
SOURCE_DEST_SAME = "ERR source and destination objects are the same"
STRING_TOO_LONG = "ERR string exceeds maximum allowed size (proto-max-bulk-len)"
OFFSET_OUT_OF_RANGE = "ERR offset is out of range"
INVALID_CURSOR = "ERR invalid cursor"
NOT_ALLOWED_IN_MULTI = "ERR Command not allowed inside a transaction"
WATCH_IN_MULTI = "ERR WATCH inside MULTI is not allowed"
MULTI_NESTED = "ERR MULTI calls can not be nested"
DISCARD_WITHOUT_MULTI = "ERR DISCARD without MULTI"
NOAUTH = "NOAUTH Authentication required."
WRONGPASS = "WRONGPASS invalid username-password pair or user is disabled."
AUTH_NOT_CONFIGURED = (
    "ERR AUTH <password> called without any password configured for the default user. "
    "Are you sure your configuration is correct?"
)
NOPROTO = "NOPROTO unsupported protocol version"
NX_XX_GT_LT = "ERR NX and XX, GT or LT options at the same time are not compatible"
GT_AND_LT = "ERR GT and LT options at the same time are not compatible"
INCR_NAN_OR_INF = "ERR increment would produce NaN or Infinity"
SLOWLOG_COUNT = "ERR count should be greater than or equal to -1"


def wrong_arity(name):
    return f"ERR wrong number of arguments for '{name}' command"


def invalid_expire(command):
    return f"ERR invalid expire time in '{command}' command"


def subcommand_syntax(argv):
    """Valkey's addReplySubcommandSyntaxError: a subcommand whose own handler
    found the wrong number of arguments (the subcommand as the user wrote
    it, cut at 128 characters; the container upper case)."""
    return (f"ERR unknown subcommand or wrong number of arguments for "
            f"'{argv[1].decode('latin-1')[:128]}'. Try {argv[0].decode('latin-1').upper()} HELP.")


def unrecognized_replconf(option):
    return f"ERR Unrecognized REPLCONF option: {option.decode('latin-1')}"


def unknown_subcommand(sub, container):
    return f"ERR unknown subcommand '{sub}'. Try {container} HELP."


def error(text):
    """The exception a handler raises to answer with `text`."""
    return ReplyError(text)

# replication
INVALID_MASTER_PORT = "ERR Invalid master port"
NOMASTERLINK = "NOMASTERLINK Can't SYNC while not connected with my master"
SYNC_WITH_PENDING_OUTPUT = "ERR SYNC and PSYNC are invalid with pending output"
TIMEOUT_NOT_INTEGER = "ERR timeout is not an integer or out of range"
TIMEOUT_NEGATIVE = "ERR timeout is negative"
WAIT_ON_REPLICA = (
    "ERR WAIT cannot be used with replica instances. Please also note that if a replica is "
    "configured to be writable (which is not the default) writes to replicas are just local "
    "and are not propagated."
)
