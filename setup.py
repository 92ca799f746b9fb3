"""Only the optional C extension lives here; everything else is in pyproject.toml.

``supporting_families.share._hmac`` computes pseudonymous references about twice as fast as the vectorised SQL
path (two SHA-256 compressions per reference instead of four). It is optional: without a C compiler the
package installs and ``supporting_families.share.pseudonymise`` uses DuckDB instead.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "supporting_families.share._hmac",
            ["include/supporting_families/share/_hmac.c"],
            extra_compile_args=["-O3"],
            optional=True,
        )
    ]
)
