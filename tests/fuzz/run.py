"""Run the fuzz targets: ``python -m tests.fuzz --target NAME|all --runs N --seconds S``.

From the repository root. Each target runs in turn, for ``--runs`` executions or ``--seconds``
seconds, whichever ends first (at least one of them is needed):

- with atheris (``--engine atheris``, the default where it is installed): a libFuzzer campaign
  in a child process, coverage-guided, starting from the seed corpus
  ``tests/fuzz/corpus/<target>/`` plus the inputs earlier runs added to
  ``<workdir>/corpus/<target>/``. A crash, an invariant broken (an exception escaping the
  target), a slow input (``--timeout``) or memory over ``--rss-limit-mb`` ends the campaign
  and leaves the input in ``<workdir>/artifacts/``.
- with hypothesis (``--engine hypothesis``, the fallback): random and seed-mutated inputs in
  this process, batch after batch; a failing input is shrunk and saved in the same place.

``--replay FILE ...`` runs the target once on each file (an artifact, a corpus file), on any
interpreter, without atheris. The figures of every campaign (executions, executions per second,
coverage, corpus size) are printed as a table and appended as JSON lines to
``<workdir>/summary.jsonl``. The exit status is 1 if any target failed.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from tests.fuzz import TARGETS

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_WORKDIR = ROOT / "build" / "fuzz"
SEEDS = Path(__file__).resolve().parent / "corpus"
_STATUS = re.compile(r"^#(\d+)\s+(\w+)\s+cov: (\d+) ft: (\d+) corp: (\d+)/(\S+)")
_NOISE = re.compile(r"^#\d+\s+(NEW|REDUCE)\s")
# Largest input by default: whole WAV files and compressed answers need room; the protocol and
# native targets turn every few bytes into a call, and longer inputs only make them slower.
MAX_LEN = {"protocol": 2048, "wav": 8192, "token_answer": 8192, "native": 2048}


@dataclass
class Result:
    """What one campaign did."""

    target: str
    engine: str
    executions: int = 0
    seconds: float = 0.0
    exec_per_s: float = 0.0
    cov: int | None = None
    ft: int | None = None
    corpus: int | None = None
    failed: bool = False
    artifact: str | None = None
    python: str = f"{sys.version_info.major}.{sys.version_info.minor}"


def atheris_available() -> bool:
    """Whether atheris can be imported by this interpreter."""
    return importlib.util.find_spec("atheris") is not None


def _fuzz_one(target: str) -> Callable[[bytes], None]:
    module = importlib.import_module(f"tests.fuzz.fuzz_{target}")
    function: Callable[[bytes], None] = module.fuzz_one
    return function


def run_atheris(target: str, args: argparse.Namespace) -> Result:
    """One libFuzzer campaign in a child process; its output goes to a log and, filtered, here."""
    workdir: Path = args.workdir
    corpus = workdir / "corpus" / target
    artifacts = workdir / "artifacts"
    corpus.mkdir(parents=True, exist_ok=True)
    artifacts.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "tests.fuzz._atheris_worker", target,
               f"-artifact_prefix={artifacts}/{target}-",
               f"-max_len={args.max_len or MAX_LEN[target]}",
               f"-timeout={args.timeout}", f"-rss_limit_mb={args.rss_limit_mb}",
               "-print_final_stats=1", str(corpus), str(SEEDS / target)]
    if args.runs is not None:
        command.append(f"-runs={args.runs}")
    if args.seconds is not None:
        command.append(f"-max_total_time={int(args.seconds)}")
    before = set(artifacts.iterdir())
    result = Result(target, "atheris")
    log_path = workdir / f"{target}.log"
    started = time.monotonic()
    with open(log_path, "w") as log, subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            errors="replace") as child:
        assert child.stdout is not None
        for line in child.stdout:
            log.write(line)
            status = _STATUS.match(line)
            if status:
                result.executions = int(status.group(1))
                result.cov, result.ft, result.corpus = (int(status.group(n)) for n in (3, 4, 5))
            done = re.match(r"^stat::number_of_executed_units: (\d+)", line)
            if done:
                result.executions = int(done.group(1))
            if not _NOISE.match(line):
                print(f"[{target}] {line}", end="", flush=True)
    result.seconds = time.monotonic() - started
    result.failed = child.returncode != 0
    new = sorted(set(artifacts.iterdir()) - before)
    if new:
        result.failed = True
        result.artifact = str(new[0])
    print(f"[{target}] full log: {log_path}")
    return _finish(result)


def run_hypothesis(target: str, args: argparse.Namespace) -> Result:
    """Seeds, then hypothesis batches until the runs or the seconds are used up."""
    from hypothesis import HealthCheck, Phase, given, settings

    from tests.fuzz._strategies import inputs, seeds

    fuzz_one = _fuzz_one(target)
    result = Result(target, "hypothesis")
    started = time.monotonic()
    ends = started + (args.seconds if args.seconds is not None else float("inf"))
    runs = args.runs if args.runs is not None else float("inf")
    last = [b""]

    def run(data: bytes) -> None:
        last[0] = data
        result.executions += 1
        fuzz_one(data)

    @settings(max_examples=args.batch, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), phases=(Phase.generate, Phase.shrink))
    @given(inputs(target, args.max_len or MAX_LEN[target]))
    def batch(data: bytes) -> None:
        run(data)

    try:
        for seed in seeds(target):
            run(seed)
        while result.executions < runs and time.monotonic() < ends:
            batch()
    except Exception:  # the shrunk input ran last
        traceback.print_exc()
        result.failed = True
        result.artifact = str(_save_artifact(args.workdir, target, last[0]))
    result.seconds = time.monotonic() - started
    return _finish(result)


def _save_artifact(workdir: Path, target: str, data: bytes) -> Path:
    folder = workdir / "artifacts"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{target}-crash-{hashlib.sha1(data).hexdigest()}"
    path.write_bytes(data)
    return path


def _finish(result: Result) -> Result:
    result.exec_per_s = result.executions / result.seconds if result.seconds else 0.0
    if result.artifact:
        print(f"[{result.target}] FAILED: input saved as {result.artifact}; reproduce with "
              f"python -m tests.fuzz --target {result.target} --replay {result.artifact}")
    return result


def replay(target: str, files: list[Path]) -> int:
    """Run the target on each file; 1 if any of them fails."""
    fuzz_one = _fuzz_one(target)
    failures = 0
    for path in files:
        try:
            fuzz_one(path.read_bytes())
        except Exception:
            failures += 1
            print(f"{path}: FAILED")
            traceback.print_exc()
        else:
            print(f"{path}: ok")
    return 1 if failures else 0


def _table(results: list[Result]) -> str:
    lines = ["| target | engine | executions | exec/s | cov | ft | corpus | seconds | result |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(
            f"| {r.target} | {r.engine} | {r.executions:,} | {r.exec_per_s:,.0f} | "
            f"{'' if r.cov is None else r.cov} | {'' if r.ft is None else r.ft} | "
            f"{'' if r.corpus is None else r.corpus} | {r.seconds:,.0f} | "
            f"{'FAILED' if r.failed else 'ok'} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz",
                                     description=__doc__.split("\n", 1)[0])
    parser.add_argument("--target", required=True, choices=[*TARGETS, "all"])
    parser.add_argument("--runs", type=int, help="executions per target")
    parser.add_argument("--seconds", type=float, help="seconds per target")
    parser.add_argument("--engine", choices=["auto", "atheris", "hypothesis"], default="auto",
                        help="auto: atheris if it is installed, else hypothesis")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR,
                        help="grown corpora, logs, artifacts and summary (default build/fuzz)")
    parser.add_argument("--max-len", type=int,
                        help="largest input in bytes (default: 2048 or 8192, per target)")
    parser.add_argument("--timeout", type=int, default=30, help="seconds one input may take")
    parser.add_argument("--rss-limit-mb", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=200, help="hypothesis examples per batch")
    parser.add_argument("--replay", type=Path, nargs="+", metavar="FILE")
    args = parser.parse_args(argv)
    if args.replay is None and args.runs is None and args.seconds is None:
        parser.error("give --runs, --seconds or both (or --replay FILE ...)")
    if args.replay is not None and args.target == "all":
        parser.error("--replay needs one --target")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.replay is not None:
        return replay(args.target, args.replay)
    engine = args.engine
    if engine == "auto":
        engine = "atheris" if atheris_available() else "hypothesis"
    if engine == "atheris" and not atheris_available():
        print("atheris is not installed (pip install atheris; wheels exist for CPython 3.11 "
              "to 3.13 on x86-64 Linux)", file=sys.stderr)
        return 2
    args.workdir.mkdir(parents=True, exist_ok=True)
    results = []
    for target in TARGETS if args.target == "all" else (args.target,):
        print(f"==== {target}: {engine}, runs={args.runs}, seconds={args.seconds}", flush=True)
        run = run_atheris if engine == "atheris" else run_hypothesis
        result = run(target, args)
        results.append(result)
        with open(args.workdir / "summary.jsonl", "a") as summary:
            summary.write(json.dumps({**asdict(result), "at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                      "cpu": os.cpu_count()}) + "\n")
    print(_table(results))
    return 1 if any(r.failed for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
