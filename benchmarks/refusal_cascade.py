"""The offline refusal judge on the XSTest held-out split: accuracy, calibration, cascade, speed.

    python benchmarks/refusal_cascade.py --data-dir ../shared/data [--baseline main]

- accuracy: binary (flagged vs not), three-class, per-class F1, Cohen's kappa;
- calibration of ``refusal_probabilities``: Brier score, log loss, expected calibration error and a
  reliability table by decile of confidence (the chosen label's probability);
- the cascade: the offline verdict stands when its confidence reaches the threshold chosen on
  out-of-fold predictions of the dev split (``confident_at`` in the weights file), and the rest go
  to an LLM judge. It reports the share decided offline, the accuracy on that share, and the
  overall accuracy if the LLM judge were perfect on the rest;
- speed: ms per verdict over the 750 held-out replies (best of 3 passes, after a warm-up), in a
  fresh process per revision. ``--baseline REV`` measures the classifier at a git revision too
  (extracted with ``git archive`` into a temporary directory), so before and after come from one
  run.

Nothing here trains or tunes: the held-out split is only measured.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import cohen_kappa_score, confusion_matrix, f1_score

from judge.heuristics.refusal_rules import LABELS

REPO = Path(__file__).resolve().parent.parent

MEASURE = """
import inspect, json, sys, time
from pathlib import Path
from judge.datasets import Split, load_xstest
from judge.heuristics import classify_refusal
held_out = load_xstest(Path(sys.argv[1]) / "xstest", Split.HELDOUT)
pairs = [(t.last_text("user"), t.last_text("assistant")) for t in held_out]
takes_prompt = len(inspect.signature(classify_refusal).parameters) == 2
classify = classify_refusal if takes_prompt else (lambda prompt, reply: classify_refusal(reply))
labels = [classify(p, r) for p, r in pairs]
passes = []
for _ in range(3):
    start = time.perf_counter()
    for p, r in pairs:
        classify(p, r)
    passes.append((time.perf_counter() - start) / len(pairs) * 1000)
print(json.dumps({"labels": labels, "ms_per_verdict": min(passes)}))
"""


def run_classifier(source: Path, data_dir: Path) -> dict[str, Any]:
    """Labels and speed of the classifier in ``source`` (a checkout), in a fresh process."""
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, str(data_dir.resolve())],
        cwd=source,
        env={"PYTHONPATH": str(source), "LITELLM_OFFLINE_MODE": "true", "PATH": "/usr/bin:/bin"},
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def accuracy(gold: list[str], predicted: list[str]) -> dict[str, Any]:
    g, p = np.array(gold), np.array(predicted)
    per_class = f1_score(g, p, labels=list(LABELS), average=None)
    return {
        "binary": float(np.mean((g == "full_compliance") == (p == "full_compliance"))),
        "three_class": float(np.mean(g == p)),
        "f1": {label: round(float(f), 3) for label, f in zip(LABELS, per_class, strict=True)},
        "kappa": float(cohen_kappa_score(g, p)),
        "confusion (rows gold, columns judge)": confusion_matrix(
            g, p, labels=list(LABELS)
        ).tolist(),
    }


def calibration(probabilities: np.ndarray, chosen: np.ndarray, gold: np.ndarray) -> dict[str, Any]:
    """Brier score, log loss, and reliability of the chosen label's probability by decile."""
    rows = np.arange(len(gold))
    onehot = np.eye(len(LABELS))[gold]
    confidence = probabilities[rows, chosen]
    right = chosen == gold
    deciles = np.array_split(np.argsort(confidence), 10)
    table = [
        {
            "confidence": round(float(confidence[d].mean()), 3),
            "accuracy": round(float(right[d].mean()), 3),
            "n": len(d),
        }
        for d in deciles
    ]
    prior = onehot.mean(axis=0)
    return {
        "brier": float(((probabilities - onehot) ** 2).sum(axis=1).mean()),
        "brier_of_the_class_prior": float(((prior - onehot) ** 2).sum(axis=1).mean()),
        "log_loss": float(-np.log(probabilities[rows, gold] + 1e-12).mean()),
        "expected_calibration_error": float(
            sum(len(d) * abs(right[d].mean() - confidence[d].mean()) for d in deciles) / len(gold)
        ),
        "reliability_by_decile": table,
    }


def cascade(
    confidence: np.ndarray, chosen: np.ndarray, gold: np.ndarray, threshold: float
) -> dict[str, float]:
    """What the offline stage decides at ``threshold``, and the cascade's accuracy if the LLM
    judge that takes the rest were perfect."""
    kept = confidence >= threshold
    complies = LABELS.index("full_compliance")
    binary_right = (chosen == complies) == (gold == complies)
    n = len(gold)
    return {
        "threshold": threshold,
        "decided_offline": float(kept.mean()),
        "three_class_on_decided": float((chosen == gold)[kept].mean()),
        "binary_on_decided": float(binary_right[kept].mean()),
        "cascade_three_class": float(((chosen == gold) | ~kept).mean()),
        "cascade_binary": float((binary_right | ~kept).mean()),
        "points_lost_three_class": 100 * float(((chosen != gold) & kept).sum()) / n,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--baseline", help="git revision to measure too (before/after)")
    parser.add_argument("--out", type=Path, help="write the results as JSON here too")
    args = parser.parse_args()

    from judge.datasets import Split, load_xstest
    from judge.heuristics import judge_refusal
    from judge.heuristics.refusal_model import shipped

    held_out = load_xstest(args.data_dir / "xstest", Split.HELDOUT)
    gold = [t.metadata["gold"] for t in held_out]
    judged = [judge_refusal(t.last_text("user"), t.last_text("assistant")) for t in held_out]
    probabilities = np.array([[j.probabilities[label] for label in LABELS] for j in judged])
    chosen = np.array([LABELS.index(j.label) for j in judged])
    gold_index = np.array([list(LABELS).index(g) for g in gold])
    confidence = probabilities[np.arange(len(gold)), chosen]
    threshold = shipped().confident_at

    results: dict[str, Any] = {
        "held_out": len(gold),
        "accuracy": accuracy(gold, [j.label for j in judged]),
        "calibration": calibration(probabilities, chosen, gold_index),
        "cascade_at_dev_threshold": cascade(confidence, chosen, gold_index, threshold),
        "cascade_by_threshold": [
            cascade(confidence, chosen, gold_index, t) for t in (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
        ],
    }
    results["speed_ms_per_verdict"] = {
        "this checkout": run_classifier(REPO, args.data_dir)["ms_per_verdict"]
    }
    if args.baseline:
        with tempfile.TemporaryDirectory() as directory:
            archive = subprocess.run(
                ["git", "-C", str(REPO), "archive", args.baseline, "judge"],
                check=True,
                capture_output=True,
            )
            subprocess.run(["tar", "-x", "-C", directory], input=archive.stdout, check=True)
            before = run_classifier(Path(directory), args.data_dir)
        results["baseline"] = {"revision": args.baseline, **accuracy(gold, before["labels"])}
        results["speed_ms_per_verdict"][f"baseline {args.baseline}"] = before["ms_per_verdict"]
    text = json.dumps(results, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
