"""Contrastive warm-up: the encoder learns which texts belong together before the head.

SetFit's observation (Tunstall et al. 2022): a sentence encoder fine-tuned contrastively on
pairs of same-label texts, then given a classifier, beats plain fine-tuning when each label
has few examples. Here the pairs train the ordinary bi-encoder task (in-batch negatives,
the label as the pair's group so same-label texts are never negatives), and the classifier
then starts from the result's encoder.
"""

from __future__ import annotations

import dataclasses
import random
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from finetune._config import TrainConfig
from finetune._data import Example, PairExample
from finetune._run_files import encoder_folder

__all__ = ["contrastive_pairs", "warm_up_encoder"]

WARMUP = "warmup"  # the folder under out_dir: run/ (the bi-encoder run) and encoder/
# Partners per training text in a warm-up epoch. SetFit draws many; on Banking77's
# validation split (10 per intent) 4 warm-up epochs of 1 partner beat 2 of 4 partners
# (0.831 vs 0.812; the classifier after the larger warm-up peaked at its 2nd epoch and then
# declined): more pairs over-fit the few texts sooner.
PAIRS_PER_TEXT = 1


def contrastive_pairs(
    examples: Sequence[Example], seed: int, per_text: int = 1
) -> list[PairExample]:
    """Each text paired with ``per_text`` other texts of its label (fewer if the label has
    fewer), drawn by seed; the label is the pairs' group.

    A label with a single text pairs it with itself (it still serves as a negative for the
    others)."""
    by_label: dict[str, list[str]] = defaultdict(list)
    for example in examples:
        by_label[str(example.label)].append(example.text)
    rng = random.Random(seed)
    pairs = []
    for label in sorted(by_label):
        texts = by_label[label]
        for i, text in enumerate(texts):
            others = texts[:i] + texts[i + 1 :] or [text]
            pairs += [
                PairExample(query=text, passage=partner, group=label)
                for partner in rng.sample(others, min(per_text, len(others)))
            ]
    return pairs


def warm_up_encoder(
    config: TrainConfig, train_examples: Sequence[Example], val_examples: Sequence[Example]
) -> Path:
    """Train the contrastive warm-up once; return the encoder folder the classifier starts from.

    A resumed run finds the folder (or the finished bi-encoder run) and does not train again.
    """
    from accelerate import PartialState  # noqa: PLC0415 - heavy, lazy

    from finetune._loop import train  # noqa: PLC0415 - the loop calls this module

    folder = Path(config.out_dir) / WARMUP
    encoder = folder / "encoder"
    if (encoder / "config.json").is_file():
        return encoder
    run = folder / "run"
    if not (run / "model").is_dir():
        settings = dataclasses.replace(
            config,
            out_dir=str(run),
            task="embedding",
            tier="full",
            epochs=config.contrastive_epochs,
            contrastive_epochs=0,
            label_smoothing=0.0,
        )
        pairs = contrastive_pairs(train_examples, config.seed, PAIRS_PER_TEXT)
        train(settings, pairs, contrastive_pairs(val_examples, config.seed), resume=True)
    state = PartialState()  # under several processes, one writes the folder
    if state.is_main_process:
        encoder_folder(run / "model", encoder)
    state.wait_for_everyone()
    return encoder
