"""Builds the Cython code (cython_ext/) into the extension modules:
shardkv._native (the core: loop, RESP, keyspace, hot commands, router),
shardkv._bitops (bit work over string values) and shardkv._hll (HyperLogLog).

The server refuses to start without it: there is no pure-Python fallback.
Set SHARDKV_ANNOTATE=1 to write cython -a HTML reports next to the sources, and
SHARDKV_DEBUG=1 to build with assertions and without optimisation, and
SHARDKV_ONLY=_bitops,_hll (module names) to build only those.
"""
import os

from Cython.Build import cythonize
from setuptools import Extension, setup

debug = os.environ.get("SHARDKV_DEBUG") == "1"
extra_compile_args = ["-O0", "-g"] if debug else ["-O2"]

MODULES = {
    "_native": "cython_ext/_native.pyx",
    "_bitops": "cython_ext/bitops.pyx",
    "_hll": "cython_ext/hll.pyx",
    "_rdbcodec": "cython_ext/rdbcodec.pyx",
}
only = [m for m in os.environ.get("SHARDKV_ONLY", "").split(",") if m]
extensions = [
    Extension("shardkv." + name, [source], extra_compile_args=extra_compile_args)
    for name, source in MODULES.items() if not only or name in only
]

setup(
    ext_modules=cythonize(
        extensions,
        annotate=os.environ.get("SHARDKV_ANNOTATE") == "1",
        compiler_directives={
            "language_level": "3",
            "boundscheck": debug,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": debug,
        },
    ),
)
