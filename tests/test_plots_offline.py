"""`dvc plots show` pages render without a network: the vendored vega template, checked in
headless Chromium with every host name unresolvable."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from dvc_render.vega_templates import LinearTemplate
from PIL import Image

from kisbench.evaluation.evaluate import CHANCE_COLUMN
from kisbench.evaluation.layout import (
    CURVES,
    SIMULATION_CURVES,
    curve_name,
    simulation_curve_name,
)
from kisbench.tools.plot_template import BUILDS, DVC_PLACEHOLDERS, LICENSES, PINS, TEMPLATE
from kisbench.tools.smoke import deep_merge, dvc_env, git
from tests.browser import HEADLESS_ARGS, chromium

REPO = Path(__file__).resolve().parents[1]
# DVC's folder of custom plot templates, where `template: NAME` finds NAME.json.
PLOT_TEMPLATES = Path(".dvc") / "plots"
# DVC's first line colour (dvc_render's default palette), as drawn on the page.
LINE_RGB = (0x94, 0x5D, 0xD6)
# The chance band's grey, that of plots/figures/cumulative.png (matplotlib's "0.72").
CHANCE_RGB = (round(0.72 * 255),) * 3


def dvc_config_template() -> Path:
    """The template that `dvc plots show` uses, as .dvc/config names it (relative to .dvc)."""
    import configobj

    conf = configobj.ConfigObj(str(REPO / ".dvc" / "config"))
    return (REPO / ".dvc" / conf["plots"]["html_template"]).resolve()


def test_dvc_config_points_at_the_vendored_template() -> None:
    assert dvc_config_template() == (REPO / TEMPLATE).resolve()


def test_template_inlines_the_pinned_scripts_and_no_remote_ones() -> None:
    page = (REPO / TEMPLATE).read_text(encoding="utf-8")
    assert "{plot_divs}" in page
    assert "{scripts}" not in page, "DVC would put its CDN <script> tags there"
    assert not re.search(r"<script[^>]*\bsrc=", page), "every script must be inline"
    # One inline script per bundle, in load order, each carrying its own pinned version.
    scripts = re.findall(r"<script>(.*?)</script>", page, flags=re.DOTALL)
    assert len(scripts) == len(BUILDS)
    for name, script in zip(BUILDS, scripts, strict=True):
        assert f'"{PINS[name]}"' in script, name
    # DVC fills its placeholders by plain text replacement: each must occur only where meant.
    assert [page.count(p) for p in DVC_PLACEHOLDERS] == [1, 0, 1]


def test_licences_cover_the_pinned_packages() -> None:
    notice = (REPO / LICENSES).read_text(encoding="utf-8")
    for name, version in PINS.items():
        assert f"\n{name}@{version} (BSD-3-Clause)\n" in notice
    assert "University of Washington Interactive Data Lab" in notice


# --- the chance line of the cumulative plots -------------------------------------------


def top_level_plot(path: Path) -> dict:
    """The definition of ``path`` in dvc.yaml's top-level plots."""
    plots = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))["plots"]
    found = [item[path.as_posix()] for item in plots if path.as_posix() in item]
    assert len(found) == 1, plots
    return found[0]


def chance_layers(spec: dict) -> list[dict]:
    """The layers of a vega-lite spec whose y is the curve tables' chance column."""
    return [
        layer
        for layer in spec.get("layer", [])
        if layer.get("encoding", {}).get("y", {}).get("field") == CHANCE_COLUMN
    ]


def test_cumulative_plot_is_dvc_linear_plus_the_chance_band() -> None:
    definition = top_level_plot(CURVES)
    assert definition["y"] == "${run.models}"  # the models only, as params names them
    path = REPO / PLOT_TEMPLATES / f"{definition['template']}.json"
    template = json.loads(path.read_text(encoding="utf-8"))
    (band,) = chance_layers(template)
    assert template["layer"][0] is band  # drawn first: beneath the models' lines
    assert band["encoding"]["x"]["field"] == "<DVC_METRIC_X>"
    # The rest is DVC's default template as installed: the models look as without it.
    rest = {**template, "layer": [layer for layer in template["layer"] if layer is not band]}
    assert rest == LinearTemplate.DEFAULT_CONTENT
    assert not chance_layers(LinearTemplate.DEFAULT_CONTENT)


def plots_json(ws: Path) -> dict:
    env = {**dvc_env(), "DVC_SITE_CACHE_DIR": str(ws / ".dvc" / "tmp" / "site")}
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", "plots", "show", "--json"],
        cwd=ws,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return json.loads(proc.stdout)


def test_dvc_plots_show_draws_chance_with_the_models(tmp_path: Path) -> None:
    """`dvc plots show --json`: each cumulative file is one plot holding the model's series
    and the chance band, whose points are k / 50 for the hand-made 50-image curves."""
    shown = plots_json(plots_workspace(tmp_path / "ws"))
    assert "errors" not in shown, shown["errors"]
    for labelset in ("short", "long"):
        (plot,) = shown["data"][(CURVES / curve_name("demo", labelset)).as_posix()]
        spec = plot["content"]
        assert "<DVC_METRIC" not in json.dumps(spec)  # every anchor filled
        values = spec["data"]["values"]
        # DVC's own series is the model's column, once per k: chance is no series of its
        assert len(values) == 50
        assert spec["layer"][1]["encoding"]["y"]["field"] == "tiny_clip"
        (band,) = chance_layers(spec)
        assert band["encoding"]["x"]["field"] == "k"
        points = {int(p["k"]): float(p[CHANCE_COLUMN]) for p in values}
        assert points == pytest.approx({k: k / 50 for k in range(1, 51)})
    (simulation,) = shown["data"][
        (SIMULATION_CURVES / simulation_curve_name("demo", "short", "ideal")).as_posix()
    ]
    assert not chance_layers(simulation["content"])  # DVC's own template there


# --- in a browser ---------------------------------------------------------------------


def browse(page: Path, profile: Path, *action: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium on a local file, with no way to reach any host."""
    flags = [
        *HEADLESS_ARGS,
        f"--user-data-dir={profile}",
        # Every name lookup fails: a CDN script cannot load even where there is internet.
        "--host-resolver-rules=MAP * ~NOTFOUND",
        # Let vega-embed's asynchronous rendering finish before the dump or screenshot.
        "--virtual-time-budget=10000",
        "--window-size=1000,900",
    ]
    return subprocess.run(
        [chromium("the offline plot page cannot be checked"), *flags, *action, page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def plots_workspace(dst: Path) -> Path:
    """The project's plot definitions (dvc.yaml, params, .dvc/config, .dvc/plots/,
    vendor/) with a hand-made cumulative curve per labelset (with its chance column, k / 50)
    and a simulation curve for one user; no pipeline run needed."""
    for rel in ("dvc.yaml", ".dvc/config", ".dvc/.gitignore", ".gitignore"):
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, dst / rel)
    shutil.copytree(REPO / TEMPLATE.parent, dst / TEMPLATE.parent)
    shutil.copytree(REPO / PLOT_TEMPLATES, dst / PLOT_TEMPLATES)
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    params = deep_merge(params, {"run": {"models": ["tiny_clip"], "collections": ["demo"]}})
    (dst / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    for labelset, power in (("short", 0.5), ("long", 2.0)):
        rows = "".join(f"{k},{(k / 50) ** power:.4f},{k / 50:.4f}\n" for k in range(1, 51))
        path = dst / CURVES / curve_name("demo", labelset)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("k,tiny_clip,chance\n" + rows, encoding="utf-8")
    rows = "".join(f"{n},{min(1.0, 0.2 + n / 10):.4f}\n" for n in range(11))
    path = dst / SIMULATION_CURVES / simulation_curve_name("demo", "short", "ideal")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("n,tiny_clip\n" + rows, encoding="utf-8")
    git(dst, "init", "-q", "-b", "main")
    git(dst, "add", "-A")
    git(dst, "commit", "-q", "-m", "plots")
    return dst


def plots_show(ws: Path, out: str, *extra: str) -> Path:
    env = {**dvc_env(), "DVC_SITE_CACHE_DIR": str(ws / ".dvc" / "tmp" / "site")}
    subprocess.run(
        [sys.executable, "-m", "dvc", "plots", "show", "-o", out, *extra],
        cwd=ws,
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    return ws / out / "index.html"


def rendered_plots(dom: str) -> dict[str, int]:
    """Plot div id -> number of vega canvases drawn inside it."""
    ids = re.findall(r'<div id="(plots_[^"]+)"', dom)
    counts = {}
    for i, plot_id in enumerate(ids):
        start = dom.index(f'<div id="{plot_id}"')
        end = dom.index(f'<div id="{ids[i + 1]}"') if i + 1 < len(ids) else len(dom)
        counts[plot_id] = len(
            re.findall(r'<canvas width="[1-9]\d*" height="[1-9]\d*" class="marks"', dom[start:end])
        )
    return counts


@pytest.mark.slow
def test_plots_render_offline_in_chromium(tmp_path: Path) -> None:
    ws = plots_workspace(tmp_path / "ws")
    page = plots_show(ws, "offline")
    assert "cdn.jsdelivr" not in page.read_text(encoding="utf-8")

    dom = browse(page, tmp_path / "profile1", "--dump-dom").stdout
    counts = rendered_plots(dom)
    assert len(counts) == 3, counts  # a cumulative plot per labelset, a simulation plot
    assert all(n == 1 for n in counts.values()), counts

    # Lines were drawn, not only empty canvases: pixels of DVC's first line colour.
    shot = tmp_path / "offline.png"
    browse(page, tmp_path / "profile2", f"--screenshot={shot}")
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=int)
    near = int((np.abs(pixels - np.array(LINE_RGB)).max(axis=-1) <= 40).sum())
    assert near > 200, near
    # and the chance band beneath them in the two cumulative plots, a 5 px wide line: 3266
    # pixels of its grey here, 283 (text edges) with DVC's own template instead
    grey = int((np.abs(pixels - np.array(CHANCE_RGB)).max(axis=-1) <= 2).sum())
    assert grey > 1500, grey

    # Control: DVC's own page (CDN scripts) renders nothing here, so the check above can fail.
    cdn_template = tmp_path / "cdn.html"
    cdn_template.write_text(
        "<!DOCTYPE html><html><head>{scripts}</head><body>{plot_divs}</body></html>"
    )
    control = plots_show(ws, "cdn", "--html-template", str(cdn_template))
    assert "cdn.jsdelivr" in control.read_text(encoding="utf-8")
    control_counts = rendered_plots(browse(control, tmp_path / "profile3", "--dump-dom").stdout)
    assert len(control_counts) == 3 and not any(control_counts.values()), control_counts
