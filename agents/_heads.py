"""Torch modules of the model agents: a mean-pooled encoder with a linear head, and a
token classifier (a linear head on every token vector) for entity extraction, and a
bi-encoder (the mean-pooled encoder alone, normalised) for retrieval.

This module imports torch at import time, so only code that already needs torch imports it
(inside functions): ``import agents`` stays torch-free.

all-MiniLM-L6-v2 was trained to produce mean-pooled sentence embeddings, so the classifier
pools the same way; a head on the [CLS] token fine-tunes markedly worse on this checkpoint.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["BiEncoder", "PooledClassifier", "TokenClassifier", "mean_pool"]


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


class _EncoderWithHead(nn.Module):
    """A transformer encoder and a linear head; subclasses decide what the head reads.

    Both subclasses name their weights ``encoder.*`` and ``head.*``, so their state dicts
    look alike; the artifact's ``head`` field tells them apart when loading.

    Args:
        encoder: A Hugging Face base model (``AutoModel``) returning ``last_hidden_state``.
        num_labels: Number of output logits (per text, or per token).
        dropout: Dropout on the head's input while training.
    """

    def __init__(self, encoder: Any, num_labels: int, *, dropout: float = 0.1) -> None:
        super().__init__()
        if num_labels < 1:
            raise ValueError(f"{type(self).__name__} needs num_labels >= 1, got {num_labels}")
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(int(encoder.config.hidden_size), num_labels)

    @property
    def config(self) -> Any:
        """The encoder's configuration (saved as the artifact's ``config.json``)."""
        return self.encoder.config

    def _hidden(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden: torch.Tensor = self.encoder(
            input_ids=input_ids, attention_mask=attention_mask
        ).last_hidden_state
        return hidden


class PooledClassifier(_EncoderWithHead):
    """Mean pooling over the attention mask, then the linear head (text classification)."""

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Logits of shape ``(batch, num_labels)``."""
        pooled = mean_pool(self._hidden(input_ids, attention_mask), attention_mask)
        logits: torch.Tensor = self.head(self.dropout(pooled))
        return logits


class TokenClassifier(_EncoderWithHead):
    """The linear head on every token vector (BIO tagging for entity extraction)."""

    head_kind = "token_linear"

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Logits of shape ``(batch, tokens, num_labels)``."""
        logits: torch.Tensor = self.head(self.dropout(self._hidden(input_ids, attention_mask)))
        return logits


class BiEncoder(nn.Module):
    """The encoder alone, mean-pooled and L2-normalised: one unit vector per text.

    Queries and documents go through the same module (a shared-weight bi-encoder), so the
    dot product of two outputs is their cosine similarity. It has no head: its weights are
    the encoder's (``encoder.*``, as in the classifiers), so the base checkpoint itself can
    be saved and served unchanged, and a fine-tuned one replaces it version for version.

    Args:
        encoder: A Hugging Face base model (``AutoModel``) returning ``last_hidden_state``.
    """

    head_kind = "mean_pool"

    def __init__(self, encoder: Any) -> None:
        super().__init__()
        self.encoder = encoder

    @property
    def config(self) -> Any:
        """The encoder's configuration (saved as the artifact's ``config.json``)."""
        return self.encoder.config

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Unit-length embeddings of shape ``(batch, hidden_size)``."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        pooled = mean_pool(hidden.last_hidden_state, attention_mask)
        return nn.functional.normalize(pooled, dim=-1)
