"""Confidence calibration by temperature scaling (Guo et al., 2017).

A fine-tuned classifier is usually overconfident: its top probability is higher than its
accuracy. One scalar ``T`` dividing the logits, fitted to minimise the negative
log-likelihood on held-out data, fixes most of that without changing any prediction.
"""

from __future__ import annotations

import math
from typing import Any

from agents._bio import IGNORE

__all__ = ["fit_temperature"]

# T is optimised as log T so it stays positive; the bounds keep a degenerate validation set
# (all correct, or all wrong) from driving it to 0 or infinity.
MIN_T, MAX_T = 0.05, 100.0


def fit_temperature(
    logits: Any, labels: Any, *, multi_label: bool = False, max_iter: int = 100
) -> float:
    """Fit the temperature that minimises the NLL of ``softmax(logits / T)`` on ``labels``.

    Args:
        logits: Validation logits, shape ``(n, k)`` (a tensor, array or nested lists), or
            ``(n, tokens, k)`` for a token classifier.
        labels: Single-label: the true class index of each row, shape ``(n,)``; token
            logits: the true tag of each token, shape ``(n, tokens)``, with ``-100`` (the
            Hugging Face convention) on tokens that are not scored (padding, special
            tokens, subwords after a word's first).
            Multi-label: 0/1 targets, shape ``(n, k)`` (the loss is then binary
            cross-entropy of ``sigmoid(logits / T)``).
        multi_label: Which of the two the labels are.
        max_iter: LBFGS iterations.

    Returns:
        The temperature, within [0.05, 100]; store it with the artifact (``save_artifact``).
        1.0 when every row is already right: the NLL then falls forever as the temperature
        shrinks, and a fit would make the model near-certain of everything (small
        validation sets of an easy task do this).

    Raises:
        ValueError: Shapes do not fit or there are no rows (or no scored tokens).
    """
    import torch  # noqa: PLC0415 - heavy, lazy
    from torch.nn import functional  # noqa: PLC0415

    # clone(): logits computed under inference_mode cannot take part in autograd otherwise.
    scores = torch.as_tensor(logits, dtype=torch.float32).detach().clone()
    targets = torch.as_tensor(labels).detach().clone()
    if scores.dim() == 3 and not multi_label:  # noqa: PLR2004 - (texts, tokens, tags)
        if tuple(targets.shape) != tuple(scores.shape[:2]):
            raise ValueError(
                f"fit_temperature needs token tags of shape {tuple(scores.shape[:2])} for "
                f"token logits {tuple(scores.shape)}, got {tuple(targets.shape)}"
            )
        scored = targets.reshape(-1) != IGNORE
        scores, targets = scores.reshape(-1, scores.shape[-1])[scored], targets.reshape(-1)[scored]
    _check_shapes(tuple(scores.shape), tuple(targets.shape), multi_label)
    if multi_label:
        targets = targets.float()

        def loss_of(scaled: torch.Tensor) -> torch.Tensor:
            return functional.binary_cross_entropy_with_logits(scaled, targets)

    else:
        targets = targets.long()

        def loss_of(scaled: torch.Tensor) -> torch.Tensor:
            return functional.cross_entropy(scaled, targets)

    right = scores.argmax(-1) == targets if not multi_label else (scores > 0) == targets.bool()
    if bool(right.all()):
        return 1.0
    log_t = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = loss_of(scores / log_t.clamp(math.log(MIN_T), math.log(MAX_T)).exp())
        loss.backward()  # type: ignore[no-untyped-call]  # torch's stub lacks a return type
        return loss

    optimizer.step(closure)  # type: ignore[no-untyped-call]
    return float(min(max(math.exp(float(log_t.item())), MIN_T), MAX_T))


def _check_shapes(scores: tuple[int, ...], targets: tuple[int, ...], multi_label: bool) -> None:
    if len(scores) != 2 or scores[0] == 0:  # noqa: PLR2004 - (rows, classes)
        raise ValueError(f"fit_temperature needs logits of shape (n >= 1, k), got {scores}")
    wanted = scores if multi_label else scores[:1]
    if targets != wanted:
        kind = "multi-hot targets" if multi_label else "class indices"
        raise ValueError(
            f"fit_temperature needs {kind} of shape {wanted} for logits {scores}, got {targets}"
        )
