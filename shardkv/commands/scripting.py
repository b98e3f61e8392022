"""EVAL EVALSHA EVAL_RO EVALSHA_RO, SCRIPT ..., FUNCTION ..., FCALL FCALL_RO.

Thin handlers over the engine (shardkv/scripting/engine.py): argument
checks in Valkey's order, then the engine compiles, refuses or runs. A
script's own writes are propagated one by one by the core as they happen,
so the handler tells call() not to propagate the EVAL/FCALL itself.
"""

from shardkv.commands.common import OK
from shardkv.commands.table import command, container
from shardkv.errors import ReplyError
from shardkv.native import _native
from shardkv.persistence.rdb import VALKEY_RDB_VERSION
from shardkv.scripting.engine import ScriptError, engine_of, sha1hex

_rdb = __import__("shardkv._rdbcodec", fromlist=["Writer", "Reader", "crc64"])

SCRIPT_SPECS = ["RW access update: index 2, keynum 0 1 1 | We cannot tell how the keys will be used so we "
                "assume the worst, RW and UPDATE"]
SCRIPT_SPECS_NOTELESS = ["RW access update: index 2, keynum 0 1 1"]
RO_SPECS = ["RO access: index 2, keynum 0 1 1 | We cannot tell how the keys will be used so we assume the "
            "worst, RO and ACCESS"]
RO_SPECS_NOTELESS = ["RO access: index 2, keynum 0 1 1"]
OP_FUNCTION2 = 245


def _numkeys(argv, fcall=False):
    try:
        n = int(argv[2])
        if not -(1 << 63) <= n < (1 << 63) or argv[2] != str(n).encode():
            raise ValueError
    except ValueError:
        raise ReplyError("ERR Bad number of keys provided" if fcall
                         else "ERR value is not an integer or out of range") from None
    if n > len(argv) - 3:
        raise ReplyError("ERR Number of keys can't be greater than number of args")
    if n < 0:
        raise ReplyError("ERR Number of keys can't be negative")
    return n


def _run(c, eng, ctx, state, func, argv, n):
    try:
        ret = eng.run(ctx, state, func, argv[3:3 + n], argv[3 + n:])
    except ScriptError as e:
        raise ReplyError(str(e)) from None
    c.rewrite = []          # the script's commands were propagated, not the script
    if isinstance(ret, _native.ReplyError):
        raise ret
    return ret


def _eval(c, argv, evalsha, ro):
    n = _numkeys(argv)
    eng = engine_of(c.server)
    if evalsha:
        sha = argv[1].decode("latin-1").lower()
        s = eng.scripts.get(sha) if len(argv[1]) == 40 else None
        if s is None:
            raise ReplyError("NOSCRIPT No matching script.")
    else:
        try:
            s = eng.register_script(argv[1], True)
        except ScriptError as e:
            raise ReplyError(str(e)) from None
    try:
        ctx = eng.prepare(c, s.flags, ro, True, s.sha)
    except ScriptError as e:
        raise ReplyError(str(e)) from None
    try:
        return _run(c, eng, ctx, eng.eval_state, s.func, argv, n)
    finally:
        eng.touch_script(s)



@command("eval", -3, flags="noscript stale skip_monitor no_mandatory_keys movablekeys", acl="slow scripting",
         specs=SCRIPT_SPECS, group="scripting", since="2.6.0", complexity="Depends on the script that is executed.",
         summary="Runs a Lua script on the server.")
def eval_(c, argv):
    return _eval(c, argv, False, False)


@command("evalsha", -3, flags="noscript stale skip_monitor no_mandatory_keys movablekeys", acl="slow scripting",
         specs=SCRIPT_SPECS_NOTELESS, group="scripting", since="2.6.0",
         complexity="Depends on the script that is executed.",
         summary="Runs a cached Lua script by its SHA1 digest.")
def evalsha(c, argv):
    return _eval(c, argv, True, False)


@command("eval_ro", -3, flags="readonly noscript stale skip_monitor no_mandatory_keys movablekeys",
         acl="slow scripting", specs=RO_SPECS, group="scripting", since="7.0.0",
         complexity="Depends on the script that is executed.",
         summary="Runs a Lua script that may not write.")
def eval_ro(c, argv):
    return _eval(c, argv, False, True)


@command("evalsha_ro", -3, flags="readonly noscript stale skip_monitor no_mandatory_keys movablekeys",
         acl="slow scripting", specs=RO_SPECS_NOTELESS, group="scripting", since="7.0.0",
         complexity="Depends on the script that is executed.",
         summary="Runs a cached Lua script that may not write, by its SHA1 digest.")
def evalsha_ro(c, argv):
    return _eval(c, argv, True, True)


# ------------------------------------------------------------------ SCRIPT
container("script", -2, group="scripting", since="2.6.0", summary="A container for Lua scripts management commands.")


@command("script|exists", -3, flags="noscript stale", acl="slow scripting", group="scripting", since="2.6.0",
         tips="request_policy:all_shards response_policy:agg_logical_and",
         complexity="O(N) with N being the number of scripts to check (so checking a single script is an O(1) "
                    "operation).",
         summary="Tells which SHA1 digests are in the script cache.")
def script_exists(c, argv):
    scripts = engine_of(c.server).scripts
    return [1 if a.decode("latin-1").lower() in scripts else 0 for a in argv[2:]]


@command("script|flush", -2, flags="noscript stale", acl="slow scripting", group="scripting", since="2.6.0",
         tips="request_policy:all_nodes response_policy:all_succeeded",
         complexity="O(N) with N being the number of scripts in cache",
         summary="Empties the script cache.")
def script_flush(c, argv):
    if len(argv) > 3 or (len(argv) == 3 and argv[2].lower() not in (b"sync", b"async")):
        raise ReplyError("ERR SCRIPT FLUSH only support SYNC|ASYNC option")
    engine_of(c.server).reset_scripts()
    return OK


@command("script|help", 2, flags="loading stale", acl="slow scripting", group="scripting", since="5.0.0",
         summary="Lists the SCRIPT subcommands.")
def script_help(c, argv):
    lines = [
        "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "EXISTS <sha1> [<sha1> ...]",
        "    Return information about the existence of the scripts in the script cache.",
        "FLUSH [ASYNC|SYNC]",
        "    Flush the Lua scripts cache. Very dangerous on replicas.",
        "    When called without the optional mode argument, the behavior is determined",
        "     by the lazyfree-lazy-user-flush configuration directive. Valid modes are:",
        "    * ASYNC: Asynchronously flush the scripts cache.",
        "    * SYNC: Synchronously flush the scripts cache.",
        "KILL",
        "    Kill the currently executing Lua script.",
        "LOAD <script>",
        "    Load a script into the scripts cache without executing it.",
        "SHOW <sha1>",
        "    Show a script from the scripts cache.",
        "HELP",
        "    Print this help.",
    ]
    return [_native.Status(x.encode()) for x in lines]


@command("script|kill", 2, flags="noscript allow_busy", acl="slow scripting", group="scripting", since="2.6.0",
         tips="request_policy:all_shards response_policy:one_succeeded",
         summary="Stops the Lua script that is running (if it has not written yet).")
def script_kill(c, argv):
    try:
        engine_of(c.server).kill(True)
    except ScriptError as e:
        raise ReplyError(str(e)) from None
    return OK


@command("script|load", 3, flags="noscript stale", acl="slow scripting", group="scripting", since="2.6.0",
         tips="request_policy:all_nodes response_policy:all_succeeded",
         complexity="O(N) with N being the length in bytes of the script body.",
         summary="Compiles a Lua script into the script cache and returns its SHA1 digest.")
def script_load(c, argv):
    try:
        s = engine_of(c.server).register_script(argv[2], False)
    except ScriptError as e:
        raise ReplyError(str(e)) from None
    return s.sha.encode()


@command("script|show", 3, flags="noscript stale", acl="slow scripting", group="scripting", since="8.0.0",
         summary="Returns the body of a cached script.")
def script_show(c, argv):
    s = engine_of(c.server).scripts.get(argv[2].decode("latin-1")) if len(argv[2]) == 40 else None
    if s is None:
        raise ReplyError("NOSCRIPT No matching script.")
    return s.body


# ------------------------------------------------------------------ FCALL
def _fcall(c, argv, ro):
    eng = engine_of(c.server)
    f = eng.functions.get(argv[1])
    if f is None:
        raise ReplyError("ERR Function not found")
    n = _numkeys(argv, fcall=True)
    try:
        ctx = eng.prepare(c, f.flags, ro, False, f.name.decode("latin-1"))
    except ScriptError as e:
        raise ReplyError(str(e)) from None
    return _run(c, eng, ctx, eng.func_state, f.callback, argv, n)


@command("fcall", -3, flags="noscript stale skip_monitor no_mandatory_keys movablekeys", acl="slow scripting",
         specs=SCRIPT_SPECS, group="scripting", since="7.0.0", complexity="Depends on the function that is executed.",
         summary="Invokes a function.")
def fcall(c, argv):
    return _fcall(c, argv, False)


@command("fcall_ro", -3, flags="readonly noscript stale skip_monitor no_mandatory_keys movablekeys",
         acl="slow scripting", specs=RO_SPECS, group="scripting", since="7.0.0",
         complexity="Depends on the function that is executed.", summary="Invokes a read-only function.")
def fcall_ro(c, argv):
    return _fcall(c, argv, True)


# ------------------------------------------------------------------ FUNCTION
container("function", -2, group="scripting", since="7.0.0", summary="A container for function commands.")


def _dirty(c):
    c.server.dirty += 1


@command("function|load", -3, flags="write denyoom noscript", acl="write slow scripting", group="scripting",
         since="7.0.0", tips="request_policy:all_shards response_policy:all_succeeded",
         complexity="O(1) (considering compilation time is redundant)",
         summary="Creates a library from Lua code.")
def function_load(c, argv):
    replace = False
    args = argv[2:]
    while len(args) > 1:
        if args[0].lower() == b"replace":
            replace = True
            args = args[1:]
        else:
            raise ReplyError("ERR Unknown option given: %s" % args[0].decode("latin-1"))
    if not args:
        raise ReplyError("ERR Function code is missing")
    try:
        name = engine_of(c.server).load_library(args[0], replace)
    except ScriptError as e:
        raise ReplyError(str(e)) from None
    _dirty(c)
    return name


@command("function|delete", 3, flags="write noscript", acl="write slow scripting", group="scripting",
         since="7.0.0", tips="request_policy:all_shards response_policy:all_succeeded",
         summary="Deletes a library and its functions.")
def function_delete(c, argv):
    try:
        engine_of(c.server).delete_library(argv[2])
    except ScriptError as e:
        raise ReplyError(str(e)) from None
    _dirty(c)
    return OK


@command("function|flush", -2, flags="write noscript", acl="write slow scripting", group="scripting",
         since="7.0.0", tips="request_policy:all_shards response_policy:all_succeeded",
         complexity="O(N) where N is the number of functions deleted",
         summary="Deletes every library and function.")
def function_flush(c, argv):
    if len(argv) > 3 or (len(argv) == 3 and argv[2].lower() not in (b"sync", b"async")):
        raise ReplyError("ERR FUNCTION FLUSH only supports SYNC|ASYNC option")
    engine_of(c.server).flush_functions()
    _dirty(c)
    return OK


@command("function|list", -2, flags="noscript", acl="slow scripting", group="scripting", since="7.0.0",
         tips="nondeterministic_output_order", complexity="O(N) where N is the number of functions",
         summary="Lists the libraries and their functions.")
def function_list(c, argv):
    withcode = False
    pattern = None
    i = 2
    while i < len(argv):
        a = argv[i].lower()
        if a == b"withcode" and not withcode:
            withcode = True
            i += 1
        elif a == b"libraryname" and pattern is None and i + 1 < len(argv):
            pattern = argv[i + 1]
            i += 2
        else:
            raise ReplyError("ERR Unknown argument %s" % argv[i].decode("latin-1"))
    from shardkv.glob import glob_match
    out = []
    for lib in engine_of(c.server).libraries.values():
        if pattern is not None and not glob_match(pattern, lib.name):
            continue
        fns = []
        for f in lib.functions.values():
            fns.append({b"name": f.name, b"description": f.desc,
                        b"flags": _native.RespSet([_native.Status(x.encode()) for x in _flag_order(f.flags)])})
        entry = {b"library_name": lib.name, b"engine": b"LUA", b"functions": fns}
        if withcode:
            entry[b"library_code"] = lib.code
        out.append(entry)
    return out


def _flag_order(flags):
    from shardkv.scripting.engine import FLAG_NAMES
    return [f for f in FLAG_NAMES if f in flags]


@command("function|dump", 2, flags="noscript", acl="slow scripting", group="scripting", since="7.0.0",
         complexity="O(N) where N is the number of functions",
         summary="Serializes every library (Valkey's RDB function payload).")
def function_dump(c, argv):
    w = _rdb.Writer(True, True)
    for lib in engine_of(c.server).libraries.values():
        w.write_byte(OP_FUNCTION2)
        w.write_string(lib.code)
    w.write_bytes(VALKEY_RDB_VERSION.to_bytes(2, "little"))
    body = w.take()
    return body + _rdb.crc64(body).to_bytes(8, "little")


@command("function|restore", -3, flags="write denyoom noscript", acl="write slow scripting", group="scripting",
         since="7.0.0", tips="request_policy:all_shards response_policy:all_succeeded",
         complexity="O(N) where N is the number of functions on the payload",
         summary="Restores libraries from a FUNCTION DUMP payload.")
def function_restore(c, argv):
    policy = b"append"
    if len(argv) > 4:
        raise ReplyError("ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.")
    if len(argv) == 4:
        policy = argv[3].lower()
        if policy not in (b"flush", b"append", b"replace"):
            raise ReplyError("ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.")
    payload = argv[2]
    from shardkv.persistence.rdb import check_dump_payload
    if check_dump_payload(payload) is None:
        raise ReplyError("ERR DUMP payload version or checksum are wrong")
    codes = []
    try:
        r = _rdb.Reader(bytes(payload[:-10]))
        while r.remaining:
            if r.read_byte() != OP_FUNCTION2:
                raise ValueError
            codes.append(r.read_string())
    except Exception:
        raise ReplyError("ERR given type is not a function") from None
    eng = engine_of(c.server)
    libs = []
    try:
        for code in codes:
            name = _lib_name(code)
            libs.append(eng.compile_library(name, code))
    except ScriptError as e:
        raise ReplyError(str(e)) from None
    if policy == b"flush":
        eng.flush_functions()
        libs = [eng.compile_library(lib.name, lib.code) for lib in libs]
    for lib in libs:
        old = eng.libraries.get(lib.name)
        if old is not None and policy != b"replace":
            raise ReplyError("ERR Library %s already exists" % lib.name.decode("latin-1"))
        for fname in lib.functions:
            owner = eng.functions.get(fname)
            if owner is not None and owner.library is not old and policy != b"replace":
                raise ReplyError("ERR Function %s already exists" % fname.decode("latin-1"))
    for lib in libs:
        old = eng.libraries.get(lib.name)
        if old is not None:
            eng._drop_library(old)
        for fname in lib.functions:
            owner = eng.functions.get(fname)
            if owner is not None:
                eng._drop_library(owner.library)
        eng._add_library(lib)
    _dirty(c)
    return OK


def _lib_name(code):
    line = code.split(b"\n", 1)[0]
    for p in line.split()[1:]:
        if p.startswith(b"name="):
            return p[5:]
    raise ScriptError("ERR Library name was not given")


@command("function|kill", 2, flags="noscript allow_busy", acl="slow scripting", group="scripting",
         since="7.0.0", tips="request_policy:all_shards response_policy:one_succeeded",
         summary="Stops the function that is running (if it has not written yet).")
def function_kill(c, argv):
    try:
        engine_of(c.server).kill(False)
    except ScriptError as e:
        raise ReplyError(str(e)) from None
    return OK


@command("function|stats", 2, flags="noscript allow_busy", acl="slow scripting", group="scripting",
         since="7.0.0", tips="nondeterministic_output request_policy:all_shards response_policy:special",
         summary="Describes the running function and the loaded libraries.")
def function_stats(c, argv):
    import time
    eng = engine_of(c.server)
    ctx = eng.ctx
    running = None
    if ctx is not None and not ctx.eval_mode and ctx.load_deadline is None:
        running = {b"name": ctx.name.encode(), b"command": [],
                   b"duration_ms": int((time.monotonic() - ctx.start) * 1000)}
    return {b"running_script": running,
            b"engines": {b"LUA": {b"libraries_count": len(eng.libraries), b"functions_count": len(eng.functions)}}}


@command("function|help", 2, flags="loading stale", acl="slow scripting", group="scripting", since="7.0.0",
         summary="Lists the FUNCTION subcommands.")
def function_help(c, argv):
    lines = [
        "FUNCTION <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "LOAD [REPLACE] <FUNCTION CODE>",
        "    Create a new library with the given library name and code.",
        "DELETE <LIBRARY NAME>",
        "    Delete the given library.",
        "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
        "    Return general information on all the libraries:",
        "    * Library name",
        "    * The engine used to run the Library",
        "    * Functions list",
        "    * Library code (if WITHCODE is given)",
        "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
        "STATS",
        "    Return information about the current function running:",
        "    * Function name",
        "    * Command used to run the function",
        "    * Duration in MS that the function is running",
        "    If no function is running, return nil",
        "    In addition, returns a list of available engines.",
        "KILL",
        "    Kill the current running function.",
        "FLUSH [ASYNC|SYNC]",
        "    Delete all the libraries.",
        "    When called without the optional mode argument, the behavior is determined by the",
        "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
        "    * ASYNC: Asynchronously flush the libraries.",
        "    * SYNC: Synchronously flush the libraries.",
        "DUMP",
        "    Return a serialized payload representing the current libraries, can be restored using FUNCTION "
        "RESTORE command",
        "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
        "    Restore the libraries represented by the given payload, it is possible to give a restore policy to",
        "    control how to handle existing libraries (default APPEND):",
        "    * FLUSH: delete all existing libraries.",
        "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
        "    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",
        "      libraries with the new libraries (notice that even on this option there is a chance of failure",
        "      in case of functions name collision with another library).",
        "HELP",
        "    Print this help.",
    ]
    return [_native.Status(x.encode()) for x in lines]


__all__ = ["sha1hex"]
