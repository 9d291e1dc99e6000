"""Figures: the right panels and lines, inspected as matplotlib objects (not pixels)."""

import json
from itertools import combinations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import yaml
from matplotlib.collections import PathCollection
from matplotlib.colors import to_hex, to_rgb
from matplotlib.patches import Rectangle
from PIL import Image

from kisbench.config import parse
from kisbench.evaluation.layout import CURVES, RANKS_INFO, curve_name, ranks_dir
from kisbench.report import figures
from kisbench.report.figures import (
    BEST_OF_TWO,
    CHANCE,
    COLORS,
    SAME_RANK,
    cumulative_grid,
    model_styles,
    pairwise_grid,
)
from kisbench.report.qualitative import Example, disagreements, examples_figure
from kisbench.report.render import Settings
from stages import evaluate, fusion, rank, render
from tests import test_evaluation_stages as stage_tests


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def linear_rgb(color) -> np.ndarray:
    """sRGB in 0..1 to linear light, as WCAG 2.1 and IEC 61966-2-1 define it."""
    c = np.asarray(to_rgb(color), dtype=float)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def contrast_on_white(color) -> float:
    """WCAG 2.1 contrast ratio (L_white + 0.05) / (L + 0.05), relative luminance L."""
    luminance = float(linear_rgb(color) @ [0.2126, 0.7152, 0.0722])
    return 1.05 / (luminance + 0.05)


# Machado, Oliveira and Fernandes 2009, severity 1.0 (full dichromacy), on linear RGB.
DICHROMACY = {
    "protan": [[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216],
               [-0.003882, -0.048116, 1.051998]],
    "deutan": [[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413],
               [-0.011820, 0.042940, 0.968881]],
    "tritan": [[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602],
               [0.004733, 0.691367, 0.303900]],
}  # fmt: skip


def lab(linear: np.ndarray) -> np.ndarray:
    """CIELAB (D65) of a linear-light sRGB colour."""
    rgb_to_xyz = [[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]
    xyz = np.asarray(rgb_to_xyz) @ np.clip(linear, 0, 1) / [0.95047, 1.0, 1.08883]
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def seen(color, vision: str) -> np.ndarray:
    linear = linear_rgb(color)
    return lab(linear if vision == "normal" else np.asarray(DICHROMACY[vision]) @ linear)


def test_twenty_models_get_distinct_styles_in_params_order():
    every = [f"m{i}" for i in range(20)]
    styles = model_styles(every)
    assert len({(s.color, s.dashes) for s in styles.values()}) == 20
    # the rule is the position: model i's colour is COLORS[i mod 7], its style changes
    # after every 7
    assert [styles[f"m{i}"].color for i in (0, 7, 14)] == [COLORS[0]] * 3
    assert [styles[f"m{i}"].dashes for i in (0, 7, 14)] == ["solid", "dashed", "dash-dot"]
    assert len({s.dashes for s in model_styles([f"m{i}" for i in range(28)]).values()}) == 4
    assert (
        len({(s.color, s.dashes) for s in model_styles([f"m{i}" for i in range(28)]).values()})
        == 28
    )


def test_model_colours_are_dark_enough_and_never_a_non_model_colour():
    for color in {s.color for s in model_styles([f"m{i}" for i in range(20)]).values()}:
        assert contrast_on_white(color) >= 3.0, color  # WCAG 2.1 non-text contrast
        # black and greys are the per-query best's, the fusions' and chance's
        assert np.ptp(to_rgb(color)) > 0.2, color
        # as a thin line, a colour darker than L* 30 reads as black (Tol's indigo, L* 22, did)
        assert seen(color, "normal")[0] >= 30, color


def test_model_colours_stay_apart_for_colour_blind_readers():
    """Every two colours of one line style differ by a CIE76 colour difference of at least
    12 under simulated full protan, deutan and tritan vision (2.3 is a just noticeable
    difference), and by at least 25 in normal vision."""
    for vision, least in (("normal", 25), ("protan", 12), ("deutan", 12), ("tritan", 12)):
        for a, b in combinations(COLORS, 2):
            distance = np.linalg.norm(seen(a, vision) - seen(b, vision))
            assert distance >= least, (vision, a, b, round(distance, 1))


def test_reference_contrast_and_simulation():
    """The test's own references, by hand: black on white is 21:1; the simulations keep
    greys grey (rows of each matrix sum to 1)."""
    assert contrast_on_white("black") == pytest.approx(21.0)
    assert contrast_on_white("white") == pytest.approx(1.0)
    for vision in DICHROMACY:
        assert seen("0.5", vision) == pytest.approx(seen("0.5", "normal"), abs=0.05)


def test_colours_do_not_change_with_the_experiments_models():
    models = {m: {"family": "open_clip", "model": "x"} for m in ("a", "b", "c", "d")}
    base = {"models": models, "collections": {"c": {}}}
    small = Settings.from_params(parse({**base, "run": {"models": ["c"], "collections": ["c"]}}))
    big = Settings.from_params(
        parse({**base, "run": {"models": ["d", "c", "a"], "collections": ["c"]}})
    )
    assert model_styles(small.palette)["c"] == model_styles(big.palette)["c"]
    assert model_styles(big.palette)["c"] == model_styles(["a", "b", "c", "d"])["c"]
    # and so in the figures: c's line in both experiments' cumulative grids
    lines = []
    for settings in (small, big):
        table = curve_table(settings.models, 30)
        fig = cumulative_grid(
            {("c", "short"): table}, {}, model_styles(settings.palette), {("c", "short"): 30}
        )
        line = {ln.get_label(): ln for ln in fig.axes[0].get_lines()}["c"]
        lines.append((to_hex(line.get_color()), line.get_linestyle()))
    assert lines[0] == lines[1] == (COLORS[2], "-")


def curve_table(models, n):
    k = np.arange(1, n + 1)
    return pd.DataFrame(
        {"k": k, **{m: k / n * (i + 1) / len(models) for i, m in enumerate(models)}}
    )


def test_cumulative_grid_panels_order_cut_styles_and_chance():
    models = ["a", "b"]
    curves = {
        ("demo", "short"): curve_table(models, 255),
        ("demo", "long"): curve_table(models, 255),
        ("mvk", "short"): curve_table(models, 1000),
        ("mvk", "long"): curve_table(models, 1000),
    }
    n_images = {graph: len(table) for graph, table in curves.items()}
    styles = model_styles([f"x{i}" for i in range(8)] + ["a", "b"])  # params order
    fig = cumulative_grid(curves, {"demo": 50, "mvk": 500}, styles, n_images)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == [
        "demo (255 images): short labels",
        "demo (255 images): long labels",
        "mvk (1000 images): short labels",
        "mvk (1000 images): long labels",
    ]
    for ax, limit, n in zip(fig.axes, [50, 50, 500, 500], [255, 255, 1000, 1000], strict=True):
        assert ax.get_xlim() == (1, limit)
        lines = {line.get_label(): line for line in ax.get_lines()}
        assert set(lines) == {"a", "b", CHANCE}
        # b is the 10th model of params: the 3rd colour, dashed (second round of colours)
        assert to_hex(lines["b"].get_color()) == COLORS[2] == styles["b"].color
        assert lines["b"].get_linestyle() == "--"
        assert max(lines["a"].get_xdata()) == limit  # cut at xmax, not drawn beyond
        # a random ranking of n images finds the target within the top k with p = k / n
        chance = lines[CHANCE]
        assert chance.get_ydata()[[0, 9, limit - 1]].tolist() == pytest.approx(
            [1 / n, 10 / n, limit / n]
        )
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["a", "b", CHANCE]


@pytest.mark.parametrize("labelsets", [["short"], ["short", "long"]])
def test_a_twenty_model_legend_fits_the_figure(labelsets):
    """Drawn, the legend lies within the figure: none of its 21 entries is cut off."""
    models = [f"a_model_with_a_long_name_{i:02d}" for i in range(20)]
    curves = {("c", ls): curve_table(models, 100) for ls in labelsets}
    fig = cumulative_grid(curves, {}, model_styles(models), dict.fromkeys(curves, 100))
    fig.canvas.draw()
    box = fig.legends[0].get_window_extent()
    assert len(fig.legends[0].get_texts()) == 21
    assert 0 <= box.x0 and box.x1 <= fig.bbox.width
    assert 0 <= box.y0 and box.y1 <= fig.bbox.height


def figure_texts(fig) -> str:
    texts = [t.get_text() for t in fig.texts]
    texts += [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    for ax in fig.axes:
        texts += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
        texts += [t.get_text() for t in ax.texts]
        texts += [line.get_label() for line in ax.get_lines()]
    return "\n".join(texts)


def test_pairwise_grid_panels_lines_labels_and_legend():
    a = np.array([1, 4, 2, 10, 50])
    b = np.array([3, 1, 2, 40, 5])
    c = np.array([7, 7, 7, 7, 7])
    fused = {("a", "b"): {"rrf": np.array([1, 1, 2, 9, 5]), "zscore": np.array([2, 2, 2, 2, 2])}}
    styles = model_styles(["a", "b", "c"])
    fig = pairwise_grid(
        {"a": a, "b": b, "c": c}, 100, 20, styles, fused=fused, values={"a": 1, "b": 2, "c": 3}
    )
    axes = np.array(fig.axes).reshape(3, 3)
    for i in range(3):
        assert not axes[i, i].axison
        assert axes[i, i].texts[0].get_text().startswith("abc"[i])
    # above the diagonal, panel (0, 1): x = ranks of b (column), y = ranks of a (row)
    upper = axes[0, 1]
    assert upper.get_xscale() == upper.get_yscale() == "log"
    assert (upper.get_xlabel(), upper.get_ylabel()) == ("rank by b (log)", "rank by a (log)")
    assert (axes[1, 2].get_xlabel(), axes[1, 2].get_ylabel()) == (
        "rank by c (log)",
        "rank by b (log)",
    )
    points = [c for c in upper.collections if isinstance(c, PathCollection)][0].get_offsets()
    assert np.array_equal(np.asarray(points), np.column_stack([b, a]))
    diagonal = upper.get_lines()[0]
    assert diagonal.get_label() == SAME_RANK
    assert np.array_equal(diagonal.get_xdata(), diagonal.get_ydata())
    # below the diagonal, panel (1, 0): a, b, their per-query best, two fusions, chance
    lower = axes[1, 0]
    assert (lower.get_xlabel(), lower.get_ylabel()) == ("rank k", "share of queries found")
    lines = {line.get_label(): line for line in lower.get_lines()}
    assert set(lines) == {"a", "b", BEST_OF_TWO, "rrf fusion", "zscore fusion", CHANCE}
    # per-query best of a and b: 1, 1, 2, 10, 5 -> found within k = 1, 2, 5, 10 by hand
    best = lines[BEST_OF_TWO].get_ydata()
    assert best[[0, 1, 4, 9, 19]].tolist() == [0.4, 0.6, 0.8, 1.0, 1.0]
    assert len(best) == 20  # cut at xmax
    assert lines[CHANCE].get_ydata()[[0, 19]].tolist() == pytest.approx([0.01, 0.2])
    assert to_hex(lines["a"].get_color()) == styles["a"].color
    # pair (a, c) has no fusion: only its models, their per-query best and chance
    assert {line.get_label() for line in axes[2, 0].get_lines()} == {"a", "c", BEST_OF_TWO, CHANCE}
    # one legend with every line drawn, models first
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    drawn = {line.get_label() for ax in fig.axes for line in ax.get_lines()}
    assert set(legend) == drawn
    assert legend[:3] == ["a", "b", "c"]
    # the per-query best bounds choosing one model per query, not fusion: never an oracle
    text = figure_texts(fig).lower()
    assert "oracle" not in text and "upper bound" not in text
    assert "per-query best" in text and "k / 100" in text
    fig.canvas.draw()
    box = fig.legends[0].get_window_extent()
    assert 0 <= box.x0 and box.x1 <= fig.bbox.width


def test_disagreements_by_hand():
    ranks = pd.DataFrame(
        {"a": [1, 5, 100, 3], "b": [2, 5, 1, 3], "c": [1, 80, 50, 3]},
        index=["q1", "q2", "q3", "q4"],
    )
    chosen = disagreements(ranks, 2)
    # q3: a=100 vs b=1 (log2 ratio 6.64); q2: b=5 vs c=80 (4.0); q1: 1 vs 2 (1.0)
    assert chosen["query_id"].tolist() == ["q3", "q2"]
    first = chosen.iloc[0]
    assert (first.model_a, first.model_b, first.rank_a, first.rank_b) == ("b", "a", 1, 100)
    assert first.log2_ratio == pytest.approx(np.log2(100))


def test_examples_figure_rows_and_target_frames(tmp_path):
    paths = {}
    for i, name in enumerate(["t1", "t2", "x", "y", "z"]):
        paths[name] = tmp_path / f"{name}.png"
        Image.new("RGB", (40 + 10 * i, 30), (50 * i, 100, 150)).save(paths[name])
    examples = [
        Example("t1", "a query", "t1", {"a": 2, "b": 9}, {"a": ["x", "t1", "y"], "b": ["y", "z"]}),
        Example("t2", "another", "t2", {"a": 1, "b": 3}, {"a": ["t2"], "b": ["x", "y", "t2"]}),
    ]
    colors = {m: s.color for m, s in model_styles(["a", "b"]).items()}
    fig = examples_figure(examples, paths, colors, top=3)
    # per example: the target panel, then one row per model
    assert len(fig.axes) == 2 * (1 + 2)
    rows = [ax for ax in fig.axes if ax.get_ylabel()]
    assert [ax.get_ylabel() for ax in rows] == ["a\nrank 2", "b\nrank 9", "a\nrank 1", "b\nrank 3"]
    frames = [
        [p for p in ax.patches if isinstance(p, Rectangle) and p.get_label() == "target"]
        for ax in rows
    ]
    assert [len(f) for f in frames] == [1, 0, 1, 1]  # b's top 2 for t1 miss the target
    texts = [t.get_text() for t in fig.texts]
    assert any("a query" in t for t in texts) and any("another" in t for t in texts)


# The made-up project of the stage tests: 30 images, 12 queries per labelset.
project = stage_tests.project


def test_render_draws_chance_for_the_collections_image_count(project, monkeypatch):
    """The render stage takes N of the chance line from the ranks' info.json."""
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["run"]["models"] = ["fair"]
    params["render"]["workers"] = 1
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    stage_tests.invoke(rank.app, "--model", "fair", "--collection", "toy")
    info = json.loads((ranks_dir("fair", "toy") / RANKS_INFO).read_text())
    seen_sizes, seen_columns = [], []

    def spy(curves, xmax, styles, n_images, *args, **kwargs):
        seen_sizes.append(n_images)
        seen_columns.extend(list(table.columns) for table in curves.values())
        fig = draw_cumulative(curves, xmax, styles, n_images, *args, **kwargs)
        seen_columns.append([t.get_text() for t in fig.legends[0].get_texts()])
        return fig

    draw_cumulative = figures.cumulative_grid
    monkeypatch.setattr(figures, "cumulative_grid", spy)
    for app in (evaluate.app, fusion.app, render.app):
        stage_tests.invoke(app)
    assert info["images"] == stage_tests.N_IMAGES
    assert seen_sizes == [{("toy", "short"): info["images"], ("toy", "long"): info["images"]}]
    # The curve files' chance column reaches the figure as no model: one chance line, its own.
    assert "chance" in pd.read_csv(CURVES / curve_name("toy", "short")).columns
    assert seen_columns == [["k", "fair"], ["k", "fair"], ["fair", CHANCE]]
