"""RESET's files and settings: reading and checking the three CSVs, the per-model distance
files that the reset-distances stage writes, and the ``reset`` section of params.yaml.

RESET (Veselý & Peška, MMM 2024) is not public; its authors hand out three files:
``participants.csv`` (index ``user_id``), ``triplet_judgements.csv`` (index ``judgement_id``)
and ``triplets.csv`` (index ``triplet_id``, with RESET's own extractors' distances in
``<X>_cosdist_query_candidate1``, ``<X>_cosdist_query_candidate2``, ``<X>_cosdist_candidates``
columns). Ids are read as strings, so that they match across files whatever they look like.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd

from kisbench import files
from kisbench.config import Config, parse_section
from kisbench.config.reset import Reset
from kisbench.errors import InputError

DISTANCE_SUFFIXES = ("cosdist_query_candidate1", "cosdist_query_candidate2", "cosdist_candidates")
PATH_COLUMNS = ("target_path", "candidate1_path", "candidate2_path")
# The thesis code wrote this distance for triplets with a missing keyframe; it must never
# reach a result as if it were a distance.
THESIS_SENTINEL = 1.11

DISTANCES_CSV = "distances.csv"
DISTANCES_INFO = "info.json"

_NEEDED = {
    "participants": ("user_id",),
    "judgements": (
        "judgement_id",
        "triplet_id",
        "user_id",
        "choice",
        "simplified_choice",
        "option_one_path",
        "option_two_path",
    ),
    "triplets": ("triplet_id", *PATH_COLUMNS, "class"),
}
_TEXT = ("user_id", "judgement_id", "triplet_id", "option_one_path", "option_two_path", "class")


def keyframe_id(path: str) -> str:
    """Collection id of a RESET keyframe path: relative path without extension
    (``06925/shot06925_31_RKF.jpg`` -> ``06925/shot06925_31_RKF``)."""
    return PurePosixPath(path).with_suffix("").as_posix()


def distance_columns(extractor: str) -> list[str]:
    return [f"{extractor}_{suffix}" for suffix in DISTANCE_SUFFIXES]


def _read(path: Path, kind: str) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"RESET {kind} file {path} not found. RESET is not public: obtain it from its "
            "authors (see docs/reset.md) and put it there, or fix the path in params.yaml "
            f"(reset.{kind})"
        )
    text_cols = {c: str for c in (*_TEXT, *PATH_COLUMNS)}
    try:
        df = pd.read_csv(path, dtype=text_cols, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as err:
        raise InputError(f"{path}: not a readable CSV file ({err})") from None
    missing = [c for c in _NEEDED[kind] if c not in df.columns]
    if missing:
        raise InputError(
            f"{path}: missing column(s) {', '.join(missing)}; RESET's {kind} file has "
            f"{', '.join(_NEEDED[kind])}"
        )
    index = _NEEDED[kind][0]
    empty = df[index].isna()
    if empty.any():
        raise InputError(f"{path}: empty {index} on line(s) {_lines(empty)}")
    dup = df[index].duplicated(keep=False)
    if dup.any():
        shown = ", ".join(repr(i) for i in df.loc[dup, index].unique()[:5])
        raise InputError(f"{path}: duplicate {index} {shown} (lines {_lines(dup)})")
    return df.set_index(index)


def _lines(mask: pd.Series) -> str:
    """CSV line numbers (header = line 1) of the true rows, at most 10 shown."""
    lines = [str(i + 2) for i in mask.to_numpy().nonzero()[0]]
    return ", ".join(lines[:10]) + (f" and {len(lines) - 10} more" if len(lines) > 10 else "")


def read_participants(path: Path) -> pd.DataFrame:
    return _read(path, "participants")


def read_judgements(path: Path) -> pd.DataFrame:
    """Judgements indexed by ``judgement_id``; choice in -2..2, simplified_choice in -1..1."""
    df = _read(path, "judgements")
    for col, lo, hi in (("choice", -2, 2), ("simplified_choice", -1, 1)):
        values = pd.to_numeric(df[col], errors="coerce")
        bad = values.isna() | (values != values.round()) | (values < lo) | (values > hi)
        if bad.any():
            raise InputError(
                f"{path}: {col} must be an integer from {lo} to {hi}; bad on line(s) {_lines(bad)}"
            )
        df[col] = values.astype(int)
    for col in ("triplet_id", "user_id", "option_one_path", "option_two_path"):
        empty = df[col].isna()
        if empty.any():
            raise InputError(f"{path}: empty {col} on line(s) {_lines(empty)}")
    return df


def read_triplets(path: Path) -> pd.DataFrame:
    """Triplets indexed by ``triplet_id``; RESET's extractor distances checked for the
    thesis' 1.11 sentinel (a sign of the thesis' extended file, not RESET's own)."""
    df = _read(path, "triplets")
    for col in PATH_COLUMNS:
        empty = df[col].isna()
        if empty.any():
            raise InputError(f"{path}: empty {col} on line(s) {_lines(empty)}")
    for extractor in paper_extractors(df, path):
        for col in distance_columns(extractor):
            values = pd.to_numeric(df[col], errors="coerce")
            text = df[col].notna() & values.isna()
            if text.any():
                raise InputError(f"{path}: {col} is not a number on line(s) {_lines(text)}")
            sentinel = values == THESIS_SENTINEL
            if sentinel.any():
                raise InputError(
                    f"{path}: {col} holds {THESIS_SENTINEL} on {int(sentinel.sum())} row(s), "
                    "the thesis' placeholder for a missing keyframe, not a distance. Use "
                    "RESET's original triplets.csv, not the thesis' extended file."
                )
            df[col] = values
    return df


def paper_extractors(triplets: pd.DataFrame, path: Path | str = "triplets") -> list[str]:
    """RESET's own extractors: every X with all three ``X_cosdist_*`` columns, in file order."""
    first, *rest = DISTANCE_SUFFIXES
    found = [c.removesuffix("_" + first) for c in triplets.columns if c.endswith("_" + first)]
    for extractor in found:
        absent = [c for c in distance_columns(extractor)[1:] if c not in triplets.columns]
        if absent:
            raise InputError(f"{path}: extractor {extractor!r} lacks column(s) {', '.join(absent)}")
    return found


@dataclass(frozen=True)
class ResetSettings:
    """The ``reset`` section of params.yaml (:class:`kisbench.config.reset.Reset`), checked against
    the models that params.yaml defines."""

    participants: Path
    judgements: Path
    triplets: Path
    models: list[str]
    ties: str
    min_judgements: int
    bootstrap: int
    seed: int

    @classmethod
    def from_params(cls, params: Config | Mapping[str, Any]) -> ResetSettings:
        """From a loaded params file or, as YAML reads one, from its ``reset`` and ``models``
        sections."""
        section: Reset
        if isinstance(params, Config):
            section, known = params.reset, params.models
        else:
            section = parse_section("reset", params.get("reset"))
            known = params.get("models") or {}
        # Empty: RESET's own extractors only, scored from the distances in triplets.csv,
        # with no keyframe image and no model (docs/reset.md "Without the keyframes").
        models = list(section.models)
        unknown = [m for m in models if m not in known]
        if unknown:
            raise InputError(
                f"params.yaml reset.models: unknown model(s) {', '.join(unknown)}; "
                f"params.yaml `models` defines: {', '.join(known)}"
            )
        return cls(
            participants=Path(section.participants),
            judgements=Path(section.judgements),
            triplets=Path(section.triplets),
            models=models,
            ties=section.ties,
            min_judgements=section.min_judgements,
            bootstrap=section.bootstrap,
            seed=section.seed,
        )


def write_distances(folder: Path, distances: pd.DataFrame, info: dict[str, Any]) -> None:
    """One model's distances (``triplet_id`` + DISTANCE_SUFFIXES columns) and info.json,
    written to a temp folder first so that a half-written result never looks complete."""
    tmp = files.temp_dir(Path(folder))
    distances.to_csv(tmp / DISTANCES_CSV, index_label="triplet_id")
    files.write_json(tmp / DISTANCES_INFO, info)
    files.commit_dir(tmp, Path(folder))


def extractors(triplets: pd.DataFrame, models: list[str], path: Path | str) -> list[str]:
    """RESET's extractors (from the triplets file) followed by this project's models."""
    paper = paper_extractors(triplets, path)
    clash = [m for m in models if m in paper]
    if clash:
        raise InputError(
            f"{path} already has distance columns for {', '.join(clash)} (the thesis' "
            "extended file?); use RESET's original triplets.csv or rename the model key"
        )
    return [*paper, *models]


def read_distances(
    folder: Path, model: str, triplet_ids: pd.Index
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """One model's distances; they must cover exactly the triplets of ``triplet_ids``."""
    folder = Path(folder)
    csv_path, info_path = folder / DISTANCES_CSV, folder / DISTANCES_INFO
    if not csv_path.is_file() or not info_path.is_file():
        raise InputError(
            f"no RESET distances for model {model!r} in {folder}; run its reset-distances "
            "stage first (`dvc repro`)"
        )
    df = pd.read_csv(csv_path, dtype={"triplet_id": str}).set_index("triplet_id")
    if not df.index.equals(triplet_ids):
        raise InputError(
            f"{csv_path} was computed for other triplets than the triplets file: rerun the "
            f"reset-distances stage of model {model!r} (`dvc repro`)"
        )
    return df[list(DISTANCE_SUFFIXES)], json.loads(info_path.read_text(encoding="utf-8"))
