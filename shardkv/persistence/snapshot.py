"""A shard's persistence state and the work it schedules: SAVE and BGSAVE
(a forked child writes the snapshot while the shard keeps serving), the
`save` rules checked by the cron, stop-writes-on-bgsave-error, loading the
data at start-up (from the append-only file when it is on, else from the
RDB file), saving at shutdown, and the fields of INFO persistence.

Every file is replaced atomically: written under a temporary name in the
same directory, fsynced, renamed over the old one, and the directory
fsynced so that the rename itself survives a crash.

The server owns one Persistence (server.persistence); the AOF machinery
(aof.py) hangs off it because the two share the one child process a shard
may run at a time, as in Redis."""

from __future__ import annotations

import gc
import logging
import os
import signal
import time

from shardkv._rdbcodec import RdbError
from shardkv.native import _native
from shardkv.persistence import rdb

log = logging.getLogger("shardkv")

BGSAVE_RETRY_DELAY = 5      # seconds before a failed BGSAVE is retried by the save rules
MISCONF_RDB = ("MISCONF Valkey is configured to save RDB snapshots, but it's currently unable to persist "
               "to disk. Commands that may modify the data set are disabled, because this instance is "
               "configured to report errors during writes if RDB snapshotting fails "
               "(stop-writes-on-bgsave-error option). Please check the Valkey logs for details about the "
               "RDB error.")
WRITE_FLAG = 1 << 0
REPLICATION_CLIENTS = _native.CLIENT_FLAGS["MASTER"] | _native.CLIENT_FLAGS["REPLICA"]


def fsync_dir(path):
    fd = os.open(path or ".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path, writer):
    """Calls writer(file) on a temporary file next to path, then fsyncs it,
    renames it over path and fsyncs the directory. The temporary file is
    removed if anything fails."""
    directory = os.path.dirname(path) or "."
    tmp = os.path.join(directory, "temp-%d.rdb" % os.getpid())
    try:
        with open(tmp, "wb", buffering=1 << 20) as f:
            result = writer(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(directory)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return result


class Persistence:
    def __init__(self, server):
        self.s = server
        self.dirty_at_save = 0
        self.lastsave = int(time.time())
        self.last_bgsave_ok = True
        self.last_bgsave_try = 0
        self.last_bgsave_time_sec = -1
        self.rdb_saves = 0
        self.child_pid = 0
        self.child_kind = None          # "rdb" or "aof"
        self.child_start = 0.0
        self.child_dirty = 0
        self.child_cancelled = False
        self.bgsave_scheduled = False
        self.loading = False
        self.last_load_keys_loaded = 0
        self.last_load_keys_expired = 0
        self.shutdown_done = False
        self.aof = None                 # AppendOnlyFile, when appendonly is on
        self.offline_aof = None         # BGREWRITEAOF while appendonly is off
        self._misconf_installed = False

    # ------------------------------------------------------------ paths
    @property
    def dir(self):
        return self.s.config["dir"]

    def rdb_path(self):
        return os.path.join(self.dir, self.s.config["dbfilename"])

    def changes(self):
        return self.s.dirty - self.dirty_at_save

    # ------------------------------------------------------------ writing
    def write_rdb(self, path, aof_base=False):
        """Writes the whole dataset to path, atomically. Returns the keys written."""
        cfg = self.s.config
        return atomic_write(path, lambda f: rdb.write_snapshot(
            self.s, f, compress=cfg["rdbcompression"], checksum=cfg["rdbchecksum"],
            aof_base=aof_base, used_mem=self.s.used_memory()))

    def save(self):
        """SAVE: a synchronous snapshot. Raises OSError or RdbError."""
        start = time.monotonic()
        dirty = self.s.dirty
        try:
            n = self.write_rdb(self.rdb_path())
        except (OSError, RdbError) as e:
            log.warning("Error saving DB on disk: %s", e)
            self.last_bgsave_ok = False
            self._update_misconf()
            raise
        self.dirty_at_save = dirty
        self.lastsave = int(time.time())
        self.last_bgsave_ok = True
        self.rdb_saves += 1
        self._update_misconf()
        log.info("DB saved on disk (%d keys, %.3f s)", n, time.monotonic() - start)
        return n

    def after_flushall(self):
        """FLUSHALL, as Redis does it: a running BGSAVE is stopped and, when
        save rules exist, the (now empty) snapshot is written at once."""
        if self.child_kind == "rdb":
            self.kill_child()
        # (only a serving shard: an in-process Server writes no file unasked)
        if self.s.config["save"] and getattr(self.s, "_serving", False):
            try:
                self.save()
            except (OSError, RdbError):
                pass

    # ------------------------------------------------------------ children
    def fork_child(self, kind, work):
        """Forks a child that runs work() and exits 0 (or 1 if it raised).
        Returns the child's pid."""
        self.s.flush_propagation()
        if self.aof is not None:
            self.aof.flush(force=True)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                gc.disable()            # collecting would touch (and copy) every page
                work()
                code = 0
            except BaseException as e:  # noqa: BLE001 - the child reports and exits, whatever happened
                try:
                    log.warning("background %s failed: %s", kind, e)
                except BaseException:  # noqa: BLE001
                    pass
            finally:
                os._exit(code)
        self.child_pid = pid
        self.child_kind = kind
        self.child_start = time.monotonic()
        self.child_dirty = self.s.dirty
        self.child_cancelled = False
        return pid

    def bgsave(self):
        """Starts a background save; raises OSError if the fork fails."""
        self.last_bgsave_try = time.time()
        path = self.rdb_path()
        try:
            pid = self.fork_child("rdb", lambda: self.write_rdb(path))
        except OSError as e:
            log.warning("Can't save in background: fork: %s", e)
            self.last_bgsave_ok = False
            self._update_misconf()
            raise
        log.info("Background saving started by pid %d", pid)
        return pid

    def kill_child(self):
        """Stops the running child (BGSAVE CANCEL, SHUTDOWN, DEBUG RELOAD)
        and removes its temporary file."""
        pid = self.child_pid
        if not pid:
            return
        self.child_cancelled = True
        try:
            os.kill(pid, signal.SIGUSR1)
        except ProcessLookupError:
            pass
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
        self._remove_child_temp(pid)
        kind = self.child_kind
        self.child_pid = 0
        self.child_kind = None
        if kind == "aof" and self.aof is not None:
            self.aof.rewrite_failed(cancelled=True)
        elif kind == "sync":
            self.s.repl.sync_done(False)

    def _remove_child_temp(self, pid):
        for name in ("temp-%d.rdb" % pid,):
            try:
                os.unlink(os.path.join(self.dir, name))
            except OSError:
                pass
        if self.aof is not None:
            self.aof.remove_temp(pid)

    def reap(self):
        """Called by the cron: collects a finished child."""
        if not self.child_pid:
            return
        try:
            pid, status = os.waitpid(self.child_pid, os.WNOHANG)
        except ChildProcessError:
            pid, status = self.child_pid, 1 << 8
        if pid == 0:
            return
        kind = self.child_kind
        self.child_pid = 0
        self.child_kind = None
        ok = os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        elapsed = time.monotonic() - self.child_start
        if kind == "rdb":
            self.last_bgsave_time_sec = int(elapsed)
            if ok:
                log.info("Background saving terminated with success")
                self.dirty_at_save = self.child_dirty
                self.lastsave = int(time.time())
                self.last_bgsave_ok = True
                self.rdb_saves += 1
            else:
                self._remove_child_temp(pid)
                if self.child_cancelled or (os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGUSR1):
                    log.warning("Background saving terminated by signal")
                else:
                    log.warning("Background saving error")
                    self.last_bgsave_ok = False
            self._update_misconf()
        elif kind == "sync":
            self.s.repl.sync_done(ok)
        elif kind == "aof":
            target = self.aof if self.aof is not None else self.offline_aof
            self.offline_aof = None
            if target is None:
                return
            if ok:
                target.rewrite_done(pid, elapsed)
            else:
                target.remove_temp(pid)
                target.rewrite_failed(cancelled=self.child_cancelled)

    # ------------------------------------------------------------ cron
    def cron(self):
        self.reap()
        now = time.time()
        if not self.child_pid:
            retry_ok = self.last_bgsave_ok or now - self.last_bgsave_try > BGSAVE_RETRY_DELAY
            changes = self.changes()
            for secs, need in self.s.config["save"]:
                if changes >= need and now - self.lastsave > secs and retry_ok:
                    log.info("%d changes in %d seconds. Saving...", need, secs)
                    self._try_bgsave()
                    break
        if not self.child_pid and self.bgsave_scheduled and \
                (self.last_bgsave_ok or now - self.last_bgsave_try > BGSAVE_RETRY_DELAY):
            self.bgsave_scheduled = False
            self._try_bgsave()
        if self.aof is not None:
            self.aof.cron()

    def _try_bgsave(self):
        try:
            self.bgsave()
        except OSError:
            pass

    # ------------------------------------------------------------ MISCONF
    def _update_misconf(self):
        """stop-writes-on-bgsave-error: while the last save failed (and save
        rules exist), writes and PING answer MISCONF."""
        want = (not self.last_bgsave_ok and self.s.config["stop-writes-on-bgsave-error"]
                and bool(self.s.config["save"]))
        if self.aof is not None and self.aof.write_error is not None:
            want = True
        if want and not self._misconf_installed:
            self._prev_gate = self.s.gate_hook
            self.s.gate_hook = self._misconf_gate
            self._misconf_installed = True
        elif not want and self._misconf_installed:
            self.s.gate_hook = self._prev_gate
            self._misconf_installed = False

    def _misconf_gate(self, c, cmd, argv):
        prev = self._prev_gate
        if prev is not None:
            err = prev(c, cmd, argv)
            if err is not None:
                return err
        if c.flags & REPLICATION_CLIENTS:
            return None
        is_write = cmd.flags & WRITE_FLAG or cmd.name == "ping"
        if cmd.name == "exec" and c.multi_queue:
            is_write = any(q.flags & WRITE_FLAG for q, _ in c.multi_queue)
        if not is_write:
            return None
        if self.aof is not None and self.aof.write_error is not None:
            return "MISCONF Errors writing to the AOF file: %s" % self.aof.write_error
        if not self.last_bgsave_ok and self.s.config["stop-writes-on-bgsave-error"] and self.s.config["save"]:
            return MISCONF_RDB
        return None

    def config_changed(self, name, value):
        if name == "appendonly":
            self.set_appendonly(value)
        self._update_misconf()

    def set_appendonly(self, on):
        """CONFIG SET appendonly: yes writes a base of the current data and
        starts appending; no flushes, fsyncs and stops. At start-up the
        loading decides instead (load_at_startup)."""
        from shardkv.persistence.aof import AppendOnlyFile
        if self.loading or not getattr(self.s, "_serving", False):
            return
        if on and self.aof is None:
            if self.child_kind == "rdb":
                self.kill_child()
            aof = AppendOnlyFile(self)
            os.makedirs(aof.dirname, exist_ok=True)
            aof.create_replacing_old()
            aof.attach()
            self.aof = aof
        elif not on and self.aof is not None:
            if self.child_kind == "aof":
                self.kill_child()
            self.aof.close()
            self.aof = None


    # ------------------------------------------------------------ loading
    def load_rdb_file(self, path):
        """Loads an RDB file into the (empty) databases; raises RdbError/OSError."""
        with open(path, "rb") as f:
            data = f.read()
        snap = self.parse_rdb(data)
        self.check_slots(snap, path)
        return self.apply_snapshot(snap)

    def parse_rdb(self, data):
        cfg = self.s.config
        return rdb.load_snapshot(data, rdb.Limits(cfg), databases=len(self.s.dbs),
                                 check_crc=cfg["rdbchecksum"], log=log.warning)

    def check_slots(self, snap, source):
        """In cluster mode a shard must only hold keys of the slots it
        serves: a file with others belongs to another shard (or to a run
        with another number of shards) and is refused."""
        targets = getattr(self.s, "slot_targets", None)
        if not self.s.cluster_enabled or not targets:
            return
        key_slot = _native.key_slot
        for entries in snap.dbs.values():
            for key, _, _ in entries:
                slot = key_slot(key)
                if targets[slot] is not None:
                    raise RdbError(
                        f"{source} holds keys of slot {slot}, which this shard does not serve: it "
                        f"belongs to another shard or to a run with another number of shards "
                        f"(resharding is not supported yet)")

    def check_loaded_slots(self):
        """check_slots for what the append-only file replayed."""
        from shardkv.persistence.aof import AofError
        targets = getattr(self.s, "slot_targets", None)
        if not self.s.cluster_enabled or not targets:
            return
        key_slot = _native.key_slot
        for db in self.s.dbs:
            for key in db.data.keys():
                if targets[key_slot(key)] is not None:
                    raise AofError(
                        f"the append-only file holds keys of slot {key_slot(key)}, which this shard "
                        f"does not serve: it belongs to another shard or to a run with another number "
                        f"of shards (resharding is not supported yet)")

    def apply_snapshot(self, snap, replace=True):
        """Puts the keys of a parsed snapshot into the databases. With
        replace, each database touched is rebuilt from new tables (the old
        contents go); otherwise keys are added to what is there."""
        from shardkv.commands.hashes import track_volatile
        s = self.s
        if snap.functions:
            from shardkv.scripting.engine import engine_of
            engine = engine_of(s)
            for code in snap.functions:
                try:
                    engine.load_library(bytes(code), True)
                except Exception as e:
                    raise rdb.RdbError(f"a function library of the file does not load: {e}") from None
        volatile = []
        for dbid, entries in snap.dbs.items():
            db = s.dbs[dbid]
            if replace:
                fresh = _native.Database(dbid)
                data, expires = fresh.data, fresh.expires
            else:
                data, expires = db.data, db.expires
            for key, value, when in entries:
                data[key] = value
                if when != -1:
                    expires.set_meta(key, when)
                elif not replace:
                    expires.pop(key, None)
                if getattr(value, "ttl", None) and value.TYPE_NAME == "hash":
                    volatile.append((db, key, value))
            if replace:
                db.data, db.expires = data, expires
        for db, key, value in volatile:
            track_volatile(s, db, key, value)
        self.last_load_keys_loaded = snap.keys
        self.last_load_keys_expired = snap.expired_skipped
        return snap.keys

    def load_at_startup(self):
        """Brings the data back before the shard reports READY: from the
        append-only file when appendonly is on, else from the RDB file.
        A file that cannot be loaded stops the server with the reason."""
        from shardkv.persistence.aof import AppendOnlyFile, AofError
        cfg = self.s.config
        start = time.monotonic()
        self.loading = True
        try:
            if cfg["appendonly"]:
                self.aof = AppendOnlyFile(self)
                try:
                    keys = self.aof.load_or_create()
                    self.check_loaded_slots()
                except AofError as e:
                    raise SystemExit(f"shardkv: {e}") from None
                log.info("DB loaded from append only file: %.3f seconds", time.monotonic() - start)
                return keys
            path = self.rdb_path()
            if not os.path.exists(path):
                return 0
            try:
                keys = self.load_rdb_file(path)
            except (RdbError, OSError) as e:
                raise SystemExit(f"shardkv: cannot load the RDB file {path}: {e}") from None
            log.info("Done loading RDB, keys loaded: %d, keys expired: %d.", keys, self.last_load_keys_expired)
            log.info("DB loaded from disk: %.3f seconds", time.monotonic() - start)
            return keys
        finally:
            self.loading = False
            self.dirty_at_save = self.s.dirty

    # ------------------------------------------------------------ shutdown
    def prepare_shutdown(self, save=None, force=False):
        """Before exiting: stops a child, flushes and fsyncs the AOF, and
        saves when asked to (save=True), or when save rules exist unless
        told not to (save=False). Returns False if a needed save failed
        (and force was not given), in which case the server keeps running."""
        self.kill_child()
        if self.aof is not None:
            self.s.flush_propagation()
            self.aof.flush(force=True)
            self.aof.fsync_now()
        if save is None:
            # save rules imply a final snapshot (an in-process Server that
            # never served writes no file unasked)
            save = bool(self.s.config["save"]) and getattr(self.s, "_serving", False)
        if save:
            try:
                self.save()
            except (OSError, RdbError):
                if not force:
                    log.warning("Error trying to save the DB, can't exit.")
                    return False
        if self.aof is not None:
            self.aof.close()
        self.shutdown_done = True
        return True

    def on_exit(self):
        """The loop stopped (SIGTERM, SIGINT): save as a SHUTDOWN would have."""
        if not self.shutdown_done:
            self.prepare_shutdown(None, force=True)

    # ------------------------------------------------------------ INFO
    def info_fields(self):
        child_rdb = self.child_kind == "rdb"
        child_aof = self.child_kind == "aof"
        aof = self.aof
        fields = [
            ("loading", "1" if self.loading else "0"),
            ("async_loading", "0"),
            ("current_cow_peak", "0"),
            ("current_cow_size", "0"),
            ("current_cow_size_age", "0"),
            ("current_fork_perc", "0.00"),
            ("current_save_keys_processed", "0"),
            ("current_save_keys_total", "0"),
            ("rdb_changes_since_last_save", str(self.changes())),
            ("rdb_bgsave_in_progress", "1" if child_rdb else "0"),
            ("rdb_last_save_time", str(self.lastsave)),
            ("rdb_last_bgsave_status", "ok" if self.last_bgsave_ok else "err"),
            ("rdb_last_bgsave_time_sec", str(self.last_bgsave_time_sec)),
            ("rdb_current_bgsave_time_sec",
             str(int(time.monotonic() - self.child_start)) if child_rdb else "-1"),
            ("rdb_saves", str(self.rdb_saves)),
            ("rdb_last_cow_size", "0"),
            ("rdb_last_load_keys_expired", str(self.last_load_keys_expired)),
            ("rdb_last_load_keys_loaded", str(self.last_load_keys_loaded)),
            ("aof_enabled", "1" if aof is not None else "0"),
            ("aof_rewrite_in_progress", "1" if child_aof else "0"),
            ("aof_rewrite_scheduled", "1" if aof is not None and aof.rewrite_scheduled else "0"),
            ("aof_last_rewrite_time_sec", str(aof.last_rewrite_time_sec if aof is not None else -1)),
            ("aof_current_rewrite_time_sec",
             str(int(time.monotonic() - self.child_start)) if child_aof else "-1"),
            ("aof_last_bgrewrite_status", "ok" if aof is None or aof.last_rewrite_ok else "err"),
            ("aof_rewrites", str(aof.rewrites if aof is not None else 0)),
            ("aof_rewrites_consecutive_failures", str(aof.rewrite_failures if aof is not None else 0)),
            ("aof_last_write_status", "ok" if aof is None or aof.write_error is None else "err"),
            ("aof_last_cow_size", "0"),
            ("module_fork_in_progress", "0"),
            ("module_fork_last_cow_size", "0"),
        ]
        if aof is not None:
            fields += [
                ("aof_current_size", str(aof.current_size)),
                ("aof_base_size", str(aof.base_size)),
                ("aof_pending_rewrite", "0"),
                ("aof_buffer_length", str(len(aof.buf))),
                ("aof_pending_bio_fsync", "1" if aof.fsync_pending() else "0"),
                ("aof_delayed_fsync", "0"),
            ]
        return fields
