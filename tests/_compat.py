"""What the tests need from Python 3.11 on 3.10 too (the package supports 3.10)."""

import sys

if sys.version_info >= (3, 11):
    from asyncio import timeout
else:  # pragma: no cover - exercised on 3.10 only
    from async_timeout import timeout

__all__ = ["timeout"]
