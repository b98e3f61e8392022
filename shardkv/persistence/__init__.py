"""Persistence: RDB snapshots (rdb.py: the format; snapshot.py: SAVE,
BGSAVE, save rules, loading at start-up) and the append-only file (aof.py).
The DUMP/RESTORE commands and SAVE/BGSAVE/BGREWRITEAOF live in
shardkv/commands/persistence.py."""
