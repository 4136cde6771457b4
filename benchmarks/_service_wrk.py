"""wrk, the HTTP load generator: its Lua request scripts, one run, and its text report parsed.

wrk (https://github.com/wg/wrk) is a separate C process; ``--latency`` adds the 50/75/90/99%
latency distribution to its report. Its counters, all read from that report:

- ``N requests in Ts``: responses received before the duration ran out (any status);
- ``Non-2xx or 3xx responses: K`` (printed only when K > 0): responses with status >= 400;
- ``Socket errors: connect a, read b, write c, timeout d`` (printed only when one is > 0):
  requests that got no response (a timed-out request is not in the latency figures).
"""

from __future__ import annotations

import json
import re
import resource
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["WrkResult", "lua_script", "parse_wrk", "require_wrk", "run_wrk"]

SOCKET_ERRORS = ("connect", "read", "write", "timeout")
PERCENTILES = ("50", "75", "90", "99")
# wrk prints durations with these units (its units.c): microseconds up to hours.
_TIME_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_TIME = r"([\d.]+)(us|ms|s|m|h)"
_REQUESTS = re.compile(r"^\s*(\d+) requests in " + _TIME, re.MULTILINE)
_RATE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_PERCENTILE = re.compile(r"^\s*(50|75|90|99)%\s+" + _TIME, re.MULTILINE)
_NON_2XX = re.compile(r"^\s*Non-2xx or 3xx responses:\s+(\d+)", re.MULTILINE)
_SOCKET = re.compile(
    r"^\s*Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", re.MULTILINE
)


@dataclass(frozen=True)
class WrkResult:
    """One wrk run's numbers.

    Attributes:
        requests: Responses received (any status).
        seconds: How long wrk ran.
        requests_per_s: Responses per second, as wrk computes it.
        latency_ms: Latency percentiles ("50", "75", "90", "99") in milliseconds.
        non_2xx: Responses with an error status (wrk counts status >= 400).
        socket_errors: Requests without a response, by kind (connect, read, write, timeout).
        cpu_s: CPU seconds wrk itself used (user + system), when measured.
    """

    requests: int
    seconds: float
    requests_per_s: float
    latency_ms: dict[str, float]
    non_2xx: int = 0
    socket_errors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SOCKET_ERRORS, 0))
    cpu_s: float | None = None

    @property
    def errors(self) -> int:
        """Every request that failed: an error status or no response at all."""
        return self.non_2xx + sum(self.socket_errors.values())

    def to_json(self) -> dict[str, Any]:
        """The numbers as a JSON-ready dict, ``errors`` included."""
        return {**asdict(self), "errors": self.errors}


def _ms(value: str, unit: str) -> float:
    return float(value) * _TIME_UNITS_MS[unit]


def parse_wrk(report: str) -> WrkResult:
    """Read wrk's text report (run with ``--latency``).

    Args:
        report: wrk's standard output.

    Returns:
        The run's counters and latency percentiles.

    Raises:
        ValueError: A line every report has is missing (not wrk's output, wrk failed, or
            ``--latency`` was not given); the message quotes the report.
    """
    requests = _REQUESTS.search(report)
    rate = _RATE.search(report)
    percentiles = {m.group(1): _ms(m.group(2), m.group(3)) for m in _PERCENTILE.finditer(report)}
    missing = [
        what
        for what, found in (
            ("'N requests in T'", requests),
            ("'Requests/sec:'", rate),
            ("the --latency distribution (50/75/90/99%)", len(percentiles) == len(PERCENTILES)),
        )
        if not found
    ]
    if missing or requests is None or rate is None:
        raise ValueError(
            f"wrk's report lacks {', '.join(missing)}; was wrk run with --latency, and did it "
            f"reach the server? Report:\n{report}"
        )
    non_2xx = _NON_2XX.search(report)
    sockets = _SOCKET.search(report)
    counts = [int(g) for g in sockets.groups()] if sockets else [0] * len(SOCKET_ERRORS)
    return WrkResult(
        requests=int(requests.group(1)),
        seconds=_ms(requests.group(2), requests.group(3)) / 1e3,
        requests_per_s=float(rate.group(1)),
        latency_ms=percentiles,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=dict(zip(SOCKET_ERRORS, counts, strict=True)),
    )


def lua_script(token: str, method: str = "GET", bodies: Sequence[Any] = ()) -> str:
    """A wrk script sending ``method`` with the bearer token, cycling through JSON ``bodies``.

    Args:
        token: The API key sent as ``Authorization: Bearer <token>``.
        method: The HTTP method.
        bodies: JSON bodies, one per request in turn (none: no body).

    Returns:
        The Lua source for ``wrk -s``.
    """
    lines = [
        f"wrk.method = {json.dumps(method)}",
        f'wrk.headers["Authorization"] = {json.dumps("Bearer " + token)}',
    ]
    if bodies:
        # json.dumps twice: a JSON body inside a Lua string literal (Lua reads JSON's escapes).
        items = ", ".join(json.dumps(json.dumps(body)) for body in bodies)
        lines += [
            'wrk.headers["Content-Type"] = "application/json"',
            f"local bodies = {{{items}}}",
            "local i = 0",
            "request = function()",
            "  i = i % #bodies + 1",
            "  return wrk.format(nil, nil, nil, bodies[i])",
            "end",
        ]
    return "\n".join(lines) + "\n"


def require_wrk() -> str | None:
    """wrk's path, or None when it is not installed."""
    return shutil.which("wrk")


def run_wrk(
    url: str,
    script: Path,
    *,
    connections: int,
    duration_s: int,
    threads: int = 2,
    timeout_s: int = 30,
) -> WrkResult:
    """Run wrk once against ``url`` and parse its report, with the CPU time wrk used.

    wrk takes whole seconds (``-d``) and counts threads within connections (``-c``).

    Raises:
        RuntimeError: wrk exited with an error (its output is in the message).
    """
    command = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{duration_s}s",
        f"--timeout={timeout_s}s", "--latency", "-s", str(script), url,
    ]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(
            f"wrk failed (exit {done.returncode}): {' '.join(command)}\n{done.stdout}{done.stderr}"
        )
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    parsed = parse_wrk(done.stdout)
    return WrkResult(**{**asdict(parsed), "cpu_s": round(cpu, 2)})
