"""Loads the compiled core. shardkv has no pure-Python fallback: without the
extension module it would be a different, far slower server, so it refuses to
start and says how to build it."""

try:
    from shardkv import _native
except ImportError as exc:  # pragma: no cover - exercised by test_native_missing
    raise SystemExit(
        "shardkv: the compiled core (shardkv._native) is missing or does not load "
        f"({exc}).\nBuild it with `pip install .` (or `python setup.py build_ext --inplace` "
        "in a source checkout); Cython and a C compiler are needed."
    ) from None

__all__ = ["_native"]
