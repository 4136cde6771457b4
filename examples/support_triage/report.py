"""The demo's round table, its Markdown report and its plot."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from runner_kit import label_outcomes, two_panels

from support_triage.review import BatchStats, ReviewStats

__all__ = ["RoundRow", "plot_rounds", "serving_holdout", "table", "write_report"]


@dataclass(frozen=True)
class RoundRow:
    """One round: a batch of tickets served by one model, then (except after the last
    batch) a review and a fine-tuning round.

    Attributes:
        index: 0 for the batch served by the seed model.
        model: The intent model version that served the batch.
        batch: What the batch showed.
        stream_s: Seconds to run the batch through the workflow.
        review: The review that followed (None after the last batch).
        outcome: ``promoted`` or ``rejected`` (or the failed job's status), "" if none.
        holdout: Frozen-holdout accuracy of candidate and serving model, when gated.
        train_s: Seconds the fine-tuning round took.
    """

    index: int
    model: str
    batch: BatchStats
    stream_s: float
    review: ReviewStats | None = None
    outcome: str = ""
    holdout: tuple[float, float | None] | None = None
    train_s: float = 0.0


HEADER = (
    "| round | model | tickets | intent acc | auto-resolved | wrong auto-replies | "
    "clarify | escalated | cards frozen | labels (corrected) | fine-tune: holdout acc "
    "cand / serving | result | time s |"
)


def _holdout(row: RoundRow) -> str:
    if row.holdout is None:
        return "-"
    candidate, serving = row.holdout
    return f"{candidate:.3f} / {'-' if serving is None else f'{serving:.3f}'}"


def table(rows: Sequence[RoundRow]) -> str:
    """The round table as Markdown (also readable as plain text)."""
    lines = [HEADER, "|" + "---|" * (HEADER.count("|") - 1)]
    for row in rows:
        b = row.batch
        labels = "-" if row.review is None else f"{row.review.labelled} ({row.review.corrected})"
        lines.append(
            f"| {row.index} | {row.model} | {b.tickets} | {b.accuracy:.3f} | "
            f"{b.auto_resolved:.1%} | {b.wrong_replies} | {b.clarifications} | "
            f"{b.escalations} | {b.cards_frozen} | {labels} | {_holdout(row)} | "
            f"{row.outcome or '-'} | {row.stream_s + row.train_s:.0f} |"
        )
    return "\n".join(lines)


def serving_holdout(rows: Sequence[RoundRow]) -> list[float | None]:
    """The frozen-holdout accuracy of the model that served each round's tickets.

    The gate measures it for every round it ran; a round without a gate (the last one)
    serves what the previous round left: its promoted candidate, or the same model.
    """
    values: list[float | None] = []
    for i, row in enumerate(rows):
        before = rows[i - 1].holdout if i else None
        if row.holdout is not None:
            values.append(row.holdout[1])
        elif before is not None:
            values.append(before[0] if rows[i - 1].outcome == "promoted" else before[1])
        else:
            values.append(None)
    return values


def plot_rounds(rows: Sequence[RoundRow], path: Path) -> Path:
    """Intent accuracy, auto-resolved share and wrong auto-replies per round, as a PNG."""
    rounds = [row.index for row in rows]
    accuracy = [r.batch.accuracy for r in rows]
    with two_panels(path, rounds) as (left, right):
        left.plot(rounds, accuracy, marker="o", label="intent accuracy")
        held = serving_holdout(rows)
        if any(value is not None for value in held):
            left.plot(rounds, held, marker="^", linestyle="--", label="serving model, holdout")
        left.plot(rounds, [r.batch.auto_resolved for r in rows], marker="s", label="auto-resolved")
        label_outcomes(left, rounds, accuracy, [r.outcome for r in rows])
        left.set(xlabel="round", ylim=(0, 1), title="each round: its tickets, its serving model")
        left.legend(loc="lower right")
        rate = [r.batch.wrong_replies / max(1, r.batch.tickets) for r in rows]
        right.bar(rounds, rate, color="tab:red")
        right.set(xlabel="round", title="wrong auto-replies per ticket")
    return path


def write_report(
    path: Path, rows: Sequence[RoundRow], *, settings: str, setup: Sequence[str], totals: str
) -> Path:
    """The Markdown report: settings, set-up steps, the round table and the plot."""
    text = "\n".join(
        [
            "# Support-triage demo",
            "",
            f"Settings: {settings}",
            "",
            "## Set-up",
            "",
            *[f"- {line}" for line in setup],
            "",
            "## Rounds",
            "",
            "Each round runs a batch of unseen tickets through the workflow with the serving "
            "intent model, then the reviewer labels the most uncertain predictions within the "
            "budget and a fine-tuning round trains a candidate; the promotion gate compares "
            "it with the serving model on the frozen holdout.",
            "",
            table(rows),
            "",
            totals,
            "",
            "![rounds](rounds.png)",
            "",
        ]
    )
    path.write_text(text, "utf-8")
    return path
