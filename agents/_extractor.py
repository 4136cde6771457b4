"""The perception entity/slot extractor: BIO token classification to character spans.

The model (a ``TokenClassifier`` artifact, task ``token_classification``, its labels the BIO
tags of ``agents._bio.bio_tags``) tags every token; a word takes the tag of its first
subword, ``B-``/``I-`` runs of words merge into entities, and the tokenizer's offset mapping
turns them into character spans on the original text, widened to whole words (see
``agents._bio``). So ``entity.text == input.text[entity.start:entity.end]`` always holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel, Field

from agents._artifact import load_token_classifier, read_artifact
from agents._bio import Span, Word, decode, words_of
from agents._contract import Role, RunContext
from agents._errors import ModelArtifactError
from agents._model import LoadedModel, ModelAgent, length_sorted_batches, pad_batch

__all__ = ["Entity", "EntityExtractor", "ExtractorInput", "ExtractorOutput"]


class ExtractorInput(BaseModel):
    """The text to extract entities from."""

    text: str


class Entity(BaseModel):
    """One extracted entity.

    Attributes:
        type: The entity (slot) type, e.g. ``amount_of_money``.
        text: The covered text, ``input.text[start:end]``.
        start: Its first character (index into the input text).
        end: One past its last character.
        confidence: The mean calibrated probability of its words' tags.
    """

    type: str
    text: str
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    confidence: float = Field(ge=0.0, le=1.0)


class ExtractorOutput(BaseModel):
    """The entities of one text, in text order, non-overlapping.

    Attributes:
        entities: The entities found (possibly none).
        truncated: The text was longer than ``max_length`` tokens; only its head was read.
        model_sha256: The checksum of the weights that answered (the model version).
        prediction_id: The id of the knowledge base's ``Prediction`` row recording this
            answer (filled by ``ModelAgent`` when the run has a knowledge base), else None.
    """

    entities: list[Entity]
    truncated: bool = False
    model_sha256: str
    prediction_id: int | None = None


@dataclass(frozen=True)
class _Row:
    """One tokenized text: ids (unpadded), its words, and whether it was cut."""

    ids: list[int]
    words: list[Word]
    truncated: bool


class EntityExtractor(ModelAgent[ExtractorInput, ExtractorOutput]):
    """A transformer encoder with a per-token linear head over BIO tags.

    Needs a fast (Rust) tokenizer: only those give the offset mapping that ties tokens to
    characters. Large batches are split into batches of similar token length, each padded
    only to its longest text.

    Args:
        model_dir: The artifact directory (written by ``save_artifact`` from a
            ``TokenClassifier`` with ``task="token_classification"``).
        sha256: The checksum the artifact must have (the model version's).
        max_length: Longest input in tokens; None takes the artifact's (default 128).
        batch_size: Most texts per forward pass.
        device: The torch device to run on.
    """

    name = "entity_extractor"
    role = Role.PERCEPTION

    def _load(self, model_dir: str | None, sha256: str | None) -> LoadedModel:
        if model_dir is None:
            raise ModelArtifactError(
                "",
                "EntityExtractor has no model_dir: pass the directory of a "
                "token_classification artifact written by agents.save_artifact.",
            )
        meta, weights = read_artifact(model_dir, sha256)
        model, tokenizer = load_token_classifier(model_dir, meta, weights)
        if not getattr(tokenizer, "is_fast", False):
            raise ModelArtifactError(
                model_dir,
                f"The tokenizer of '{model_dir}' is not a fast tokenizer, so it has no offset "
                "mapping to turn tokens into character spans. Save the artifact with a fast "
                "tokenizer (AutoTokenizer's default when tokenizer.json exists).",
            )
        return LoadedModel(model.to(self.device), tokenizer, meta, str(model_dir))

    def _predict(
        self,
        loaded: LoadedModel,
        inputs: Sequence[ExtractorInput],
        ctxs: Sequence[RunContext],
    ) -> list[ExtractorOutput]:
        texts = [item.text for item in inputs]
        rows = self._tokenize(loaded, texts)
        tagged = self._tag(loaded, rows)
        outputs = []
        for text, row, (tags, scores), ctx in zip(texts, rows, tagged, ctxs, strict=True):
            if row.truncated:
                ctx.logger.warning(
                    "Input text exceeds %d tokens; entities found in its head only.",
                    self._max_length(loaded),
                )
            spans = decode(text, row.words, tags, scores)
            outputs.append(
                ExtractorOutput(
                    entities=[_entity(text, span) for span in spans],
                    truncated=row.truncated,
                    model_sha256=loaded.sha256,
                )
            )
        return outputs

    def _tokenize(self, loaded: LoadedModel, texts: Sequence[str]) -> list[_Row]:
        """Tokenize with offsets, truncating to ``max_length`` and noting who was cut."""
        limit = self._max_length(loaded)
        with loaded.tokenizer_lock:  # the tokenizer keeps truncation settings on itself
            # One token more than allowed tells which texts were cut (as ModelAgent._encode).
            probe = self._offsets(loaded, texts, limit + 1)
            long_rows = [i for i, row in enumerate(probe) if len(row.ids) > limit]
            if long_rows:
                again = self._offsets(loaded, [texts[i] for i in long_rows], limit)
                for i, row in zip(long_rows, again, strict=True):
                    probe[i] = _Row(row.ids, row.words, truncated=True)
        return probe

    @staticmethod
    def _offsets(loaded: LoadedModel, texts: Sequence[str], limit: int) -> list[_Row]:
        encoding = loaded.tokenizer(
            list(texts), truncation=True, max_length=limit, return_offsets_mapping=True
        )
        return [
            _Row(
                list(ids),
                words_of(encoding.word_ids(i), [tuple(pair) for pair in offsets]),
                truncated=False,
            )
            for i, (ids, offsets) in enumerate(
                zip(encoding["input_ids"], encoding["offset_mapping"], strict=True)
            )
        ]

    def _tag(self, loaded: LoadedModel, rows: list[_Row]) -> list[tuple[list[str], list[float]]]:
        """Each row's per-word tags and their calibrated probabilities."""
        import torch  # noqa: PLC0415 - heavy, lazy

        labels = loaded.meta.labels
        pad_id = loaded.tokenizer.pad_token_id or 0
        tagged: list[tuple[list[str], list[float]]] = [([], []) for _ in rows]
        with torch.inference_mode():
            for batch in length_sorted_batches([len(row.ids) for row in rows], self.batch_size):
                input_ids, mask = pad_batch([rows[i].ids for i in batch], pad_id, self.device)
                logits = loaded.model(input_ids, mask).float() / loaded.meta.temperature
                best, which = torch.softmax(logits, dim=-1).max(dim=-1)
                best_rows, which_rows = best.cpu().tolist(), which.cpu().tolist()
                for position, i in enumerate(batch):
                    firsts = [word.token for word in rows[i].words]
                    tags = [labels[which_rows[position][t]] for t in firsts]
                    tagged[i] = (tags, [best_rows[position][t] for t in firsts])
        return tagged


def _entity(text: str, span: Span) -> Entity:
    return Entity(
        type=span.type,
        text=text[span.start : span.end],
        start=span.start,
        end=span.end,
        confidence=span.confidence,
    )
