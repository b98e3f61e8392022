"""The list value. It lives in the compiled core (cython_ext/listtype.pxi,
whose header comment explains the node layout) because pushes and pops are
hot commands; this module gives it its usual import path."""

from shardkv.native import _native

ListValue = _native.ListValue
Node = _native.Node
entry_size = _native.entry_size
is_int_entry = _native.is_int_entry
exceeds_limit = _native.exceeds_limit
is_large = _native.is_large
LP_EMPTY_BYTES = _native.LP_EMPTY_BYTES
SIZE_SAFETY_LIMIT = _native.SIZE_SAFETY_LIMIT
FILL_MAX = _native.FILL_MAX

__all__ = ["ListValue", "Node", "entry_size", "is_int_entry", "exceeds_limit", "is_large",
           "LP_EMPTY_BYTES", "SIZE_SAFETY_LIMIT", "FILL_MAX"]
