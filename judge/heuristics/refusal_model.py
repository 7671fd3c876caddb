"""The trained refusal classifier's weights and inference (numpy only, no pickle).

A multinomial logistic regression over the features of ``refusal_features``, whose logits were
temperature-scaled on out-of-fold predictions, so its probabilities are calibrated. The weights
file (``refusal_model.npz``) holds the n-gram vocabulary, the dense feature names, the weights and
two thresholds chosen on development data; it is read once. It is written by
``scripts/train_refusal_model.py``, which is not part of the installed package.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

from judge.heuristics.refusal_features import DENSE_FEATURES, features
from judge.heuristics.refusal_rules import LABELS

MODEL_FILE = Path(__file__).with_name("refusal_model.npz")


@dataclass(frozen=True)
class Weights:
    """The shipped model: n-gram vocabulary, weights per n-gram and per dense feature, biases,
    and the two thresholds chosen on out-of-fold predictions of the development data."""

    vocabulary: dict[str, int]
    ngram_weights: npt.NDArray[np.float64]  # (vocabulary, labels)
    dense_weights: npt.NDArray[np.float64]  # (dense features, labels)
    intercept: npt.NDArray[np.float64]  # (labels,)
    partial_threshold: float = 1.0
    """``partial_refusal`` is the label whenever its probability reaches this (the rare class)."""
    confident_at: float = 1.0
    """A label this probable is confident: a cascade keeps it rather than ask an LLM judge."""

    def save(self, path: Path) -> None:
        """Write the weights file (no pickle: strings and numbers only)."""
        terms = sorted(self.vocabulary, key=self.vocabulary.__getitem__)
        np.savez_compressed(
            path,
            vocabulary=np.array(terms, dtype=str),
            ngram_weights=self.ngram_weights.astype(np.float32),
            dense_names=np.array(DENSE_FEATURES, dtype=str),
            dense_weights=self.dense_weights.astype(np.float32),
            intercept=self.intercept.astype(np.float32),
            labels=np.array(LABELS, dtype=str),
            partial_threshold=np.float64(self.partial_threshold),
            confident_at=np.float64(self.confident_at),
        )

    @classmethod
    def load(cls, path: Path) -> Weights:
        """Read a weights file written by ``save`` for these features and labels."""
        with np.load(path, allow_pickle=False) as stored:
            if tuple(stored["dense_names"]) != DENSE_FEATURES or tuple(stored["labels"]) != LABELS:
                raise ValueError(f"{path} was trained for other features or labels: retrain it")
            return cls(
                vocabulary={term: i for i, term in enumerate(stored["vocabulary"].tolist())},
                ngram_weights=stored["ngram_weights"].astype(np.float64),
                dense_weights=stored["dense_weights"].astype(np.float64),
                intercept=stored["intercept"].astype(np.float64),
                partial_threshold=float(stored["partial_threshold"]),
                confident_at=float(stored["confident_at"]),
            )

    def logits(self, prompt: str, reply: str) -> npt.NDArray[np.float64]:
        """The (temperature-scaled) logits, in the order of ``LABELS``."""
        ngrams, dense = features(prompt, reply)
        found = [
            (row, value)
            for row, value in zip(map(self.vocabulary.get, ngrams), ngrams.values(), strict=True)
            if row is not None
        ]
        scores = self.intercept + np.asarray(dense) @ self.dense_weights
        if found:
            rows, values = zip(*found, strict=True)
            scores = scores + np.asarray(values) @ self.ngram_weights[list(rows)]
        return scores


@cache
def shipped() -> Weights:
    """The shipped weights, read once."""
    return Weights.load(MODEL_FILE)


def probabilities(prompt: str, reply: str, weights: Weights | None = None) -> list[float]:
    """The calibrated probability of each label of ``LABELS``."""
    scores = (weights or shipped()).logits(prompt, reply)
    exp = np.exp(scores - scores.max())
    return [float(p) for p in exp / exp.sum()]
