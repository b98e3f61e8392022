"""shardkv: a Redis-compatible in-memory data store with a Cython core."""

__version__ = "0.1.0"
# The Redis version shardkv reports (INFO redis_version, HELLO): clients use it
# to decide which commands they may send, and shardkv implements Redis 7's.
REDIS_VERSION = "7.2.4"
