"""Lua scripting and functions (EVAL, FCALL and friends) on lupa's Lua 5.1.

engine.py owns the Lua states, the run of one script (its context, the
redis.call bridge, reply conversions both ways, the busy/kill machinery);
bootstrap.py is the Lua half of the sandbox; libs.py the cjson, cmsgpack,
bit and struct libraries. The commands live in shardkv/commands/scripting.py.
"""

from shardkv.scripting.engine import engine_of

__all__ = ["engine_of"]
