"""Builds the Cython core (cython_ext/) into the extension module shardkv._native.

The server refuses to start without it: there is no pure-Python fallback.
Set SHARDKV_ANNOTATE=1 to write cython -a HTML reports next to the sources, and
SHARDKV_DEBUG=1 to build with assertions and without optimisation.
"""
import os

from Cython.Build import cythonize
from setuptools import Extension, setup

debug = os.environ.get("SHARDKV_DEBUG") == "1"
extra_compile_args = ["-O0", "-g"] if debug else ["-O2"]

extensions = [
    Extension(
        "shardkv._native",
        ["cython_ext/_native.pyx"],
        extra_compile_args=extra_compile_args,
    ),
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
