"""The Lua half of the sandbox, run once in every Lua state the engine makes.

It receives the Python callbacks (`py`) and builds, out of the stock Lua 5.1
libraries, what Valkey's patched Lua gives scripts: read-only library tables
("Attempt to modify a readonly table"), a global table that refuses unknown
names ("Script attempted to access nonexistent global variable"), the
redis/server API, the count hook that lets the server answer other clients
and kill a runaway script, and the error handler that turns any error into
Valkey's {err=, source=, line=} table. Everything privileged (debug, the real
loadstring, setfenv) stays in locals of this chunk, out of scripts' reach.
"""

BOOTSTRAP = r"""
local py, mode, hook_count = ...
local INTERNAL = '=shardkv'
local dbg = debug
local real_pcall, real_xpcall, real_error, real_type, real_tostring = pcall, xpcall, error, type, tostring
local real_setfenv, real_loadstring, real_load = setfenv, loadstring, load
local real_rawget, real_rawset, real_next, real_select, real_unpack = rawget, rawset, next, select, unpack
local real_setmt, real_getmt = setmetatable, getmetatable
local co_create, co_resume, co_status = coroutine.create, coroutine.resume, coroutine.status
local string_byte = string.byte
local floor = math.floor

local views = real_setmt({}, {__mode = 'k'})   -- read-only proxy -> its contents

local function ro_error() real_error('Attempt to modify a readonly table', 2) end

local function pack(...) return {n = real_select('#', ...), ...} end

-- A read-only proxy of `contents`: reads go to the contents (a table lookup
-- in C, no Lua call on the fast path), writes raise.
local function readonly(contents, on_missing)
  if on_missing then real_setmt(contents, {__index = on_missing}) end
  local proxy = real_setmt({}, {__index = contents, __newindex = ro_error, __metatable = false})
  views[proxy] = contents
  return proxy
end

local function copy_lib(lib, skip)
  local out = {}
  for k, v in real_next, lib do
    if not (skip and skip[k]) then out[k] = v end
  end
  return out
end

local function guard(f)
  return function(t, ...)
    if views[t] then real_error('Attempt to modify a readonly table', 0) end
    return f(t, ...)
  end
end

local env_holder = {}

-- hook: lets the server process other clients while a script runs, and
-- kill it; once killed it fires on every line so pcall cannot swallow it
local killed_msg = nil
local function hook()
  local where = dbg.getinfo(2, 'S')
  if where and where.source == INTERNAL then return end
  if killed_msg then real_error({err = killed_msg}) end
  local r = py.interrupt()
  if r then
    killed_msg = r
    dbg.sethook(hook, 'l')
    real_error({err = r})
  end
end

local function arm(co)
  if hook_count > 0 then
    if co then dbg.sethook(co, hook, '', hook_count) else dbg.sethook(hook, '', hook_count) end
  end
end

local function wrap_loader(f, e)
  if f then real_setfenv(f, env_holder.env) end
  return f, e
end

local sandbox_loadstring = function(s, name)
  if real_type(s) == 'string' and string_byte(s, 1) == 27 then return nil, 'binary chunks are not allowed' end
  return wrap_loader(real_loadstring(s, name))
end
local sandbox_load = function(fn, name)
  local first = true
  local reader = function()
    local piece = fn()
    if first and real_type(piece) == 'string' and string_byte(piece, 1) == 27 then
      real_error('binary chunks are not allowed', 0)
    end
    first = false
    return piece
  end
  return wrap_loader(real_load(reader, name))
end

-- pcall as Valkey's: an error table with an err string comes back as that string
local sandbox_pcall = function(f, ...)
  local r = pack(real_pcall(f, ...))
  if not r[1] and real_type(r[2]) == 'table' and real_type(real_rawget(r[2], 'err')) == 'string' then
    return false, real_rawget(r[2], 'err')
  end
  return real_unpack(r, 1, r.n)
end

local coroutine_lib = copy_lib(coroutine)
coroutine_lib.create = function(f)
  local co = co_create(f)
  arm(co)
  return co
end
coroutine_lib.wrap = function(f)
  local co = coroutine_lib.create(f)
  return function(...)
    local r = pack(co_resume(co, ...))
    if not r[1] then real_error(r[2], 0) end
    return real_unpack(r, 2, r.n)
  end
end

-- math.random on Valkey's rand48, the same sequence on every platform
local math_lib = copy_lib(math)
math_lib.random = function(...)
  local r = py.rand()
  local n = real_select('#', ...)
  if n == 0 then return r end
  if n == 1 then
    local u = floor(py.checkint(1, 'random', (...)))
    if u < 1 then real_error("bad argument #1 to 'random' (interval is empty)", 2) end
    return floor(r * u) + 1
  elseif n == 2 then
    local l, u = ...
    l = floor(py.checkint(1, 'random', l)); u = floor(py.checkint(2, 'random', u))
    if l > u then real_error("bad argument #2 to 'random' (interval is empty)", 2) end
    return floor(r * (u - l + 1)) + l
  end
  real_error('wrong number of arguments', 2)
end
math_lib.randomseed = function(s) py.srand(floor(py.checkint(1, 'randomseed', s))) end

local table_lib = copy_lib(table)
table_lib.insert = guard(table.insert)
table_lib.remove = guard(table.remove)
table_lib.sort = guard(table.sort)
table_lib.setn = guard(table.setn)

local function err_table(msg)
  return {err = msg}
end

-- the libraries: Python functions returning (true, results...) or
-- (false, message), raised without a position like a C library's luaL_error
local NULL = newproxy(false)
local function lib_function(pyf)
  return function(...)
    local r = pack(pyf(...))
    if r[1] then return real_unpack(r, 2, r.n) end
    real_error(r[2], 0)
  end
end
local libs = {}
for name, lib in real_next, py.make_libs(NULL) do
  local t = {}
  for k, f in real_next, lib do t[k] = lib_function(f) end
  libs[name] = t
end
libs.cjson.null = NULL

local server = {}
local co_yield, co_running = coroutine.yield, coroutine.running

-- API functions that raise must be C functions as in Valkey: a Lua function
-- called as `return redis.call(...)` would be a tail call, and the error
-- would lose the script's line. coroutine.wrap gives a C function that runs
-- `impl` in a coroutine; an error ends that coroutine, so the field is
-- replaced by a fresh one before the error is raised.
local function c_function(name, impl)
  local function make()
    return coroutine.wrap(function(...)
      arm(co_running())
      local args = pack(...)
      while true do
        local r = pack(impl(real_unpack(args, 1, args.n)))
        args = pack(co_yield(real_unpack(r, 1, r.n)))
      end
    end)
  end
  local function fail(e)
    server[name] = make()
    real_error(e)
  end
  server[name] = make()
  return fail
end

local call_fail
call_fail = c_function('call', function(...)
  local r, is_err = py.call(...)
  if is_err then call_fail(r) end
  return r
end)
server.pcall = function(...)
  local r = py.call(...)
  return r
end
local log_fail
log_fail = c_function('log', function(...)
  local n = real_select('#', ...)
  if n < 2 then log_fail(err_table('ERR server.log() requires two arguments or more.')) end
  local level = ...
  if py.tonumber(level) == nil then log_fail(err_table('ERR First argument must be a number (log level).')) end
  local e = py.log(...)
  if e then log_fail(err_table(e)) end
end)
server.LOG_DEBUG, server.LOG_VERBOSE, server.LOG_NOTICE, server.LOG_WARNING = 0, 1, 2, 3
server.REDIS_VERSION_NUM, server.REDIS_VERSION = py.versions.redis_num, py.versions.redis
server.VALKEY_VERSION_NUM, server.VALKEY_VERSION = py.versions.valkey_num, py.versions.valkey
server.SERVER_NAME = 'valkey'
local setresp_fail
setresp_fail = c_function('setresp', function(...)
  if real_select('#', ...) ~= 1 then setresp_fail(err_table('ERR server.setresp() requires one argument.')) end
  local e = py.setresp((...))
  if e then setresp_fail(err_table(e)) end
end)
local sha_fail
sha_fail = c_function('sha1hex', function(...)
  if real_select('#', ...) ~= 1 then sha_fail(err_table('ERR wrong number of arguments')) end
  return py.sha1hex((...))
end)
server.error_reply = function(...)
  local e = (...)
  if real_select('#', ...) ~= 1 or real_type(e) ~= 'string' then
    return err_table('ERR wrong number or type of arguments')
  end
  return err_table(py.error_text(e))
end
server.status_reply = function(...)
  local s = (...)
  if real_select('#', ...) ~= 1 or real_type(s) ~= 'string' then
    return err_table('ERR wrong number or type of arguments')
  end
  return {ok = s}
end
local repl_fail
repl_fail = c_function('set_repl', function(...)
  if real_select('#', ...) ~= 1 then repl_fail(err_table('ERR server.set_repl() requires one argument.')) end
  local e = py.set_repl((...))
  if e then repl_fail(err_table(e)) end
end)
server.REPL_NONE, server.REPL_AOF, server.REPL_SLAVE, server.REPL_REPLICA, server.REPL_ALL = 0, 1, 2, 2, 3
server.acl_check_cmd = function(...)
  local r, e = py.acl_check_cmd(...)
  if e then real_error(err_table(e)) end
  return r
end

local globals = {
  string = string, table = table_lib, math = math_lib, coroutine = coroutine_lib,
  os = {clock = os.clock},
  cjson = libs.cjson, bit = libs.bit, cmsgpack = libs.cmsgpack, struct = libs.struct,
  xpcall = xpcall, tostring = tostring, setmetatable = guard(setmetatable), next = nil,
  assert = assert, tonumber = tonumber, rawequal = rawequal, collectgarbage = collectgarbage,
  getmetatable = getmetatable, rawset = guard(rawset), pcall = sandbox_pcall, type = type,
  select = select, unpack = unpack, gcinfo = gcinfo, rawget = nil, loadstring = sandbox_loadstring,
  ipairs = ipairs, _VERSION = _VERSION, load = sandbox_load, error = error, pairs = nil,
}
globals.next = function(t, k)
  local v = views[t]
  if v then return real_next(v, k) end
  return real_next(t, k)
end
globals.pairs = function(t)
  if views[t] then return globals.next, t, nil end
  return pairs(t)
end
globals.rawget = function(t, k)
  local v = views[t]
  if v then return real_rawget(v, k) end
  return real_rawget(t, k)
end

local function nonexistent(t, k)
  real_error("Script attempted to access nonexistent global variable '" .. real_tostring(k) .. "'", 2)
end

local function protect_libs(tbl)
  for k, v in real_next, tbl do
    if real_type(v) == 'table' and not views[v] then tbl[k] = readonly(v) end
  end
end

-- the error handler: the position of the innermost user frame, as Valkey's
-- (which looks one level further when the error came from a C function)
local function user_frame(level)
  while true do
    local i = dbg.getinfo(level, 'nSl')
    if not i then return nil, level end
    if i.source ~= INTERNAL then return i, level end
    level = level + 1
  end
end
local function err_handler(err)
  local i, level = user_frame(3)
  if i and i.what == 'C' then i = user_frame(level + 1) end
  if real_type(err) ~= 'table' then err = {err = 'ERR ' .. real_tostring(err)} end
  if i then
    err.source = i.source
    err.line = i.currentline
  end
  return err
end

local api = {}

if mode == 'eval' then
  server.breakpoint = function() return false end
  server.debug = function() end
  server.replicate_commands = function() return true end
  globals.__server__err__handler = err_handler
  globals.__redis__err__handler = err_handler
  local server_ro = readonly(server)
  globals.server, globals.redis = server_ro, server_ro
  protect_libs(globals)
  local G = readonly(globals, nonexistent)
  globals._G = G
  env_holder.env = G
  -- string methods ("x"):upper() go through the real string metatable,
  -- but scripts only ever see a read-only view of it
  local smt = real_getmt('')
  smt.__metatable = readonly({__index = globals.string})

  api.compile = function(code, name)
    local f, e = real_loadstring(code, name)
    if not f then return nil, e end
    real_setfenv(f, G)
    return f
  end
  api.run = function(f, keys, argv)
    real_rawset(globals, 'KEYS', keys)
    real_rawset(globals, 'ARGV', argv)
    killed_msg = nil
    arm(nil)
    local ok, res = real_xpcall(f, err_handler)
    dbg.sethook()
    return ok, res
  end
else
  -- functions: one environment whose lookups go to the library API while a
  -- library loads, and to the full API when its functions run
  local lib_server = {log = server.log, LOG_DEBUG = 0, LOG_VERBOSE = 1, LOG_NOTICE = 2, LOG_WARNING = 3,
                      REDIS_VERSION_NUM = server.REDIS_VERSION_NUM, REDIS_VERSION = server.REDIS_VERSION,
                      VALKEY_VERSION_NUM = server.VALKEY_VERSION_NUM, VALKEY_VERSION = server.VALKEY_VERSION,
                      SERVER_NAME = 'valkey'}
  lib_server.register_function = function(...)
    local e = py.register_function(real_select('#', ...), ...)
    if e then real_error(err_table(e)) end
  end
  real_setmt(lib_server, {__index = nonexistent})
  local lib_ro = readonly(lib_server)
  local lib_globals = {server = lib_ro, redis = lib_ro}
  local server_ro = readonly(server)
  globals.server, globals.redis = server_ro, server_ro
  protect_libs(globals)
  real_setmt(lib_globals, {__index = nonexistent})
  real_setmt(globals, {__index = nonexistent})
  local env_mt = {__index = globals, __newindex = ro_error, __metatable = false}
  local E = real_setmt({}, env_mt)
  views[E] = globals
  globals._G = E
  env_holder.env = E
  local smt = real_getmt('')
  smt.__metatable = readonly({__index = globals.string})

  api.load_library = function(code)
    local f, e = real_loadstring(code, '@user_function')
    if not f then return false, 'Error compiling function: ' .. e end
    real_setfenv(f, E)
    env_mt.__index = lib_globals
    killed_msg = nil
    arm(nil)
    local ok, res = real_pcall(f)
    dbg.sethook()
    env_mt.__index = globals
    if not ok then
      if real_type(res) == 'table' then res = real_rawget(res, 'err') or 'ERR unknown error'
      else res = 'ERR ' .. real_tostring(res) end
      return false, 'Error registering functions: ' .. res
    end
    return true
  end
  api.run = function(f, keys, argv)
    killed_msg = nil
    arm(nil)
    local ok, res = real_xpcall(function() return f(keys, argv) end, err_handler)
    dbg.sethook()
    return ok, res
  end
end

api.is_function = function(v) return real_type(v) == 'function' end
api.rawget = real_rawget
api.table_type = function(v) return real_type(v) end
api.string_of = function(v)
  if real_type(v) == 'string' or real_type(v) == 'number' then return real_tostring(v) end
  return nil
end
api.new_table = function() return {} end
api.pack_null = nil
debug = nil
return api
"""
