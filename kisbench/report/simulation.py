"""The simulated interactive search in the figures and the report (docs/simulation.md).

Figures ``plots/figures/simulation/C-L.png``: per collection and labelset, one panel per
simulated user, the share of targets found within n displays for each model, and dashed in
the model's colour the text query alone paged through, R@((n+1) x display). The report's
section: a table of the shares and mean displays with their 95 % intervals, and how to read
them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from kisbench.evaluation.layout import METRICS, SIMULATION_CURVES  # noqa: E402
from kisbench.report import figures  # noqa: E402
from kisbench.report.layout import figure_name  # noqa: E402

SUMMARY = "simulation.json"
PAIRS = "simulation_pairs.csv"
KIND = "simulation"
MARKERS = ("o", "s", "^", "D")  # per dash pattern of figures.LINESTYLES


def load(metrics: Path = METRICS) -> dict[str, Any]:
    """``metrics/simulation.json``, or nothing when the simulate stage has not run."""
    path = Path(metrics) / SUMMARY
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _curves(collection: str, labelset: str, users: list[str], curves: Path) -> dict:
    out = {}
    for user in users:
        path = Path(curves) / f"{collection}-{labelset}-{user}.csv"
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found; run the simulate stage first")
        out[user] = pd.read_csv(path)
    return out


def _display_size(entry: dict[str, Any]) -> int:
    first = next(iter(entry["text_only"]))  # "r@64": R@((0+1) x display)
    return int(first.split("@")[1])


def draw(
    summary: dict[str, Any], palette: list[str], out: Path, curves: Path = SIMULATION_CURVES
) -> dict[str, Path]:
    """One figure per collection and labelset; returns {figure name: path}."""
    styles = figures.model_styles(palette)
    written = {}
    (Path(out) / KIND).mkdir(parents=True, exist_ok=True)
    for collection, by_labelset in summary.items():
        for labelset, by_model in by_labelset.items():
            users = list(next(iter(by_model.values())))
            tables = _curves(collection, labelset, users, curves)
            first = next(iter(next(iter(by_model.values())).values()))
            n_disp = _display_size(first)
            fig, axes = plt.subplots(
                1, len(users), figsize=(4.2 * len(users), 4.2), sharey=True, squeeze=False
            )
            for ax, user in zip(axes[0], users, strict=True):
                frame = tables[user]
                for model in by_model:
                    text = model.split("+")[0]
                    style = styles.get(text) or figures.Style("#000000", "solid", "-")
                    pair = "+" in model
                    # Solid with markers: feedback; the marker tells models of one colour
                    # apart (every seventh model), as the dash pattern does elsewhere.
                    shape = MARKERS[[n for n, _ in figures.LINESTYLES].index(style.dashes)]
                    ax.plot(
                        frame["n"],
                        frame[model],
                        color=style.color,
                        ls=(0, (6, 1.6, 1.4, 1.6)) if pair else "-",
                        marker="X" if pair else shape,
                        ms=4,
                        lw=1.8,
                        label=f"{model} (text + feedback models)" if pair else model,
                    )
                    if not pair:
                        ax.plot(
                            frame["n"],
                            frame[f"{model}@text"],
                            color=style.color,
                            ls=(0, (4, 2.5)),
                            lw=1.1,
                            alpha=0.8,
                        )
                ax.set_title(f"user: {user}")
                ax.set_xlabel("display n (0: the text query alone)")
                ax.set_xticks(list(frame["n"]))
                ax.set_ylim(0, 1.02)
                ax.grid(alpha=0.3)
            axes[0][0].set_ylabel("share of targets found within n displays")
            handles, labels = axes[0][0].get_legend_handles_labels()
            handles.append(Line2D([], [], color="0.35", ls=(0, (4, 2.5)), lw=1.1))
            labels.append(
                f"dashed, in the model's colour: its text ranking alone, R@((n+1)·{n_disp})"
            )
            fig.legend(
                handles,
                labels,
                loc="lower center",
                ncol=min(3, len(labels)),
                fontsize=8,
                frameon=False,
            )
            fig.suptitle(
                f"{collection}, {labelset} labels: simulated interactive search "
                f"({n_disp} images a display)"
            )
            rows = -(-len(labels) // 3)
            fig.tight_layout(rect=(0, 0.05 + 0.035 * rows, 1, 1))
            name = figure_name(KIND, collection, labelset)
            written[name] = figures.save(fig, Path(out) / name)
    return written


def _ci(entry: dict[str, float], digits: int = 2) -> str:
    return f"{entry['value']:.{digits}f} [{entry['low']:.{digits}f}, {entry['high']:.{digits}f}]"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def section(
    summary: dict[str, Any], figures_: dict[str, Path], where: Path, pairs: pd.DataFrame
) -> str:
    """The report's section: how to read it, then per collection and labelset a table
    (share found at display 0, within 1, 3 and N, mean displays) and the figure."""
    if not summary:
        return ""
    out = [
        "## Interactive search, simulated\n\n",
        "How many screens until a user finds the image (docs/simulation.md)? Display 0 "
        "shows the best images for the text query; a simulated user marks the displayed "
        "image(s) most like the target (*ideal*: the closest in the feedback model's image "
        "space; *ransam*: drawn in proportion to ((1 + cos) / 2)^p; *random*: any), the "
        "scores are updated the Bayesian way (PicHunter, as in SOMHunter), and the next "
        "display shows the new best. *within n*: the share of targets shown on displays "
        "0..n (ransam and random: the mean over their simulated users per query); *found at "
        "0* is R@(display) of the text query. *displays*: the mean number of displays "
        "looked at, a target never found counted as N + 2 (a lower bound). *text only*: "
        "the text ranking paged through, R@((n+1) x display), the reference a feedback "
        "round has to beat. Intervals: 95 % over queries. Not modelled: time to type, "
        "scrolling, a user's mistakes.\n\n",
    ]
    for collection, by_labelset in summary.items():
        for labelset, by_model in by_labelset.items():
            first = next(iter(next(iter(by_model.values())).values()))
            rounds = sum(1 for k in first if k.startswith("within_")) - 1
            n_disp = _display_size(first)
            out.append(f"### `{collection}`, {labelset} labels: simulated search\n\n")
            header = ["model", "user", "found at 0", "within 1", "within 3"]
            header += [f"within {rounds}", f"text only R@{(rounds + 1) * n_disp}", "displays"]
            rows = []
            for model, by_user in by_model.items():
                for user, e in by_user.items():
                    rows.append(
                        [
                            model,
                            user,
                            _ci(e["within_0"]),
                            _ci(e[f"within_{min(1, rounds)}"]),
                            _ci(e[f"within_{min(3, rounds)}"]),
                            _ci(e[f"within_{rounds}"]),
                            f"{e['text_only'][f'r@{(rounds + 1) * n_disp}']:.2f}",
                            _ci(e["displays"], 1),
                        ]
                    )
            out.append(_table(header, rows) + "\n")
            part = pairs
            if len(part):
                part = part[(part["collection"] == collection) & (part["labelset"] == labelset)]
                better = part[part["q_paired"].astype(float) < 0.05]
                out.append(
                    f"Paired comparisons of the mean displays (`metrics/{PAIRS}`): "
                    f"{len(better)} of {len(part)} model pairs differ at q < 0.05.\n\n"
                )
            name = figure_name(KIND, collection, labelset)
            path = figures_.get(name)
            if path is not None:
                rel = Path(os.path.relpath(path, where)).as_posix()
                out.append(f"![simulated search]({rel})\n\n")
    return "".join(out)
