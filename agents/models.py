"""Building blocks for writing your own model agent (see ``ModelAgent``).

The torch modules of the built-in heads, the ``LoadedModel`` a batch runs on, and the
helpers the built-ins batch with. Unlike ``import agents``, importing this module imports
torch: use it where models are built or run.
"""

from agents._classifier import calibrated_probabilities
from agents._heads import BiEncoder, PooledClassifier, TokenClassifier, mean_pool
from agents._model import Encoded, LoadedModel, length_sorted_batches, pad_batch

__all__ = [
    "BiEncoder",
    "Encoded",
    "LoadedModel",
    "PooledClassifier",
    "TokenClassifier",
    "calibrated_probabilities",
    "length_sorted_batches",
    "mean_pool",
    "pad_batch",
]
