"""Settings shared by the whole test suite."""

import os
from collections.abc import Callable
from typing import Any

import pytest

# No model hub is reachable here: never download at run time; the base model is a package.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_model() -> Callable[..., Any]:
    """Builds a tiny random-init BERT with a head: a fast stand-in for MiniLM in unit tests.

    Call it as ``tiny_model(tokenizer, num_labels, head=PooledClassifier, seed=0)``; torch
    is imported only when a test asks for it.
    """
    import torch  # noqa: PLC0415 - keep collecting the suite torch-free
    import transformers  # noqa: PLC0415

    from agents._heads import PooledClassifier  # noqa: PLC0415

    def build(
        tokenizer: Any, num_labels: int, *, head: Any = PooledClassifier, seed: int = 0
    ) -> Any:
        config = transformers.BertConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=256,
        )
        torch.manual_seed(seed)
        model = head(transformers.BertModel(config), num_labels)
        # A random head gives near-uniform outputs; larger weights make predictions differ.
        torch.nn.init.normal_(model.head.weight, std=5.0)
        return model.eval()

    return build
