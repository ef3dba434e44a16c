"""Fuzz targets for what a hostile peer or a hostile file controls.

One module per target (``fuzz_<name>.py``), each with a ``fuzz_one(data: bytes)`` function that
turns the input into a sequence of operations and checks the invariants after each one: it
raises ``AssertionError`` (or lets an unexpected exception through) when one breaks. The same
function runs under atheris (coverage-guided, where a wheel exists for the interpreter) and
under hypothesis (``tests/fuzz/test_targets.py``, on every interpreter, as part of the suite).

Run them with ``python -m tests.fuzz --target NAME|all --runs N --seconds S`` from the
repository root (``--help`` for the rest); seed corpora are in ``tests/fuzz/corpus/<target>/``.

Nothing here imports :mod:`anunzi_fast` at import time: atheris must see the package imported
for the first time inside ``atheris.instrument_imports()`` to instrument it.
"""

TARGETS = ("protocol", "wav", "token_answer", "native")
