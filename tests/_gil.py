"""Making GIL hand-offs observable in tests."""

import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gil_never_preempted() -> Iterator[None]:
    """While active, a thread holding the GIL keeps it until it releases it itself.

    With a 100 s switch interval the interpreter never forces a switch during a test, so
    another thread runs Python code only while the first is inside a GIL-released section.
    """
    old = sys.getswitchinterval()
    sys.setswitchinterval(100)
    try:
        yield
    finally:
        sys.setswitchinterval(old)
