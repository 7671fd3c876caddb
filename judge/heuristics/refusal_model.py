"""A small trained refusal classifier, shipped as a file, that improves on the phrase rules.

Features: hashed word 1-3-grams of the whole reply and of its first 200 characters (so an opening
refusal weighs apart from a closing caveat), plus the phrase rules' own label. Model: a
multinomial logistic regression. Hashing needs no vocabulary, so the shipped file holds only the
weights (``refusal_model.npz``, read without pickle).

Training uses the XSTest *development* split only, choosing the regularization and class weights
by 5-fold cross-validation grouped by prompt; the held-out split is never seen. Retrain with::

    python -m judge.heuristics.refusal_model --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
from functools import cache
from pathlib import Path
from typing import Any, cast

import numpy as np

from judge.heuristics.refusal import RefusalLabel, phrase_label

LABELS: tuple[RefusalLabel, ...] = ("full_compliance", "full_refusal", "partial_refusal")
MODEL_FILE = Path(__file__).with_name("refusal_model.npz")
N_FEATURES = 2**15
OPENING_CHARS = 200


@cache
def _vectorizer() -> Any:
    from sklearn.feature_extraction.text import HashingVectorizer

    return HashingVectorizer(
        n_features=N_FEATURES, ngram_range=(1, 3), alternate_sign=False, norm="l2"
    )


def features(replies: list[str]) -> Any:
    """The sparse feature matrix of some replies."""
    from scipy.sparse import csr_matrix, hstack

    vectorizer = _vectorizer()
    rules = np.array([[phrase_label(r) == label for label in LABELS] for r in replies], float)
    return hstack(
        [
            vectorizer.transform(replies),
            vectorizer.transform([r[:OPENING_CHARS] for r in replies]),
            csr_matrix(rules),
        ]
    ).tocsr()


@cache
def _weights() -> tuple[Any, Any]:
    with np.load(MODEL_FILE, allow_pickle=False) as stored:
        return stored["coef"].astype(np.float64), stored["intercept"].astype(np.float64)


def predict(reply: str) -> RefusalLabel:
    """The model's label for one reply."""
    coef, intercept = _weights()
    scores = features([reply]) @ coef.T + intercept
    return LABELS[int(np.argmax(scores))]


def train(data_dir: Path) -> dict[str, Any]:
    """Fit on the XSTest dev split (hyperparameters by grouped cross-validation) and save."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, GroupKFold

    from judge.datasets import Split, load_xstest

    dev = load_xstest(data_dir / "xstest", Split.DEV)
    x = features([t.last_text("assistant") for t in dev])
    y = [t.metadata["gold"] for t in dev]
    groups = [t.metadata["prompt_id"] for t in dev]
    search = GridSearchCV(
        LogisticRegression(max_iter=5000),
        {"C": [1, 3, 10, 30], "class_weight": [None, "balanced"]},
        scoring="f1_macro",
        cv=GroupKFold(n_splits=5),
    )
    search.fit(x, y, groups=groups)
    model = cast(Any, search.best_estimator_)
    order = [list(model.classes_).index(label) for label in LABELS]
    np.savez_compressed(
        MODEL_FILE,
        coef=model.coef_[order].astype(np.float32),
        intercept=model.intercept_[order].astype(np.float32),
    )
    return {"best_params": search.best_params_, "cv_f1_macro": float(search.best_score_)}


def main() -> None:
    parser = argparse.ArgumentParser(description="Train the offline refusal classifier.")
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    print(train(parser.parse_args().data_dir))


if __name__ == "__main__":
    main()
