"""The per-task parts of the training loop; everything else is shared.

A task decides four things, each a table keyed by ``TrainConfig.task``:

* how examples become dataset rows and batches (``dataset_rows``, ``COLLATES``): labelled
  texts; texts with BIO tag ids on each word's first subword (``IGNORE`` elsewhere, padded
  with ``IGNORE``); or (query, passage) pairs tokenized on both sides;
* the model on the base encoder (``build_model``): ``PooledClassifier``,
  ``TokenClassifier`` or ``BiEncoder``;
* the loss of a batch (``LOSSES``): cross-entropy, binary cross-entropy, cross-entropy over
  tags ignoring ``IGNORE``, or in-batch-negatives cross-entropy over scaled cosines;
* the validation score (``VALIDATORS``): a classification report; span-level scores
  (exact type, start and end, decoded as ``agents.EntityExtractor`` decodes); or recall@1
  of each query against the distinct validation passages, reported as the accuracy of
  "which passage" (so ``per_label`` is keyed by passage).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from agents._bio import IGNORE, Span, align_labels, decode, words_of
from finetune._config import TrainConfig
from finetune._data import (
    Example,
    PairExample,
    SpanExample,
    check_examples,
    check_pair_examples,
    check_span_examples,
    collate,
    collate_pairs,
    collate_tokens,
    targets,
)
from finetune._errors import TrainConfigError
from finetune._metrics import EvalReport, LabelScores, _f1, classification_report

__all__ = [
    "COLLATES",
    "LOSSES",
    "SCALE",
    "VALIDATORS",
    "AnyExample",
    "add_lora",
    "build_model",
    "check_data",
    "dataset_rows",
    "span_report",
]

AnyExample = Example | SpanExample | PairExample

# Cosines lie in [-1, 1]; scaled by 20 their softmax is sharp enough to learn from (the
# sentence-transformers default for in-batch-negatives losses).
SCALE = 20.0


class RunView(Protocol):
    """What validation reads of a run (``finetune._run_setup.Run`` has it)."""

    config: TrainConfig
    labels: list[str]
    accelerator: Any
    model: Any
    tokenizer: Any
    val_loader: Any
    val_examples: Sequence[AnyExample]


def check_data(task: str, train: Sequence[AnyExample], val: Sequence[AnyExample]) -> list[str]:
    """Check the examples for ``task``; return the model's labels (logit order).

    Token classification's labels are the BIO tags of the training entity types; the
    bi-encoder has none.
    """
    from agents._bio import bio_tags  # noqa: PLC0415 - keeps the table above short

    if task == "token_classification":
        return bio_tags(check_span_examples(train, val))
    if task == "embedding":
        return check_pair_examples(train, val)
    return check_examples(task, train, val)


def build_model(task: str, encoder: Any, num_labels: int) -> Any:
    """The task's module on a base encoder."""
    from agents.models import BiEncoder, PooledClassifier, TokenClassifier  # noqa: PLC0415

    if task == "embedding":
        return BiEncoder(encoder)
    if task == "token_classification":
        return TokenClassifier(encoder, num_labels)
    return PooledClassifier(encoder, num_labels)


def add_lora(encoder: Any, config: TrainConfig) -> Any:
    """The encoder with LoRA adapters on its attention query and value layers; only the
    adapters train (``merge_and_unload`` folds them back into plain weights)."""
    try:
        from peft import LoraConfig, get_peft_model  # noqa: PLC0415 - optional, heavy
    except ImportError as exc:
        raise TrainConfigError(
            "tier 'lora' needs the peft package, which is not installed. Install it with "
            "pip install 'taskloom[lora]', or train with tier 'full' or 'head'."
        ) from exc
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=["query", "value"],
    )
    with warnings.catch_warnings():  # peft reads a property transformers 5 deprecates
        warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated")
        return get_peft_model(encoder, lora)


def passage_names(examples: Sequence[AnyExample]) -> list[str]:
    """The distinct answers (passages, or groups) of some pairs in first-seen order: index =
    the id a batch's rows are masked and scored by."""
    return list(dict.fromkeys(e.key for e in examples if isinstance(e, PairExample)))


def dataset_rows(
    config: TrainConfig, tokenizer: Any, examples: Sequence[AnyExample], labels: list[str]
) -> tuple[list[Any], list[int]]:
    """Tokenized rows for the task's collate function, and each row's length in tokens."""
    encode = {"truncation": True, "max_length": config.max_length}
    rows: list[Any] = []
    if config.task == "embedding":
        pairs = [e for e in examples if isinstance(e, PairExample)]
        ids = {name: i for i, name in enumerate(passage_names(pairs))}
        queries = tokenizer([e.query for e in pairs], **encode)["input_ids"]
        passages = tokenizer([e.passage for e in pairs], **encode)["input_ids"]
        rows = [(q, p, ids[e.key]) for q, p, e in zip(queries, passages, pairs, strict=True)]
        return rows, [len(q) + len(p) for q, p, _ in rows]
    if config.task == "token_classification":
        texts = [e for e in examples if isinstance(e, SpanExample)]
        tokens = tokenizer([e.text for e in texts], return_offsets_mapping=True, **encode)
        for i, example in enumerate(texts):
            offsets = [tuple(pair) for pair in tokens["offset_mapping"][i]]
            tags = align_labels(tokens.word_ids(i), offsets, example.spans, labels)
            rows.append((tokens["input_ids"][i], tags, i))
        return rows, [len(row[0]) for row in rows]
    plain = [e for e in examples if isinstance(e, Example)]
    tokenized = tokenizer([e.text for e in plain], **encode)["input_ids"]
    rows = list(zip(tokenized, targets(config.task, plain, labels), strict=True))
    return rows, [len(row[0]) for row in rows]


COLLATES: dict[str, Callable[[Any, int], dict[str, Any]]] = {
    "single_label": collate,
    "multi_label": collate,
    "token_classification": collate_tokens,
    "embedding": collate_pairs,
}


def _cross_entropy(model: Any, batch: dict[str, Any], config: TrainConfig) -> Any:
    from torch.nn import functional  # noqa: PLC0415 - heavy, lazy

    logits = model(batch["input_ids"], batch["attention_mask"]).float()
    return functional.cross_entropy(logits, batch["labels"], label_smoothing=config.label_smoothing)


def _binary_cross_entropy(model: Any, batch: dict[str, Any], config: TrainConfig) -> Any:
    from torch.nn import functional  # noqa: PLC0415 - heavy, lazy

    logits = model(batch["input_ids"], batch["attention_mask"]).float()
    return functional.binary_cross_entropy_with_logits(logits, batch["labels"])


def _token_cross_entropy(model: Any, batch: dict[str, Any], config: TrainConfig) -> Any:
    """Cross-entropy over the tags of first subwords; ``IGNORE`` tokens do not count."""
    from torch.nn import functional  # noqa: PLC0415 - heavy, lazy

    logits = model(batch["input_ids"], batch["attention_mask"]).float()
    return functional.cross_entropy(
        logits.flatten(0, 1), batch["labels"].flatten(), ignore_index=IGNORE
    )


def _in_batch_negatives(model: Any, batch: dict[str, Any], config: TrainConfig) -> Any:
    """Each query against every passage of the batch: its own is the class to pick.

    A passage shared by several pairs of the batch, or a passage of the same group, is
    masked out of the others' rows rather than counted as a negative: it is a right answer
    for them too.
    """
    import torch  # noqa: PLC0415 - heavy, lazy
    from torch.nn import functional  # noqa: PLC0415

    queries = model(batch["input_ids"], batch["attention_mask"]).float()
    passages = model(batch["passage_ids"], batch["passage_mask"]).float()
    scores = SCALE * queries @ passages.T
    ids = batch["labels"]
    same = ids.unsqueeze(1) == ids.unsqueeze(0)
    own = torch.eye(len(ids), dtype=torch.bool, device=scores.device)
    scores = scores.masked_fill(same & ~own, float("-inf"))
    return functional.cross_entropy(scores, torch.arange(len(ids), device=scores.device))


# The per-task loss of a batch (``model``, ``batch``, ``config`` -> a scalar tensor).
LOSSES: dict[str, Callable[[Any, dict[str, Any], TrainConfig], Any]] = {
    "single_label": _cross_entropy,
    "multi_label": _binary_cross_entropy,
    "token_classification": _token_cross_entropy,
    "embedding": _in_batch_negatives,
}


def _validate_classes(run: RunView) -> tuple[EvalReport, Any, Any]:
    import torch  # noqa: PLC0415 - heavy, lazy

    logits, truths = [], []
    for batch in run.val_loader:
        out = run.model(batch["input_ids"], batch["attention_mask"])
        out, labels = run.accelerator.gather_for_metrics((out, batch["labels"]))
        logits.append(out.float().cpu())
        truths.append(labels.cpu())
    scores, targets_ = torch.cat(logits), torch.cat(truths)
    if run.config.task == "multi_label":
        names = run.labels
        hits = (torch.sigmoid(scores) >= run.config.threshold).tolist()
        preds = [[n for n, hit in zip(names, row, strict=True) if hit] for row in hits]
        true = [[n for n, t in zip(names, row, strict=True) if t] for row in targets_.tolist()]
    else:
        preds = [[run.labels[i]] for i in scores.argmax(dim=-1).tolist()]
        true = [[run.labels[i]] for i in targets_.tolist()]
    return classification_report(true, preds, run.labels), scores, targets_


def _validate_tokens(run: RunView) -> tuple[EvalReport, Any, Any]:
    """Span scores of the decoded tags, and the scored tokens' logits and tags."""
    import torch  # noqa: PLC0415 - heavy, lazy

    accelerator, examples = run.accelerator, run.val_examples
    logits_seen, tags_seen = [], []
    tagged: dict[int, tuple[list[int], list[float]]] = {}
    for batch in run.val_loader:
        out = accelerator.pad_across_processes(
            run.model(batch["input_ids"], batch["attention_mask"]).float(), dim=1
        )
        labels = accelerator.pad_across_processes(batch["labels"], dim=1, pad_index=IGNORE)
        out, labels, index = accelerator.gather_for_metrics((out, labels, batch["index"]))
        scored = labels != IGNORE
        logits_seen.append(out[scored].cpu())
        tags_seen.append(labels[scored].cpu())
        best, which = torch.softmax(out, dim=-1).max(dim=-1)
        for row, i in enumerate(index.tolist()):
            tagged[i] = (which[row].tolist(), best[row].tolist())
    texts = [e.text for e in examples if isinstance(e, SpanExample)]
    tokens = run.tokenizer(
        texts, truncation=True, max_length=run.config.max_length, return_offsets_mapping=True
    )
    predicted = []
    for i, text in enumerate(texts):
        offsets = [tuple(pair) for pair in tokens["offset_mapping"][i]]
        words = words_of(tokens.word_ids(i), offsets)
        tag_ids, probabilities = tagged[i]
        tags = [run.labels[tag_ids[w.token]] for w in words]
        predicted.append(decode(text, words, tags, [probabilities[w.token] for w in words]))
    gold = [e.spans for e in examples if isinstance(e, SpanExample)]
    types = [tag[2:] for tag in run.labels if tag.startswith("B-")]
    return span_report(gold, predicted, types), torch.cat(logits_seen), torch.cat(tags_seen)


def _validate_pairs(run: RunView) -> tuple[EvalReport, Any, Any]:
    """Recall@1: each query against every distinct validation passage."""
    import torch  # noqa: PLC0415 - heavy, lazy

    queries: list[Any] = []
    passages: list[Any] = []
    ids: list[Any] = []
    for batch in run.val_loader:
        vectors = run.accelerator.gather_for_metrics(
            (
                run.model(batch["input_ids"], batch["attention_mask"]),
                run.model(batch["passage_ids"], batch["passage_mask"]),
                batch["labels"],
            )
        )
        for seen, new in zip((queries, passages, ids), vectors, strict=True):
            seen.append(new.float().cpu() if new.is_floating_point() else new.cpu())
    truth = torch.cat(ids).tolist()
    first = {passage: row for row, passage in reversed(list(enumerate(truth)))}
    keys = sorted(first)
    matrix = torch.cat(passages)[[first[k] for k in keys]]
    best = (torch.cat(queries) @ matrix.T).argmax(dim=-1).tolist()
    names = passage_names(run.val_examples)
    report = classification_report(
        [[names[t]] for t in truth], [[names[keys[b]]] for b in best], names
    )
    return report, None, None


# The per-task validation: the report, and the logits and targets to calibrate on.
VALIDATORS: dict[str, Callable[[RunView], tuple[EvalReport, Any, Any]]] = {
    "single_label": _validate_classes,
    "multi_label": _validate_classes,
    "token_classification": _validate_tokens,
    "embedding": _validate_pairs,
}


def span_report(
    gold: Sequence[Sequence[Span]], predicted: Sequence[Sequence[Span]], types: Sequence[str]
) -> EvalReport:
    """Span-level scores: a prediction counts only with the exact type, start and end.

    ``accuracy`` is the share of texts whose span set is exactly right, ``micro_f1`` pools
    every span, ``macro_f1`` averages the types, ``per_label`` is per type.
    """
    if len(gold) != len(predicted) or not gold:
        raise ValueError(
            f"span_report needs as many predictions as truths (at least one), got "
            f"{len(predicted)} and {len(gold)}"
        )

    def keys(rows: Sequence[Sequence[Span]]) -> set[tuple[int, str, int, int]]:
        return {(i, s.type, s.start, s.end) for i, spans in enumerate(rows) for s in spans}

    true, pred = keys(gold), keys(predicted)
    per_label = {}
    for kind in types:
        t = {k for k in true if k[1] == kind}
        p = {k for k in pred if k[1] == kind}
        precision, recall, f1 = _f1(len(t & p), len(p - t), len(t - p))
        per_label[kind] = LabelScores(precision=precision, recall=recall, f1=f1, support=len(t))
    exact = sum(
        {(s.type, s.start, s.end) for s in g} == {(s.type, s.start, s.end) for s in p}
        for g, p in zip(gold, predicted, strict=True)
    )
    return EvalReport(
        examples=len(gold),
        accuracy=exact / len(gold),
        macro_f1=sum(s.f1 for s in per_label.values()) / max(len(per_label), 1),
        micro_f1=_f1(len(true & pred), len(pred - true), len(true - pred))[2],
        per_label=per_label,
    )
