"""The HTML template that makes `dvc plots show` / `dvc plots diff` pages work offline.

DVC's default page loads vega, vega-lite and vega-embed from a CDN, so on a machine without
internet the plots stay blank. ``vendor/vega/plots-template.html`` inlines the pinned npm
builds of those three scripts instead; ``.dvc/config`` points ``plots.html_template`` at it.
``kisbench vendor-vega`` (``make vendor-vega``) re-makes it, and the licences of
every npm package involved, from the npm registry; only that step needs npm and a network.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from pathlib import Path

import typer

from kisbench import files
from kisbench.cli import command_line

# vega-embed 6 / vega-lite 5 / vega 5: the major versions that DVC's own plot templates
# ("$schema": vega-lite v5) are written for.
PINS: dict[str, str] = {"vega": "5.33.1", "vega-lite": "5.23.0", "vega-embed": "6.29.0"}
# Order matters: vega-lite needs vega, vega-embed needs both, as page globals.
BUILDS: dict[str, str] = {
    "vega": "build/vega.min.js",
    "vega-lite": "build/vega-lite.min.js",
    "vega-embed": "build/vega-embed.min.js",
}

VENDOR_DIR = Path("vendor") / "vega"
TEMPLATE = VENDOR_DIR / "plots-template.html"
LICENSES = VENDOR_DIR / "THIRD_PARTY_LICENSES.txt"

# Placeholders that dvc_render fills. "{scripts}" is left out on purpose: DVC would put its
# CDN <script> tags there.
PLOTS_PLACEHOLDER = "{plot_divs}"
DVC_PLACEHOLDERS = ("{plot_divs}", "{scripts}", "{refresh_tag}")

_SOURCE_MAP = re.compile(r"^//# sourceMappingURL=.*$", re.MULTILINE)
_LICENSE_FILE = re.compile(r"^(licen[cs]e|copying)(\.[a-z]+)?$", re.IGNORECASE)


class VendorError(RuntimeError):
    """The npm packages could not be fetched or are not safe to inline."""


def inline_script(name: str, source: str) -> str:
    """``source`` as an inline <script>, refusing text that would end or confuse the tag."""
    source = _SOURCE_MAP.sub("", source).strip()
    lowered = source.lower()
    for bad in ("</script", "<!--"):
        if bad in lowered:
            raise VendorError(f"{name}: its build contains '{bad}', which cannot be inlined")
    for placeholder in DVC_PLACEHOLDERS:
        if placeholder in source:
            raise VendorError(f"{name}: its build contains DVC's placeholder '{placeholder}'")
    return f"<script>\n{source}\n</script>"


def render_template(scripts: dict[str, str]) -> str:
    """The page: pinned scripts inline, DVC's plot divs in the body."""
    pins = ", ".join(f"{name}@{PINS[name]}" for name in BUILDS)
    tags = "\n".join(inline_script(name, scripts[name]) for name in BUILDS)
    return f"""<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
{{refresh_tag}}
<title>kisbench plots</title>
<!-- {pins}: BSD-3-Clause, see {LICENSES.name} beside this template.
     Inlined by `make vendor-vega` so that the page needs no network. -->
{tags}
<style>
body {{ font-family: sans-serif; }}
table {{ border-spacing: 15px; }}
</style>
</head>
<body>
{PLOTS_PLACEHOLDER}
</body>
</html>
"""


def package_dirs(node_modules: Path) -> list[Path]:
    """Every installed package folder, scoped ones (``@scope/name``) included."""
    found = []
    for entry in sorted(node_modules.iterdir()):
        if entry.name.startswith("@"):
            found.extend(sorted(p for p in entry.iterdir() if (p / "package.json").is_file()))
        elif (entry / "package.json").is_file():
            found.append(entry)
    return found


def licence_notice(node_modules: Path) -> str:
    """One block per npm package installed with the pins: name, version, SPDX id, text."""
    blocks = [
        "Licences of the npm packages behind plots-template.html, as installed by\n"
        f"`make vendor-vega` ({', '.join(f'{n}@{v}' for n, v in PINS.items())} and their\n"
        "dependencies; the .min.js builds bundle some of those). Packages that ship no\n"
        "licence file are listed with the licence their package.json declares.\n"
    ]
    for folder in package_dirs(node_modules):
        meta = json.loads((folder / "package.json").read_text(encoding="utf-8"))
        header = f"{meta.get('name', folder.name)}@{meta.get('version', '?')}"
        header += f" ({meta.get('license', 'licence not declared')})"
        files = sorted(p for p in folder.iterdir() if _LICENSE_FILE.match(p.name))
        text = (
            files[0].read_text(encoding="utf-8", errors="replace").strip()
            if files
            else "(no licence file in the npm package)"
        )
        blocks.append(f"{'=' * 78}\n{header}\n{'=' * 78}\n{text}\n")
    return "\n".join(blocks)


def fetch_packages(workdir: Path) -> Path:
    """``npm install`` the pinned packages into ``workdir``; returns its node_modules."""
    (workdir / "package.json").write_text('{"private": true}\n', encoding="utf-8")
    specs = [f"{name}@{version}" for name, version in PINS.items()]
    cmd = ["npm", "install", "--no-audit", "--no-fund", "--ignore-scripts", *specs]
    try:
        proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, check=False)
    except FileNotFoundError as err:
        raise VendorError("npm not found: install Node.js and npm to re-make vendor/vega") from err
    if proc.returncode:
        raise VendorError(f"`{' '.join(cmd)}` failed:\n{proc.stderr[-2000:]}")
    return workdir / "node_modules"


def build(root: Path) -> list[Path]:
    """Re-make the template and the licence notice under ``root``; returns what was written."""
    with tempfile.TemporaryDirectory(prefix="kisbench-vega-") as tmp:
        modules = fetch_packages(Path(tmp))
        scripts = {
            name: (modules / name / rel).read_text(encoding="utf-8") for name, rel in BUILDS.items()
        }
        for name, version in PINS.items():
            got = json.loads((modules / name / "package.json").read_text(encoding="utf-8"))
            if got["version"] != version:
                raise VendorError(
                    f"npm installed {name}@{got['version']}, not the pinned {version}"
                )
        page = render_template(scripts)
        notice = licence_notice(modules)
    files.write_text(root / TEMPLATE, page)
    files.write_text(root / LICENSES, notice)
    return [root / TEMPLATE, root / LICENSES]


app = command_line()


@app.command()
def main(root: Path = typer.Option(Path("."), help="Repository root.")) -> None:
    """Re-make vendor/vega/plots-template.html (offline `dvc plots show`) from npm."""
    try:
        written = build(root)
    except VendorError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from err
    for path in written:
        typer.echo(f"wrote {path} ({path.stat().st_size:,} bytes)")


if __name__ == "__main__":
    app()
