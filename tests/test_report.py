"""The report: order, chance marking and tables from hand-made inputs."""

from pathlib import Path

import pandas as pd

from kisbench.report import markdown as report


def entry(mrr, low, high, images=100):
    metrics = {m: {"value": 0.5, "low": 0.4, "high": 0.6} for m in report.COLUMNS}
    metrics["mrr"] = {"value": mrr, "low": low, "high": high}
    return {"queries": 20, "images": images, "truncated_queries": 2, **metrics}


def test_report_orders_models_marks_chance_and_links_figures(tmp_path):
    # chance MRR for 100 images = H_100 / 100 = 0.0519
    details = {
        "toy": {
            "short": {
                "weak": entry(0.06, 0.03, 0.09),  # interval reaches chance
                "strong": entry(0.40, 0.30, 0.50),
            }
        }
    }
    pairs = pd.DataFrame(
        [
            {
                "collection": "toy",
                "labelset": "short",
                "model_a": "strong",
                "model_b": "weak",
                "queries": 20,
                "metric": "mrr",
                "value_a": 0.4,
                "value_b": 0.06,
                "diff": 0.34,
                "diff_low": 0.2,
                "diff_high": 0.45,
                "p_bootstrap": 0.0004,
                "q_bootstrap": 0.0004,
                "a_better": 15,
                "b_better": 3,
                "same_rank": 2,
                "p_wilcoxon": 0.01,
                "q_wilcoxon": 0.01,
                "oracle": 0.42,
            }
        ]
    )
    fusion = pd.DataFrame(
        [
            ("toy", "short", "strong", "single", 0.40, 0.3, 0.5),
            ("toy", "short", "weak", "single", 0.06, 0.03, 0.09),
            ("toy", "short", "strong+weak", "oracle", 0.42, 0.3, 0.5),
            ("toy", "short", "strong+weak", "rrf", 0.35, 0.25, 0.45),
        ],
        columns=["collection", "labelset", "members", "method", "mrr", "mrr_low", "mrr_high"],
    )
    figure = tmp_path / "plots" / "figures" / "pairs" / "toy-short.png"
    inputs = report.Inputs(
        details=details,
        pairs=pairs,
        gains=pd.DataFrame(columns=["collection"]),
        fusion=fusion,
        figures={"pairs/toy-short.png": figure},
    )
    text = report.build(inputs, tmp_path / "reports")
    assert "random ranking of 100 images): MRR 0.0519, R@1 0.01, R@5 0.05" in text
    assert text.index("| 1 | strong |") < text.index("| 2 | weak (chance level) |")
    assert "| strong | weak | 0.400 | 0.060 | 0.340 [0.200, 0.450] | < 0.001 |" in text
    assert "| strong + weak | 0.400 | 0.420 | 0.350 [0.250, 0.450] |" in text
    assert "](../plots/figures/pairs/toy-short.png)" in text
    written = report.write(inputs, tmp_path / "reports" / "report.md")
    assert written.read_text() == text
    assert not list(Path(tmp_path / "reports").glob(".*.tmp"))
