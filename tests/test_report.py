"""The report: order, chance marking and tables from hand-made inputs."""

from pathlib import Path

import pandas as pd

from kisbench.report import markdown as report


def entry(mrr, low, high, images=100):
    metrics = {m: {"value": 0.5, "low": 0.4, "high": 0.6} for m in report.COLUMNS}
    metrics["mrr"] = {"value": mrr, "low": low, "high": high}
    return {"queries": 20, "images": images, "truncated_queries": 2, **metrics}


def board():
    """A leaderboard as metrics/leaderboard.json holds it (numbers made up)."""
    return {
        "queries": 20,
        "images": 100,
        "metric": "mrr",
        "best": "strong",
        "detectable_difference": 0.35,
        "queries_to_halve_interval": 80,
        "models": {
            "strong": {
                "rank": 1,
                "rank_low": 1,
                "rank_high": 1,
                "mrr": 0.4,
                "tied_with_first": True,
            },
            "weak": {
                "rank": 2,
                "rank_low": 1,
                "rank_high": 2,
                "mrr": 0.06,
                "gap_to_first": 0.34,
                "p_vs_first": 0.2,
                "q_vs_first": 0.3,
                "tied_with_first": True,
                "detectable_gap": 0.35,
                "queries_to_detect_gap": 106,
            },
        },
    }


def test_the_exact_chance_test_decides_the_chance_marks():
    def with_test(mrr, low, high, better, worse):
        e = entry(mrr, low, high)
        return {**e, "vs_chance": {"metric": "mrr", "p_better": better, "p_worse": worse}}

    details = {
        "toy": {
            "short": {
                # its interval lies below chance (0.0519), the exact test says: random
                "m": with_test(0.04, 0.03, 0.05, 0.9, 0.1),
                "w": with_test(0.01, 0.005, 0.02, 1.0, 0.001),
                "s": with_test(0.3, 0.2, 0.4, 0.0001, 1.0),
                # one-sided 5 % each way, the MRR interval's raise condition
                "b": with_test(0.02, 0.01, 0.03, 0.97, 0.04),
                "g": with_test(0.08, 0.04, 0.12, 0.04, 0.97),
                "e": with_test(0.05, 0.03, 0.07, 0.5, 0.05),
            }
        }
    }
    empty = pd.DataFrame(columns=["collection", "labelset"])
    inputs = report.Inputs(details=details, pairs=empty, gains=empty, fusion=pd.DataFrame())
    text = report.build(inputs, Path("."))
    assert "| m (chance level) |" in text
    assert "| w (below chance) |" in text
    assert "| s |" in text
    assert "| b (below chance) |" in text and "| g |" in text and "| e (below chance) |" in text


def test_a_model_wholly_below_chance_is_called_so():
    details = {"toy": {"short": {"m": entry(0.01, 0.005, 0.02), "n": entry(0.3, 0.2, 0.4)}}}
    empty = pd.DataFrame(columns=["collection", "labelset"])
    inputs = report.Inputs(details=details, pairs=empty, gains=empty, fusion=pd.DataFrame())
    text = report.build(inputs, Path("."))
    assert "| m (below chance) |" in text and "| n |" in text


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
                "p_paired": 0.0004,
                "q_paired": 0.0004,
                "a_better": 15,
                "b_better": 3,
                "same_rank": 2,
                "p_wilcoxon": 0.01,
                "q_wilcoxon": 0.01,
                "rank_biserial": -0.3,
                "directions_disagree": 1,
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
            ("toy", "short", "strong+weak", "zscore", 0.45, 0.35, 0.55),
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
        leaderboard={"toy": {"short": board()}},
    )
    text = report.build(inputs, tmp_path / "reports")
    assert "random ranking of 100 images): MRR 0.0519, R@1 0.01, R@5 0.05" in text
    assert text.index("| 1 | strong |") < text.index("| 2 | weak (chance level) |")
    assert "| strong | weak | 0.400 | 0.060 | 0.340 [0.200, 0.450] | < 0.001 |" in text
    assert (
        "| strong + weak | 0.400 | 0.420 | 0.350 [0.250, 0.450] | "
        "0.450 [0.350, 0.550] (beats the per-query best) |" in text
    )
    assert "Fusion beats the per-query best of its models in 1 of the 2 results" in text
    assert "upper bound" not in text and "per-query best of A, B: MRR" in text
    # the rank test points the other way: the row says so
    assert "| 0.010 | 0.010 | -0.30 (disagrees) | 0.420 |" in text
    # the leaderboard
    assert "| 1 | 1-1 | strong | 0.400 |  |  | yes |  |  |" in text
    assert "| 2 | 1-2 | weak | 0.060 | 0.340 | 0.300 | yes | 0.350 | 106 |" in text
    assert "a difference in MRR between #1 and #2 below 0.350 is detected with less" in text
    assert "Halving the intervals takes about 80 queries" in text
    assert "](../plots/figures/pairs/toy-short.png)" in text
    written = report.write(inputs, tmp_path / "reports" / "report.md")
    assert written.read_text() == text
    assert not list(Path(tmp_path / "reports").glob(".*.tmp"))
