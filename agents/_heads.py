"""Torch modules of the model agents: a mean-pooled encoder with a linear head, and a
token classifier (a linear head on every token vector) for entity extraction.

This module imports torch at import time, so only code that already needs torch imports it
(inside functions): ``import agents`` stays torch-free.

all-MiniLM-L6-v2 was trained to produce mean-pooled sentence embeddings, so the classifier
pools the same way; a head on the [CLS] token fine-tunes markedly worse on this checkpoint.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["PooledClassifier", "TokenClassifier", "mean_pool"]


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average the token vectors of each row over its real (unpadded) tokens.

    Args:
        hidden: Token vectors, shape ``(batch, tokens, dim)``.
        attention_mask: 1 for real tokens and 0 for padding, shape ``(batch, tokens)``.

    Returns:
        One vector per row, shape ``(batch, dim)``.
    """
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    # The clamp keeps an all-padding row (impossible with [CLS]/[SEP], but cheap) finite.
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


class PooledClassifier(nn.Module):
    """A transformer encoder, mean pooling over the attention mask, and a linear head.

    Args:
        encoder: A Hugging Face base model (``AutoModel``) returning ``last_hidden_state``.
        num_labels: Number of output logits.
        dropout: Dropout on the pooled vector while training.
    """

    def __init__(self, encoder: Any, num_labels: int, *, dropout: float = 0.1) -> None:
        super().__init__()
        if num_labels < 1:
            raise ValueError(f"PooledClassifier needs num_labels >= 1, got {num_labels}")
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(int(encoder.config.hidden_size), num_labels)

    @property
    def config(self) -> Any:
        """The encoder's configuration (saved as the artifact's ``config.json``)."""
        return self.encoder.config

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Logits of shape ``(batch, num_labels)``."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        pooled = mean_pool(hidden.last_hidden_state, attention_mask)
        logits: torch.Tensor = self.head(self.dropout(pooled))
        return logits


class TokenClassifier(nn.Module):
    """A transformer encoder with a linear head on every token vector (BIO tagging).

    Its weights have the same names and shapes as a ``PooledClassifier``'s; the artifact's
    ``head`` field (``token_linear``) is what tells the two apart when loading.

    Args:
        encoder: A Hugging Face base model (``AutoModel``) returning ``last_hidden_state``.
        num_labels: Number of tags (logits per token).
        dropout: Dropout on the token vectors while training.
    """

    head_kind = "token_linear"

    def __init__(self, encoder: Any, num_labels: int, *, dropout: float = 0.1) -> None:
        super().__init__()
        if num_labels < 1:
            raise ValueError(f"TokenClassifier needs num_labels >= 1, got {num_labels}")
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(int(encoder.config.hidden_size), num_labels)

    @property
    def config(self) -> Any:
        """The encoder's configuration (saved as the artifact's ``config.json``)."""
        return self.encoder.config

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Logits of shape ``(batch, tokens, num_labels)``."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        logits: torch.Tensor = self.head(self.dropout(hidden.last_hidden_state))
        return logits
