"""Bit work over string values (SETBIT GETBIT BITCOUNT BITPOS BITOP BITFIELD)."""
