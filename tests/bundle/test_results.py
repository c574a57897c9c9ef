"""What an evaluate or inference run leaves its user: the evaluate log line and the prediction CSV's header."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from monai_srb.bundle.results import label_prediction_columns, log_evaluation


def test_label_prediction_columns_names_each_probability(tmp_path: Path):
    path = tmp_path / "predictions.csv"
    path.write_text("/a.png,0.1234567,0.5\n/b.png,1e-08,0.9999999\n")
    label_prediction_columns(path, ["Atelectasis", "Effusion"])
    with open(path) as f:
        rows = list(csv.reader(f))
    assert rows == [
        ["image", "Atelectasis", "Effusion"],
        ["/a.png", "0.123457", "0.500000"],
        ["/b.png", "0.000000", "1.000000"],
    ]


def test_log_evaluation_says_what_was_scored_with_what(caplog):
    with caplog.at_level(logging.INFO, logger="monai_srb.bundle.results"):
        log_evaluation(3, "val", "/data/x", "/out/models/model.pt", "/out/eval", what="volumes")
    assert (
        "evaluate: scored 3 volumes (evaluate_split 'val' of /data/x) with /out/models/model.pt; scores in /out/eval"
        in caplog.text
    )
