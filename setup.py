"""The one compiled module; everything else about the package is in pyproject.toml.

core/_otlpwire.c reads the spans table's columns from serialized OTLP (see
sinks/clickhouse/columns.py). It needs gcc and the Python headers; where they are missing
the install still succeeds and the exporter takes its Python walk (optional=True), which
tests/sinks/test_span_columns_native.py reports as a failure.
"""

from setuptools import Extension, setup

setup(ext_modules=[
    Extension("tracehouse.core._otlpwire", ["core/_otlpwire.c"], optional=True),
])
