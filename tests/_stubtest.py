"""Running mypy's stubtest on a compiled module against its hand-written stub."""

import subprocess
import sys
from pathlib import Path


def assert_stubtest_passes(module: str, allowlist: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", module, "--allowlist", str(allowlist)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
