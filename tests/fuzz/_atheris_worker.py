"""One atheris (libFuzzer) campaign on one target, in its own process.

``python -m tests.fuzz._atheris_worker TARGET [libFuzzer arguments]``; the runner
(``python -m tests.fuzz``) starts it. The package's Python code and the target's own decisions
are instrumented, so that they give coverage feedback; the compiled core is not.

``atheris.instrument_imports()`` instruments what a regular loader imports, but not modules
that an editable install's redirecting loader imports (scikit-build-core's, as in
``pip install -e .``): every function of ``anunzi_fast`` still uninstrumented after the import is
then instrumented in place, so the campaign is guided by the package's code however it was
installed.
"""

from __future__ import annotations

import gc
import importlib
import sys
import types

PACKAGE = "anunzi_fast"


def _instrumented(code: types.CodeType) -> bool:
    return "_trace_branch" in code.co_names or "_trace_cmp" in code.co_names


def instrument_package(atheris: types.ModuleType, package: str = PACKAGE) -> tuple[int, int]:
    """Instrument every loaded function of ``package`` not instrumented yet.

    Returns:
        How many functions were instrumented here, and how many already were.
    """
    done = already = 0
    for obj in gc.get_objects():
        if not isinstance(obj, types.FunctionType):
            continue
        module = getattr(obj, "__module__", None) or ""
        if module != package and not module.startswith(package + "."):
            continue
        if _instrumented(obj.__code__):
            already += 1
            continue
        atheris.instrument_func(obj)
        done += 1
    return done, already


def main() -> None:
    import atheris

    target = sys.argv[1]
    if PACKAGE in sys.modules:
        raise RuntimeError(f"{PACKAGE} was imported before instrumentation")
    with atheris.instrument_imports(include=[PACKAGE, "tests.fuzz"]):
        module = importlib.import_module(f"tests.fuzz.fuzz_{target}")
    done, already = instrument_package(atheris)
    print(f"INFO: {PACKAGE}: {done} functions instrumented after import, {already} on import",
          file=sys.stderr, flush=True)
    if done + already == 0:
        raise RuntimeError(f"no function of {PACKAGE} could be instrumented")
    atheris.Setup([sys.argv[0], *sys.argv[2:]], module.fuzz_one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
