"""Prometheus metrics of one service: HTTP traffic, runs, steps and the review backlog.

Each app has its own registry (several apps in one process, as in tests, never share
counters). HTTP series are labelled by the route's template (``/api/runs/{run_id}``), never by
the raw path, so their number stays bounded whatever clients send.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from knowledge import Database, RunStatus, StepRecord, review_counts

__all__ = ["Metrics", "MetricsMiddleware"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class _ReviewBacklog(Collector):
    """Open review items per agent, counted when scraped."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "taskloom_review_open", "Open review-queue items per agent", labels=["agent"]
        )
        with self._database.session(read_only=True) as session:
            for agent, count in sorted(review_counts(session).items()):
                family.add_metric([agent], count)
        yield family


class Metrics:
    """The service's metrics and their registry."""

    def __init__(self, database: Database) -> None:
        self.registry = CollectorRegistry()
        reg = self.registry
        self.requests = Counter(
            "taskloom_http_requests", "HTTP requests", ["method", "route", "status"], registry=reg
        )
        self.latency = Histogram(
            "taskloom_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=reg,
        )
        self.runs = Counter(
            "taskloom_runs", "Runs finished by this service", ["workflow", "status"], registry=reg
        )
        self.runs_active = Gauge(
            "taskloom_runs_in_progress", "Runs in progress", ["workflow"], registry=reg
        )
        self.steps = Counter("taskloom_steps", "Steps executed", ["agent", "status"], registry=reg)
        self.step_seconds = Histogram(
            "taskloom_step_duration_seconds",
            "Step duration (the agent's call, retries included)",
            ["agent"],
            buckets=_LATENCY_BUCKETS,
            registry=reg,
        )
        reg.register(_ReviewBacklog(database))

    def step(self, record: StepRecord) -> None:
        """Count one recorded step."""
        self.steps.labels(record.agent, record.status.value).inc()
        self.step_seconds.labels(record.agent).observe(record.duration_s)

    def run_started(self, workflow: str) -> None:
        """Count a run the service started or resumed."""
        self.runs_active.labels(workflow).inc()

    def run_finished(self, workflow: str, status: RunStatus) -> None:
        """Count a finished run."""
        self.runs_active.labels(workflow).dec()
        self.runs.labels(workflow, status.value).inc()

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts and times every HTTP request by method, route template and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = _route(scope)
            self.metrics.requests.labels(scope["method"], route, str(status)).inc()
            self.metrics.latency.labels(scope["method"], route).observe(
                time.perf_counter() - started
            )


def _route(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    return "/ui" if scope.get("path", "").startswith("/ui") else "unmatched"
