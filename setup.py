"""Only the optional C extension; all other metadata is in pyproject.toml.

optional=True: without a C compiler (or headers) the build warns and goes on, and
workers.stream.records falls back to its pure-Python fast path, which is slower.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "workers.stream._encode",
            ["workers/stream/_encode.c"],
            optional=True,
            extra_compile_args=["-O2"],
            py_limited_api=True,  # the source defines Py_LIMITED_API: one .abi3.so for 3.11+
        )
    ]
)
