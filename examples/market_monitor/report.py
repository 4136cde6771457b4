"""The monitor's round table, its PNG plot and its Markdown report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from runner_kit import label_outcomes, two_panels

from market_monitor.analyst import DayScore

__all__ = ["RoundRow", "plot_rounds", "table", "write_report"]


@dataclass(frozen=True)
class RoundRow:
    """One day of news served by one alert-policy model, then (except after the last day)
    the analyst's verdicts, a review of the most uncertain decisions, and a round.

    Attributes:
        day: The day of the stream (1 is the first after calibration).
        model: The alert-policy version that served the day.
        tweets: Tweets streamed.
        failed: Runs that did not succeed.
        sentiment_accuracy: The classifier against the tweets' true labels.
        score: The day's alerts against the injected events.
        verdicts: (useful, noise) verdicts the analyst gave on the day's alerts.
        reviewed: (labelled, of which "alert") from the review queue.
        holdout: Macro F1 of candidate and serving model on the frozen holdout, when gated.
        outcome: ``promoted``, ``rejected`` or the failed job's status; "" if no round.
        stream_s: Seconds to stream the day.
        train_s: Seconds the round took.
    """

    day: int
    model: str
    tweets: int
    failed: int
    sentiment_accuracy: float
    score: DayScore
    verdicts: tuple[int, int] | None = None
    reviewed: tuple[int, int] | None = None
    holdout: tuple[float, float | None] | None = None
    outcome: str = ""
    stream_s: float = 0.0
    train_s: float = 0.0


HEADER = (
    "| day | policy model | tweets | sentiment acc | alerts (watchlist) | useful | precision "
    "| events caught | recall | verdicts useful / noise | queue labels (alert) | gate: macro F1 "
    "cand / serving | result | time s |"
)


def _pair(pair: tuple[int, int] | None, fmt: str) -> str:
    return "-" if pair is None else fmt.format(*pair)


def _holdout(row: RoundRow) -> str:
    if row.holdout is None:
        return "-"
    candidate, serving = row.holdout
    return f"{candidate:.3f} / {'-' if serving is None else f'{serving:.3f}'}"


def table(rows: Sequence[RoundRow]) -> str:
    """The round table as Markdown (also readable as plain text)."""
    lines = [HEADER, "|" + "---|" * (HEADER.count("|") - 1)]
    for r in rows:
        s = r.score
        lines.append(
            f"| {r.day} | {r.model} | {r.tweets} | {r.sentiment_accuracy:.3f} | "
            f"{s.alerts} ({s.watchlist}) | {s.useful} | {s.precision:.2f} | "
            f"{s.caught} / {s.events} | {s.recall:.2f} | {_pair(r.verdicts, '{} / {}')} | "
            f"{_pair(r.reviewed, '{} ({})')} | {_holdout(r)} | {r.outcome or '-'} | "
            f"{r.stream_s + r.train_s:.0f} |"
        )
    return "\n".join(lines)


def plot_rounds(rows: Sequence[RoundRow], path: Path) -> Path:
    """Alert precision and recall per day, and alerts raised, as a PNG."""
    days = [r.day for r in rows]
    precision = [r.score.precision for r in rows]
    with two_panels(path, days) as (left, right):
        left.plot(days, precision, marker="o", label="alert precision")
        left.plot(days, [r.score.recall for r in rows], marker="s", label="event recall")
        label_outcomes(left, days, precision, [r.outcome for r in rows])
        left.set(xlabel="day", ylim=(0, 1.05), title="each day: its news, its serving policy")
        left.legend(loc="lower right")
        useful = [r.score.useful for r in rows]
        noise = [r.score.alerts - r.score.useful for r in rows]
        right.bar(days, useful, color="tab:green", label="useful")
        right.bar(days, noise, bottom=useful, color="tab:red", label="noise")
        right.set(xlabel="day", title="alerts raised (watchlist left out)")
        right.legend(loc="upper right")
    return path


def write_report(
    path: Path,
    rows: Sequence[RoundRow],
    *,
    settings: str,
    setup: Sequence[str],
    totals: str,
    digest_file: str,
) -> Path:
    """The Markdown report: settings, set-up, the round table, the plot, the digest's link."""
    text = "\n".join(
        [
            "# Market-sentiment monitor",
            "",
            f"Settings: {settings}",
            "",
            "## Set-up",
            "",
            *[f"- {line}" for line in setup],
            "",
            "## Days",
            "",
            "Each day of news runs through the workflow with the serving alert policy. Then "
            "the simulated analyst gives every alert a verdict (useful or noise: outcome "
            "feedback on its decision) and labels the most uncertain decisions from the "
            "review queue, and a fine-tuning round trains a candidate policy, which the gate "
            "compares with the serving one on the frozen holdout. Precision: useful alerts / "
            "alerts; recall: event bursts with a useful alert / event bursts (watchlist "
            "alerts are wanted by definition and left out of both).",
            "",
            table(rows),
            "",
            totals,
            "",
            "![rounds](rounds.png)",
            "",
            f"The last day's digest: [{digest_file}]({digest_file}).",
            "",
        ]
    )
    path.write_text(text, "utf-8")
    return path
