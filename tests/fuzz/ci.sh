#!/usr/bin/env bash
# Bounded fuzzing for CI: every target for FUZZ_SECONDS (default 45) seconds, from the seeds.
#
# Uses atheris where a wheel exists for this interpreter (CPython 3.11-3.13 on x86-64 Linux:
# installed here with --only-binary, never built from source), else hypothesis with the same
# time budget. Fails on any crash, broken invariant, slow input or memory blow-up; the input
# that did it is left in $FUZZ_WORKDIR/artifacts/ (default build/fuzz-ci/artifacts/), named in
# the output with the command that replays it.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${FUZZ_SECONDS:-45}
workdir=${FUZZ_WORKDIR:-build/fuzz-ci}
python=${PYTHON:-python}

engine=hypothesis
if "$python" -c "import atheris" 2>/dev/null; then
  engine=atheris
elif "$python" -m pip install -q --only-binary=:all: "atheris>=3.0" 2>/dev/null; then
  engine=atheris
else
  echo "no atheris wheel for $("$python" -V 2>&1) on $(uname -m): hypothesis instead"
fi

status=0
"$python" -m tests.fuzz --target all --seconds "$seconds" --engine "$engine" \
  --workdir "$workdir" || status=$?
if [ -d "$workdir/artifacts" ] && [ -n "$(ls -A "$workdir/artifacts")" ]; then
  echo "fuzz artifacts (failing inputs) in $workdir/artifacts:"
  ls -l "$workdir/artifacts"
fi
exit "$status"
