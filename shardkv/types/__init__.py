"""Value classes of the non-string data types (one module per type). Each
stored value implements the value protocol: TYPE_NAME, encoding(), copy(),
digest_parts() and memory_usage(); the command modules in shardkv.commands
hold the commands over them."""
