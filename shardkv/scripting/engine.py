"""The scripting engine of one shard: two Lua states (one for EVAL scripts,
one for function libraries, as Valkey keeps them), the script cache, the
libraries, and the run of one script.

A script runs to completion inside the EVAL/FCALL handler, so nothing else
runs on the shard meanwhile. Its redis.call()s go through server.call() on a
socketless script client, so each write is propagated on its own (effects
replication); call_depth > 0 makes the core wrap them in MULTI/EXEC. The
count hook calls interrupt() every HOOK_COUNT Lua instructions: past
busy-reply-threshold the shard starts answering other clients (-BUSY to all
but allow_busy commands) and SCRIPT KILL / FUNCTION KILL can stop the script.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict

from lupa import lua51

from shardkv import REDIS_VERSION
from shardkv.native import _native
from shardkv.scripting import libs
from shardkv.scripting.bootstrap import BOOTSTRAP

log = logging.getLogger("shardkv")

HOOK_COUNT = 100000
LUA_MAX_MEMORY = 1 << 30          # per Lua state
EVAL_LRU_LENGTH = 500             # scripts added by EVAL (not SCRIPT LOAD) are evicted past this
FUNCTION_LOAD_TIMEOUT_MS = 500

EXECUTING = _native.CLIENT_FLAGS["EXECUTING"]
ROUTED = _native.CLIENT_FLAGS["ROUTED"]
MASTER = _native.CLIENT_FLAGS["MASTER"]
CMD_WRITE = 1 << 0
CMD_NOSCRIPT = 1 << 6
CMD_ALLOW_BUSY = 1 << 20

FLAG_NAMES = ["no-writes", "allow-oom", "allow-stale", "no-cluster", "allow-cross-slot-keys"]
VALKEY_VERSION = "9.1.2"

BUSY_EVAL = "BUSY Valkey is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."
BUSY_FUNCTION = "BUSY Valkey is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE."


def _version_num(v):
    a, b, c = (int(x) for x in v.split("."))
    return (a << 16) | (b << 8) | c


def sha1hex(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


class ScriptError(Exception):
    """A refusal before the script runs: the error reply."""


class Script:
    __slots__ = ("sha", "body", "flags", "func", "from_eval")

    def __init__(self, sha, body, flags, func, from_eval):
        self.sha, self.body, self.flags, self.func, self.from_eval = sha, body, flags, func, from_eval


class Function:
    __slots__ = ("name", "desc", "flags", "callback", "library")

    def __init__(self, name, desc, flags, callback):
        self.name, self.desc, self.flags, self.callback, self.library = name, desc, flags, callback, None


class Library:
    __slots__ = ("name", "code", "functions")

    def __init__(self, name, code):
        self.name, self.code, self.functions = name, code, {}


class RunCtx:
    """One running script."""

    def __init__(self, caller, eval_mode, readonly, allow_cross_slot, name):
        self.caller = caller
        self.eval_mode = eval_mode
        self.readonly = readonly
        self.allow_cross_slot = allow_cross_slot
        self.name = name
        self.start = time.monotonic()
        self.timed_out = False
        self.killed = False
        self.write_dirty = False
        self.repl_flags = 3
        self.slot = -1
        self.load_deadline = None     # FUNCTION LOAD: no server API, a time limit


def parse_shebang(body: bytes):
    """(flags or None for compat mode, length of the shebang line); ScriptError."""
    if not body.startswith(b"#!"):
        return None, 0
    end = body.find(b"\n")
    if end < 0:
        raise ScriptError("ERR Invalid script shebang")
    parts = body[:end].split()
    if not parts:
        raise ScriptError("ERR Invalid engine in script shebang")
    engine = parts[0][2:]
    if engine.lower() != b"lua":
        raise ScriptError("ERR Could not find scripting engine '%s'" % engine.decode("latin-1"))
    flags = set()
    for p in parts[1:]:
        if p.startswith(b"flags="):
            for f in p[6:].split(b","):
                name = f.decode("latin-1")
                if name not in FLAG_NAMES:
                    raise ScriptError("ERR Unexpected flag in script shebang: %s" % name)
                flags.add(name)
        else:
            raise ScriptError("ERR Unknown lua shebang option: %s" % p.decode("latin-1"))
    return flags, end


class Rand48:
    """Valkey's rand48 (redisLrand48), so math.random gives its sequence."""

    def __init__(self):
        self.x = 0x1234ABCD330E

    def next(self):
        self.x = (0x5DEECE66D * self.x + 0xB) & 0xFFFFFFFFFFFF
        return self.x >> 17

    def seed(self, s):
        self.x = (((s & 0xFFFFFFFF) << 16) | 0x330E) & 0xFFFFFFFFFFFF


class LuaState:
    """One Lua runtime with the sandbox of bootstrap.py."""

    def __init__(self, engine, mode):
        self.engine = engine
        self.mode = mode
        self.lua = lua51.LuaRuntime(encoding=None, unpack_returned_tuples=True, max_memory=LUA_MAX_MEMORY)
        self.pending_functions = None
        e = engine
        versions = self.lua.table_from({b"redis": REDIS_VERSION.encode(), b"redis_num": _version_num(REDIS_VERSION),
                                        b"valkey": VALKEY_VERSION.encode(),
                                        b"valkey_num": _version_num(VALKEY_VERSION)})
        py = self.lua.table_from({
            b"interrupt": e.interrupt, b"rand": e.lua_rand, b"srand": e.lua_srand, b"checkint": e.lua_checkint,
            b"call": e.lua_call, b"tonumber": e.lua_tonumber, b"log": e.lua_log, b"setresp": e.lua_setresp,
            b"sha1hex": e.lua_sha1hex, b"error_text": e.lua_error_text, b"set_repl": e.lua_set_repl,
            b"acl_check_cmd": e.lua_acl_check_cmd, b"register_function": self.register_function,
            b"make_libs": self.make_libs, b"versions": versions})
        loader = self.lua.globals().loadstring
        chunk = loader(BOOTSTRAP.encode(), b"=shardkv")
        if isinstance(chunk, tuple):
            raise RuntimeError("scripting bootstrap failed: %r" % (chunk,))
        self.api = chunk(py, mode.encode(), HOOK_COUNT)
        self.rawget = self.api[b"rawget"]

    def make_libs(self, null):
        t = self.lua.table_from
        out = {b"bit": libs.make_bit(), b"cjson": libs.make_cjson(self.lua, null),
               b"cmsgpack": libs.make_cmsgpack(self.lua), b"struct": libs.make_struct(self.lua)}
        return t({name: t({k.encode(): f for k, f in lib.items() if callable(f)}) for name, lib in out.items()})

    def table(self, items):
        return self.lua.table_from(items)

    # ---------------------------------------------------------- functions
    def register_function(self, argc, *args):
        """redis.register_function while a library loads; an error text or None."""
        err = self._register_function(argc, *args)
        return err.encode() if err is not None else None

    def _register_function(self, argc, *args):
        if self.pending_functions is None:
            return "ERR server.register_function can only be called on FUNCTION LOAD command"
        if argc < 1 or argc > 2:
            return "ERR wrong number of arguments to server.register_function"
        is_fn = self.api[b"is_function"]
        if argc == 1:
            spec = args[0]
            if lua51.lua_type(spec) != "table":
                return ("ERR calling server.register_function with a single argument is only applicable to "
                        "Lua table (representing named arguments).")
            name = desc = callback = None
            flags = set()
            for k, v in spec.items():
                if not isinstance(k, (bytes, int, float)) or isinstance(k, bool):
                    return "ERR named argument key given to server.register_function is not a string"
                key = _lstr(k).lower()
                if key == b"function_name":
                    if _lstr(v) is None:
                        return "ERR function_name argument given to server.register_function must be a string"
                    name = _lstr(v)
                elif key == b"description":
                    if _lstr(v) is None:
                        return "ERR description argument given to server.register_function must be a string"
                    desc = _lstr(v)
                elif key == b"callback":
                    if not is_fn(v):
                        return "ERR callback argument given to server.register_function must be a function"
                    callback = v
                elif key == b"flags":
                    if lua51.lua_type(v) != "table":
                        return ("ERR flags argument to server.register_function must be a table representing "
                                "function flags")
                    i = 1
                    while True:
                        f = v[i]
                        if f is None:
                            break
                        fs = _lstr(f)
                        if fs is None or fs.decode("latin-1").lower() not in FLAG_NAMES:
                            return "ERR unknown flag given"
                        flags.add(fs.decode("latin-1").lower())
                        i += 1
                else:
                    return "ERR unknown argument given to server.register_function"
            if name is None:
                return "ERR server.register_function must get a function name argument"
            if callback is None:
                return "ERR server.register_function must get a callback argument"
        else:
            name = _lstr(args[0])
            if name is None:
                return "ERR first argument to server.register_function must be a string"
            if not is_fn(args[1]):
                return "ERR second argument to server.register_function must be a function"
            callback, desc, flags = args[1], None, set()
        self.pending_functions.append(Function(name, desc, flags, callback))
        return None


def _lstr(v):
    """lua_tostring: strings and numbers (%.14g) as bytes, else None."""
    if isinstance(v, bytes):
        return v
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float)):
        return libs.fmt14(v)
    return None


class ScriptEngine:
    def __init__(self, server):
        self.server = server
        self.scripts = {}
        self.lru = OrderedDict()
        self.libraries = {}
        self.functions = {}
        self.ctx = None
        self.rand = Rand48()
        self.evicted_scripts = 0
        self.client = server.attach_client(_native.Client())
        self.eval_state = LuaState(self, "eval")
        self.func_state = LuaState(self, "function")
        self._prev_gate = None

    # ---------------------------------------------------------- scripts
    def reset_scripts(self):
        self.scripts.clear()
        self.lru.clear()
        self.eval_state = LuaState(self, "eval")

    def register_script(self, body: bytes, from_eval: bool, sha: str | None = None):
        sha = sha or sha1hex(body)
        s = self.scripts.get(sha)
        if s is not None:
            if not from_eval and s.from_eval:
                s.from_eval = False
                self.lru.pop(sha, None)
            return s
        flags, shebang_len = parse_shebang(body)
        f = self.eval_state.api[b"compile"](body[shebang_len:], b"@user_script")
        if isinstance(f, tuple):
            raise ScriptError("ERR Error compiling script (new function): %s" % _text(f[1]))
        if from_eval:
            while len(self.lru) >= EVAL_LRU_LENGTH:
                old, _ = self.lru.popitem(last=False)
                self.scripts.pop(old, None)
                self.evicted_scripts += 1
            self.lru[sha] = True
        s = self.scripts[sha] = Script(sha, body, flags, f, from_eval)
        return s

    def touch_script(self, s):
        if s.from_eval and s.sha in self.lru:
            self.lru.move_to_end(s.sha)

    # ---------------------------------------------------------- functions
    def load_library(self, code: bytes, replace: bool):
        """FUNCTION LOAD: the library name, or ScriptError."""
        if not code.startswith(b"#!"):
            raise ScriptError("ERR Missing library metadata")
        end = code.find(b"\n")
        if end < 0:
            raise ScriptError("ERR Invalid library metadata")
        parts = code[:end].split()
        engine = parts[0][2:]
        if engine.lower() != b"lua":
            raise ScriptError("ERR Engine '%s' not found" % engine.decode("latin-1"))
        name = None
        for p in parts[1:]:
            if p.startswith(b"name="):
                name = p[5:]
            else:
                raise ScriptError("ERR Invalid metadata value given: %s" % p.decode("latin-1"))
        if name is None:
            raise ScriptError("ERR Library name was not given")
        if not _valid_name(name):
            raise ScriptError("ERR Library names can only contain letters, numbers, or underscores(_) and must "
                              "be at least one character long")
        old = self.libraries.get(name)
        if old is not None and not replace:
            raise ScriptError("ERR Library '%s' already exists" % name.decode("latin-1"))
        lib = self.compile_library(name, code)
        for fname in lib.functions:
            owner = self.functions.get(fname)
            if owner is not None and owner.library is not old:
                raise ScriptError("ERR Function %s already exists" % fname.decode("latin-1"))
        if old is not None:
            self._drop_library(old)
        self._add_library(lib)
        return name

    def compile_library(self, name, code):
        st = self.func_state
        st.pending_functions = []
        ctx = RunCtx(None, False, False, False, name)
        ctx.load_deadline = time.monotonic() + FUNCTION_LOAD_TIMEOUT_MS / 1000
        prev, self.ctx = self.ctx, ctx
        try:
            # the code keeps its shebang line as an empty line, as Valkey compiles it
            r = st.api[b"load_library"](code[code.find(b"\n"):])
            ok, err = r if isinstance(r, tuple) else (r, None)
            fns = st.pending_functions
        finally:
            st.pending_functions = None
            self.ctx = prev
        if not ok:
            raise ScriptError("ERR " + _text(err))
        if not fns:
            raise ScriptError("ERR No functions registered")
        lib = Library(name, code)
        for f in fns:
            if not _valid_name(f.name):
                raise ScriptError("ERR Function names can only contain letters, numbers, or underscores(_) and "
                                  "must be at least one character long")
            if f.name in lib.functions:
                raise ScriptError("ERR Function already exists in the library")
            f.library = lib
            lib.functions[f.name] = f
        return lib

    def _add_library(self, lib):
        self.libraries[lib.name] = lib
        for fname, f in lib.functions.items():
            self.functions[fname] = f

    def _drop_library(self, lib):
        self.libraries.pop(lib.name, None)
        for fname in lib.functions:
            self.functions.pop(fname, None)

    def delete_library(self, name):
        lib = self.libraries.get(name)
        if lib is None:
            raise ScriptError("ERR Library not found")
        self._drop_library(lib)

    def flush_functions(self):
        self.libraries.clear()
        self.functions.clear()
        self.func_state = LuaState(self, "function")

    # ---------------------------------------------------------- running
    def prepare(self, caller, flags, ro, eval_mode, name):
        """scriptPrepareForRun: the refusals, then a RunCtx."""
        server = self.server
        routed = bool(caller.flags & ROUTED)
        if flags is not None:
            if "no-cluster" in flags and getattr(server, "cluster_enabled", False) and not routed:
                raise ScriptError("ERR Can not run script on cluster, 'no-cluster' flag is set.")
            if "no-writes" not in flags:
                if server.is_replica and not (caller.flags & MASTER):
                    raise ScriptError("READONLY Can not run script with write flag on readonly replica")
                if ro:
                    raise ScriptError("ERR Can not execute a script with write flag using *_ro command.")
        readonly = ro or (flags is not None and "no-writes" in flags)
        cross = flags is None or "allow-cross-slot-keys" in flags
        return RunCtx(caller, eval_mode, readonly, cross, name)

    def run(self, ctx, state, func, keys, args):
        """Runs a compiled script or function; returns the reply value."""
        if self.ctx is not None:
            raise ScriptError("ERR a script is already running")
        lc = self.client
        lc.db = ctx.caller.db
        lc.proto = 2
        lc.flags |= EXECUTING
        lua = state.lua
        keys_t = lua.table_from(keys)
        args_t = lua.table_from(args)
        self.ctx = ctx
        try:
            ok, res = state.api[b"run"](func, keys_t, args_t)
        except lua51.LuaMemoryError:
            ok, res = False, None
            err = "ERR Error running script, not enough memory"
            return _native.ReplyError(err)
        finally:
            self.ctx = None
            lc.flags &= ~EXECUTING
            if ctx.timed_out:
                self._leave_busy()
        if ok:
            return self.to_reply(res, lc.proto, 0)
        return _native.ReplyError(self.error_text(res))

    def error_text(self, err):
        if lua51.lua_type(err) != "table":
            msg = _text(err) if isinstance(err, bytes) else "execution failure"
            return "ERR Error running script, %s" % msg[:100]
        msg = err[b"err"]
        msg = _text(msg) if isinstance(msg, bytes) else "ERR unknown error"
        source, line = err[b"source"], err[b"line"]
        if source is not None and line is not None:
            msg += " script: on %s:%s." % (_text(_lstr(source)), _text(_lstr(line)))
        return msg

    # ---------------------------------------------------------- Lua -> reply
    def to_reply(self, v, resp, depth):
        if isinstance(v, bytes):
            return v
        if isinstance(v, bool):
            if resp == 2:
                return 1 if v else None
            return v
        if isinstance(v, int):
            return v if -(1 << 63) <= v < (1 << 63) else -(1 << 63)
        if isinstance(v, float):
            if v != v or v >= 9.223372036854776e18 or v < -9.223372036854776e18:
                return -(1 << 63)
            return int(v)
        if lua51.lua_type(v) != "table":
            return None
        if depth > 7000:
            return _native.ReplyError("ERR reached lua stack limit")
        e = v[b"err"]
        if isinstance(e, bytes):
            text = self.error_text(v)
            return _native.ReplyError(text)
        ok = v[b"ok"]
        if isinstance(ok, bytes):
            return _native.Status(ok.replace(b"\r", b" ").replace(b"\n", b" "))
        d = v[b"double"]
        if isinstance(d, (int, float)) and not isinstance(d, bool):
            return _native.DoubleText(_native.py_format_double(float(d)))
        b = v[b"big_number"]
        if isinstance(b, bytes):
            return b.replace(b"\r", b" ").replace(b"\n", b" ")
        vs = v[b"verbatim_string"]
        if lua51.lua_type(vs) == "table":
            fmt, s = vs[b"format"], vs[b"string"]
            if isinstance(fmt, bytes) and isinstance(s, bytes):
                return _native.Verbatim(s)
        m = v[b"map"]
        if lua51.lua_type(m) == "table":
            out = {}
            for k, x in m.items():
                key = self.to_reply(k, resp, depth + 1)
                if isinstance(key, list):
                    key = tuple(key)
                out[key] = self.to_reply(x, resp, depth + 1)
            return out
        s = v[b"set"]
        if lua51.lua_type(s) == "table":
            return _native.RespSet([self.to_reply(k, resp, depth + 1) for k in s.keys()])
        out = []
        i = 1
        while True:
            x = v[i]
            if x is None:
                break
            out.append(self.to_reply(x, resp, depth + 1))
            i += 1
        return out

    # ---------------------------------------------------------- reply -> Lua
    def from_resp(self, data, state):
        pos = [0]
        return self._parse(data, pos, state.lua)

    def _parse(self, data, pos, lua):
        i = pos[0]
        t = data[i:i + 1]
        end = data.index(b"\r\n", i)
        line = data[i + 1:end]
        pos[0] = end + 2
        if t == b"+":
            return lua.table_from({b"ok": line})
        if t == b"-":
            return lua.table_from({b"err": _error_msg(line)})
        if t == b":":
            return int(line)
        if t in (b"$", b"="):
            n = int(line)
            if n < 0:
                return False
            s = data[pos[0]:pos[0] + n]
            pos[0] += n + 2
            if t == b"=":
                return lua.table_from({b"verbatim_string": lua.table_from({b"format": s[:3], b"string": s[4:]})})
            return s
        if t in (b"*", b">"):
            n = int(line)
            if n < 0:
                return False
            tbl = lua.table()
            for j in range(1, n + 1):
                tbl[j] = self._parse(data, pos, lua)
            return tbl
        if t == b"%":
            m = lua.table()
            for _ in range(int(line)):
                k = self._parse(data, pos, lua)
                m[k] = self._parse(data, pos, lua)
            return lua.table_from({b"map": m})
        if t == b"~":
            s = lua.table()
            for _ in range(int(line)):
                s[self._parse(data, pos, lua)] = True
            return lua.table_from({b"set": s})
        if t == b"_":
            return None
        if t == b"#":
            return line == b"t"
        if t == b",":
            return lua.table_from({b"double": float(line)})
        if t == b"(":
            return lua.table_from({b"big_number": line})
        if t == b"|":
            for _ in range(int(line)):
                self._parse(data, pos, lua)
                self._parse(data, pos, lua)
            return self._parse(data, pos, lua)
        raise ValueError("unexpected reply type %r" % t)

    # ---------------------------------------------------------- the Lua API
    def _state(self):
        return self.eval_state if self.ctx is None or self.ctx.eval_mode else self.func_state

    def lua_call(self, *args):
        """redis.call/pcall: (value, is_error)."""
        ctx = self.ctx
        state = self._state()
        lua = state.lua
        if ctx is None or ctx.load_deadline is not None:
            return lua.table_from({b"err": "ERR Please specify at least one argument for this call".encode()}), True
        if not args:
            return self._err(lua, "ERR Please specify at least one argument for this call")
        argv = []
        for a in args:
            t = type(a)
            if t is bytes:
                argv.append(a)
            elif t is int:
                argv.append(b"%d" % a if -(1 << 62) <= a <= (1 << 62) else _native.py_format_double(float(a)))
            elif t is float:
                argv.append(b"%d" % int(a) if a.is_integer() and abs(a) <= 2.0 ** 62
                            else _native.py_format_double(a))
            else:
                return self._err(lua, "ERR Command arguments must be strings or integers")
        server = self.server
        cmd = server.commands.get(argv[0]) or server.commands.get(argv[0].lower())
        if cmd is not None and cmd.subcommands is not None and len(argv) >= 2:
            cmd = cmd.subcommands.get(argv[1].lower())
        argc = len(argv)
        if cmd is None:
            return self._err(lua, "ERR Unknown command called from script")
        if (cmd.arity > 0 and argc != cmd.arity) or argc < -cmd.arity:
            return self._err(lua, "ERR Wrong number of args calling command from script")
        if cmd.flags & CMD_NOSCRIPT:
            return self._err(lua, "ERR This Valkey command is not allowed from script")
        if cmd.flags & CMD_WRITE:
            if ctx.readonly:
                return self._err(lua, "ERR Write commands are not allowed from read-only scripts.")
            if server.is_replica and not (ctx.caller.flags & MASTER):
                return self._err(lua, "READONLY You can't write against a read only replica.")
            ctx.write_dirty = True
        err = self._cluster_check(ctx, cmd, argv)
        if err:
            return self._err(lua, err)
        lc = self.client
        mark = len(server.feed_pending)
        server.call(lc, cmd, argv)
        if ctx.repl_flags == 0:
            del server.feed_pending[mark:]
        out = lc.out.take()
        return self.from_resp(out, state), out[:1] == b"-"

    def _err(self, lua, msg):
        return lua.table_from({b"err": msg.encode()}), True

    def _cluster_check(self, ctx, cmd, argv):
        server = self.server
        targets = server.slot_targets
        if not targets or (ctx.caller.flags & MASTER):
            return None
        try:
            idx = cmd.meta.key_indexes(argv)
        except Exception:
            return None
        slot = -1
        for i in idx:
            s = _native.key_slot(argv[i])
            if slot == -1:
                slot = s
            elif s != slot:
                return "CROSSSLOT Keys in request don't hash to the same slot"
        if slot == -1:
            return None
        if targets[slot] is not None:
            return "ERR Attempted to access a non local key in a cluster node"
        if not ctx.allow_cross_slot and not (ctx.caller.flags & ROUTED):
            if ctx.slot == -1:
                ctx.slot = slot
            elif ctx.slot != slot:
                return "ERR Script attempted to access keys that do not hash to the same slot"
        return None

    def lua_rand(self):
        return (self.rand.next() % 0x7FFFFFFF) / 0x7FFFFFFF

    def lua_srand(self, s):
        self.rand.seed(int(s))

    def lua_checkint(self, n, fname, v):
        if isinstance(v, bytes):
            try:
                v = float(v)
            except ValueError:
                v = None
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return self._state().lua.eval("error")(
                "bad argument #%d to '%s' (number expected, got %s)" % (n, _text(fname), libs._tname(
                    libs._NONE if v is None else v)), 2)
        return int(v)

    def lua_tonumber(self, v):
        if isinstance(v, bool):
            return None
        if isinstance(v, (int, float)):
            return v
        if isinstance(v, bytes):
            try:
                return float(v)
            except ValueError:
                return None
        return None

    def lua_log(self, level, *args):
        level = self.lua_tonumber(level)
        level = int(level)
        if level < 0 or level > 3:
            return b"ERR Invalid log level."
        parts = [_lstr(a) for a in args]
        text = b" ".join(p for p in parts if p is not None).decode("utf-8", "replace")
        log.log({0: logging.DEBUG, 1: logging.INFO, 2: logging.INFO, 3: logging.WARNING}[level], "%s", text)
        return None

    def lua_setresp(self, v):
        n = self.lua_tonumber(v)
        if n is None or int(n) not in (2, 3):
            return b"ERR RESP version must be 2 or 3."
        self.client.proto = int(n)
        return None

    def lua_sha1hex(self, v):
        s = _lstr(v)
        return sha1hex(s if s is not None else b"").encode()

    def lua_error_text(self, e):
        """server.error_reply: "-CODE msg" keeps its code, a bare text gets ERR."""
        if e.startswith(b"-"):
            code, sp, msg = e[1:].partition(b" ")
            if not sp:
                return (b"ERR " + e[1:]).rstrip(b"\r\n")
            return code + b" " + msg.strip(b"\r\n")
        return b"ERR " + e.strip(b"\r\n")

    def lua_set_repl(self, v):
        n = self.lua_tonumber(v)
        n = int(n) if n is not None else 0
        if n & ~3:
            return b"ERR Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE."
        self.ctx.repl_flags = n
        return None

    def lua_acl_check_cmd(self, *args):
        if not args:
            return None, b"ERR Please specify at least one argument for this call"
        name = _lstr(args[0])
        cmd = self.server.commands.get(name) or self.server.commands.get((name or b"").lower())
        if cmd is None:
            return None, b"ERR Invalid command passed to server.acl_check_cmd()"
        return True, None

    # ---------------------------------------------------------- busy scripts
    def busy_threshold_ms(self):
        return self.server.config["busy-reply-threshold"]

    def interrupt(self):
        """Called by the count hook: None to go on, or the kill message."""
        ctx = self.ctx
        if ctx is None:
            return None
        now = time.monotonic()
        if ctx.load_deadline is not None:
            return b"ERR FUNCTION LOAD timeout" if now > ctx.load_deadline else None
        if not ctx.timed_out:
            threshold = self.busy_threshold_ms()
            elapsed = (now - ctx.start) * 1000
            if threshold <= 0 or elapsed < threshold:
                return None
            log.warning("Slow script detected: still in execution after %d milliseconds. You can try killing "
                        "the script using the %s command. Script name is: %s.", elapsed,
                        "SCRIPT KILL" if ctx.eval_mode else "FUNCTION KILL", ctx.name)
            ctx.timed_out = True
            self._enter_busy()
        self.process_events()
        if ctx.killed or self.server.loop.stopping:
            msg = "Script killed by user with SCRIPT KILL." if ctx.eval_mode else \
                "Script killed by user with FUNCTION KILL."
            log.info("%s", msg)
            return ("ERR " + msg).encode()
        return None

    def kill(self, eval_mode):
        ctx = self.ctx
        if ctx is None or ctx.load_deadline is not None:
            raise ScriptError("NOTBUSY No scripts in execution right now.")
        if ctx.caller.flags & MASTER:
            raise ScriptError("UNKILLABLE The busy script was sent by a master instance in the context of "
                              "replication and cannot be killed.")
        if ctx.write_dirty:
            raise ScriptError("UNKILLABLE Sorry the script already executed write commands against the dataset. "
                              "You can either wait the script termination or kill the server in a hard way using "
                              "the SHUTDOWN NOSAVE command.")
        if eval_mode and not ctx.eval_mode:
            raise ScriptError(BUSY_FUNCTION)
        if not eval_mode and ctx.eval_mode:
            raise ScriptError(BUSY_EVAL)
        ctx.killed = True

    def _enter_busy(self):
        self._prev_gate = self.server.gate_hook
        self.server.gate_hook = self._busy_gate

    def _leave_busy(self):
        if self.server.gate_hook == self._busy_gate:
            self.server.gate_hook = self._prev_gate
        self._prev_gate = None

    def _busy_gate(self, c, cmd, argv):
        ctx = self.ctx
        if ctx is not None and ctx.timed_out and c is not ctx.caller:
            busy = BUSY_EVAL if ctx.eval_mode else BUSY_FUNCTION
            if not (cmd.flags & CMD_ALLOW_BUSY):
                return busy
            if cmd.name == "shutdown" and not any(a.lower() == b"nosave" for a in argv[1:]):
                return busy
        prev = self._prev_gate
        return prev(c, cmd, argv) if prev is not None else None

    def process_events(self):
        """Reads and answers other clients while the script runs (Valkey's
        processEventsWhileBlocked): one pass of the worker's own loop that
        does not wait, leaving the script's caller unread until it ends."""
        self.server.loop.process_events_once(self.ctx.caller)


def _valid_name(name: bytes) -> bool:
    return bool(name) and all(ch == 0x5F or 0x30 <= ch <= 0x39 or 0x41 <= ch <= 0x5A or 0x61 <= ch <= 0x7A
                              for ch in name)


def _text(b):
    if isinstance(b, bytes):
        return b.decode("utf-8", "surrogateescape")
    return str(b)


def _error_msg(line: bytes) -> bytes:
    """luaPushErrorBuff on a '-CODE msg' reply line (without the '-')."""
    return line.rstrip(b"\r\n")


def engine_of(server) -> ScriptEngine:
    e = getattr(server, "_scripting", None)
    if e is None:
        e = server._scripting = ScriptEngine(server)
    return e
