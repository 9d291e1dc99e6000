"""`kisbench check`: every mistake in params.yaml, the collections and their labels, found in
seconds with no model loaded, and reported all at once.

What it checks (docs/collections.md "Checking a collection"):

- params.yaml: YAML, every section's keys and types (`kisbench.config`, with did-you-mean
  hints); every key of ``run.models`` and ``reset.models`` a model of ``models``, every
  model entry's family and arguments (`kisbench.models.registry.family_of`);
- every collection of ``run.collections``: its images folder (missing, empty), every image's
  header (the embed stage's refusals: empty file, not an image, too large), exact duplicates
  (same bytes) and near duplicates (a perceptual hash; ``--no-near`` skips them), its labels
  file (parse errors by line) and every labelled ID against the image IDs;
- with ``run.reset`` on: RESET's three files, and the keyframes when ``reset.models`` embeds
  any.

Errors are what a stage would fail on; warnings what the user should know (duplicates,
images the embed stage skips under ``embed.on_unreadable: skip``). Exit status 1 on any
error, 0 on warnings only. The DVC stage ``check@<collection>`` (`stages/check.py`) runs the
same checks for one collection before its embed stages.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer
import yaml

from kisbench import config, layout
from kisbench.config.embed import Embed
from kisbench.config.reset import Reset
from kisbench.config.schema import UniqueKeyLoader, hint
from kisbench.config.simulation import split_pair
from kisbench.data.checks import ERROR, WARNING, CollectionReport, Problem, check_collection
from kisbench.data.images import DEFAULT_MAX_PIXELS
from kisbench.errors import InputError, ModelError
from kisbench.models.registry import family_of
from kisbench.models.spec import ModelSpec


@dataclass
class Report:
    """The params' problems and one report per collection checked."""

    params: list[Problem] = field(default_factory=list)
    collections: list[CollectionReport] = field(default_factory=list)

    @property
    def problems(self) -> list[Problem]:
        return [*self.params, *(p for c in self.collections for p in c.problems)]

    @property
    def errors(self) -> int:
        return sum(p.level == ERROR for p in self.problems)

    @property
    def warnings(self) -> int:
        return sum(p.level == WARNING for p in self.problems)


def _raw(path: Path, problems: list[Problem]) -> Mapping[str, Any] | None:
    where = str(path)
    if not path.is_file():
        problems.append(Problem(ERROR, where, f"{path} not found: run from the repository root"))
        return None
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=UniqueKeyLoader)
    except yaml.YAMLError as err:
        problems.append(Problem(ERROR, where, f"not valid YAML: {err}"))
        return None
    if not isinstance(raw, Mapping):
        problems.append(Problem(ERROR, where, "expected a mapping of sections"))
        return None
    return raw


def _names(raw: Mapping[str, Any], section: str, key: str) -> list[str]:
    """A list of names in the raw params (best effort: what is not a list of strings is
    the schema's problem, reported already)."""
    value = (raw.get(section) or {}).get(key) if isinstance(raw.get(section), Mapping) else None
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def check_params(path: Path) -> tuple[list[Problem], config.Config | None, Mapping[str, Any]]:
    """The params file's problems, the checked Config (None if it has errors) and the raw
    mapping, from which the collections are still checked when the file has errors."""
    problems: list[Problem] = []
    raw = _raw(path, problems)
    if raw is None:
        return problems, None, {}
    where = str(path)
    cfg = None
    try:
        cfg = config.parse(raw, source=where)
    except InputError as err:
        prefix = f"{where}: "
        for line in str(err).splitlines():
            problems.append(Problem(ERROR, where, line.removeprefix(prefix)))
    models = raw.get("models") if isinstance(raw.get("models"), Mapping) else {}
    # A group there is the groups check's to report, with what to run instead. Its module is
    # reached by name, as kisbench.config finds it, so that it stays out of the check
    # stage's code key (only the tools read groups).
    groups = sys.modules[config.schema_module("groups")]
    named = set(groups.BUILTIN)
    if isinstance(raw.get("groups"), Mapping):
        named |= set(raw["groups"])
    for section, key in (("run", "models"), ("reset", "models")):
        unknown = [m for m in _names(raw, section, key) if m not in models and m not in named]
        for m in unknown:
            problems.append(
                Problem(
                    ERROR,
                    where,
                    f"{section}.{key}: unknown model key {m!r}{_close(m, list(models))}; "
                    f"`models` defines: {', '.join(models)}",
                )
            )
    if cfg is not None:  # simulate.pairs: only the experiment's models are embedded
        for pair in cfg.simulate.pairs:
            try:
                names = split_pair(pair)
            except InputError as err:
                problems.append(Problem(ERROR, where, str(err)))
                continue
            for m in names:
                if m not in cfg.run.models:
                    problems.append(
                        Problem(
                            ERROR,
                            where,
                            f"simulate.pairs: {pair!r} names {m!r}, which is not in run.models"
                            f"{_close(m, list(cfg.run.models))}",
                        )
                    )
    for key, entry in models.items():
        if not isinstance(entry, Mapping) or not isinstance(entry.get("family"), str):
            continue  # the schema's problem, reported above
        try:
            family_of(ModelSpec.from_params(str(key), dict(entry)))
        except ModelError as err:
            problems.append(Problem(ERROR, f"{where}: models.{key}", str(err)))
    return problems, cfg, raw


def _close(name: str, valid: list[str]) -> str:
    """`` (did you mean 'x'?)`` when one is close (the valid ones are listed anyway)."""
    found = hint(name, valid)
    return found if "did you mean" in found else ""


def collection_names(raw: Mapping[str, Any]) -> list[str]:
    return _names(raw, "run", "collections")


def check_one_collection(
    name: str,
    raw: Mapping[str, Any],
    cfg: config.Config | None,
    *,
    labels: bool = True,
    near: bool = True,
    progress: bool = False,
    where: str = "params.yaml",
) -> CollectionReport:
    """One collection of run.collections (``labels``) or run.reset (no labels)."""
    entries = raw.get("collections") if isinstance(raw.get("collections"), Mapping) else {}
    folder = layout.images_dir(name)
    if name not in entries and not folder.parent.is_dir():
        known = sorted(
            set(entries)
            | {p.name for p in (layout.DATA / "collections").glob("*") if (p / "images").is_dir()}
        )
        report = CollectionReport(name)
        report.problems.append(
            Problem(
                ERROR,
                where,
                f"unknown collection {name!r}{_close(name, known)}: no entry in `collections` "
                f"and no folder {folder}; collections defined or present: {', '.join(known)}",
            )
        )
        return report
    embed: Embed | None = cfg.embed if cfg is not None else None
    skip = embed is not None and embed.on_unreadable == "skip"
    max_pixels = embed.max_pixels if embed is not None else DEFAULT_MAX_PIXELS
    return check_collection(
        name,
        folder,
        layout.labels_path(name) if labels else None,
        skip_unreadable=skip,
        max_pixels=max_pixels,
        near=near,
        progress=progress,
    )


def check_reset(raw: Mapping[str, Any], cfg: config.Config | None) -> list[Problem]:
    """RESET's files exist (their contents are the reset stage's to check)."""
    if cfg is None or not cfg.run.reset:
        return []
    problems = []
    reset: Reset = cfg.reset
    for key in ("participants", "judgements", "triplets"):
        path = Path(getattr(reset, key))
        if not path.is_file():
            problems.append(
                Problem(
                    ERROR,
                    f"reset.{key}",
                    f"RESET {key} file {path} not found; RESET is not public: obtain it from "
                    "its authors (docs/reset.md) and put it there, or fix the path",
                )
            )
    return problems


def run_checks(
    params: Path = config.DEFAULT,
    collections: list[str] | None = None,
    *,
    near: bool = True,
    progress: bool = False,
) -> Report:
    """Every check (module docstring); ``collections``: only these (default: run.collections
    and, when RESET runs models, run.reset)."""
    problems, cfg, raw = check_params(Path(params))
    report = Report(params=problems)
    if not raw:
        return report
    report.params += check_reset(raw, cfg)
    reset_images = _names(raw, "run", "reset") if cfg is not None and list(cfg.reset.models) else []
    names = collection_names(raw) if collections is None else list(collections)
    for name in names:
        report.collections.append(
            check_one_collection(name, raw, cfg, near=near, progress=progress, where=str(params))
        )
    for name in reset_images if collections is None else []:
        report.collections.append(
            check_one_collection(
                name, raw, cfg, labels=False, near=near, progress=progress, where=str(params)
            )
        )
    return report


def format_report(report: Report, seconds: float | None = None) -> str:
    """Every problem, then the summary: images, duplicates, labelsets, queries."""
    lines = [str(p) for p in report.problems]
    if lines:
        lines.append("")
    lines.append("summary:")
    for c in report.collections:
        s = c.summary()
        if s["images"] is None:
            lines.append(f"  {c.name}: no images")
            continue
        near = s["near_duplicates"]
        dup = f"{len(s['exact_duplicates'])} exact-duplicate group(s)"
        dup += ", near duplicates not looked for" if near is None else f", {len(near)} near"
        sets = ", ".join(f"{k} {v} queries" for k, v in s["labelsets"].items()) or "no labels"
        lines.append(
            f"  {c.name}: {s['images']} images ({len(s['unreadable'])} unreadable), {dup}; "
            f"labelsets: {sets}"
        )
    took = f" in {seconds:.1f} s" if seconds is not None else ""
    lines.append(f"{report.errors} error(s), {report.warnings} warning(s){took}")
    return "\n".join(lines)


def main(
    params: Path = typer.Option(config.DEFAULT, help="Parameters file."),
    collection: list[str] = typer.Option(
        None,
        help="Check only this collection (repeat for several).",
        show_default="run.collections and run.reset",
    ),
    near: bool = typer.Option(
        True, help="Look for near duplicates (a thumbnail decode per image; --no-near: skip)."
    ),
) -> None:
    """Check params.yaml, the collections, their images and labels, with no model loaded:
    every problem at once. Exit status 1 on errors, 0 on warnings only."""
    start = time.perf_counter()
    report = run_checks(params, collection or None, near=near, progress=sys.stderr.isatty())
    typer.echo(format_report(report, time.perf_counter() - start))
    if report.errors:
        raise typer.Exit(1)
