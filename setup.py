"""Only the optional C extension lives here; everything else is in pyproject.toml.

``supporting_families.share._hmac`` computes pseudonymous references with OpenSSL's HMAC-SHA256 (libcrypto,
``libssl-dev`` at build time), on every core the process may use, several times faster than the vectorised
SQL path. It is optional: without a C compiler or OpenSSL's headers the build is skipped, the package still
installs, and ``supporting_families.share.pseudonymise`` uses DuckDB instead
(``pseudonymise.active_path()`` says which).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "supporting_families.share._hmac",
            ["include/supporting_families/share/_hmac.c"],
            libraries=["crypto"],
            extra_compile_args=["-O2", "-Wall", "-Werror=implicit-function-declaration"],
            optional=True,
        )
    ]
)
