"""One atheris (libFuzzer) campaign on one target, in its own process.

``python -m tests.fuzz._atheris_worker TARGET [libFuzzer arguments]``; the runner
(``python -m tests.fuzz``) starts it. The package is imported for the first time inside
``atheris.instrument_imports()``, so that its Python code (and the target's own decisions) give
coverage feedback; the compiled core is not instrumented.
"""

from __future__ import annotations

import importlib
import sys


def main() -> None:
    import atheris

    target = sys.argv[1]
    if "anunzi_fast" in sys.modules:
        raise RuntimeError("anunzi_fast was imported before instrumentation")
    with atheris.instrument_imports(include=["anunzi_fast", "tests.fuzz"]):
        module = importlib.import_module(f"tests.fuzz.fuzz_{target}")
    atheris.Setup([sys.argv[0], *sys.argv[2:]], module.fuzz_one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
