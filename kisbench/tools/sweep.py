"""`kisbench models` (list a group's keys, add the generated open_clip_all entries) and
`kisbench sweep` (embed many models one at a time, surviving the broken ones).

Why one at a time, and how. DVC's stage matrix takes ``run.models`` as it is, and one
`dvc repro` stops at the first failed stage, so a sweep over 150 checkpoints would stop at
the first one that cannot load. The sweep therefore sets ``run.models`` to one key at a time
(a text edit of params.yaml, put back byte for byte after each model, as is dvc.lock at the
end) and runs `dvc repro` of that model's embed stages (with ``code-keys`` and
``check@<collection>`` before them). Measured on the smoke workspace, `dvc exp run --temp`
does not work for the tiny models: its temporary copy holds only the files git sees, and
their folders (``data/models/``) are git-ignored; `dvc repro` in the workspace does.

Each model's embeddings land in the DVC cache and its run cache, so the final
`dvc exp run -S 'run.models=[the ok keys]'` (printed, or run with ``--evaluate``) restores
them without embedding again, and evaluates them together. The status of every model (ok,
failed with the last error line of its log, skipped when the sweep was stopped before it)
goes to ``metrics/sweep.csv`` and ``reports/sweep.md``; a re-run skips the models that are
ok with the same entry and collections, and retries the rest.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import typer
import yaml

from kisbench import config, files, layout
from kisbench.cli import PARAMS, clear_errors, command_line
from kisbench.config.groups import OPEN_CLIP_ALL, expand
from kisbench.errors import InputError
from kisbench.tools import catalog

STATUS_CSV = Path("metrics/sweep.csv")
STATUS_MD = Path("reports/sweep.md")
LOGS = Path(".dvc/tmp/sweep")  # one log per model (DVC's tmp folder: git-ignored)
COLUMNS = ["key", "status", "reason", "parameters", "seconds", "collections", "entry", "finished"]
OK, FAILED, SKIPPED = "ok", "failed", "skipped"

models_app = command_line(
    help="Model groups: list their keys, add the generated open_clip_all entries.",
    no_args_is_help=True,
)


# ---------------------------------------------------------------------------------------
# groups


def _builtin(models: Mapping[str, Any]) -> dict[str, Callable[[], list[str]]]:
    return {OPEN_CLIP_ALL: lambda: [p.key for p in catalog.open_clip_all(models)]}


def expand_names(names: list[str], cfg: config.Config) -> list[str]:
    """Group names and model keys of ``cfg`` to model keys (open_clip_all from the
    installed open_clip, whether or not its entries are in the file yet)."""
    return expand(names, cfg.groups, cfg.models, _builtin(cfg.models))


@models_app.command("list")
@clear_errors
def list_models(
    names: list[str] = typer.Argument(
        None, metavar="[GROUP|KEY]...", help="Groups or keys (default: every group)."
    ),
    params: Path = PARAMS,
) -> None:
    """Print the model keys of groups, one a line (without arguments: each group and its
    size). open_clip_all: every image-text model of the installed open_clip, one per weight
    file; a key that is not in `models` yet is marked `(not in models: kisbench models add
    open_clip_all)`."""
    cfg = config.load_params(params)
    if not names:
        for name, members in cfg.groups.items():
            typer.echo(f"{name}: {len(members)} models")
        pairs = catalog.open_clip_all(cfg.models)
        typer.echo(
            f"{OPEN_CLIP_ALL}: {len(pairs)} models (open_clip {catalog.open_clip_version()}, "
            "one per weight file; built in)"
        )
        return
    for key in expand_names(names, cfg):
        typer.echo(key if key in cfg.models else f"{key}  (not in models: {_ADD})")
    if OPEN_CLIP_ALL in names:
        typer.echo(
            f"# {OPEN_CLIP_ALL}: open_clip {catalog.open_clip_version()}, "
            f"{len(catalog.open_clip_all(cfg.models))} models after de-duplication of "
            f"{_pair_count()} (model, pretrained) pairs",
            err=True,
        )


_ADD = f"kisbench models add {OPEN_CLIP_ALL}"


def _pair_count() -> int:
    import open_clip

    return len(open_clip.list_pretrained())


@models_app.command("add")
@clear_errors
def add(
    group: str = typer.Argument(OPEN_CLIP_ALL, help="The generated group (only open_clip_all)."),
    params: Path = PARAMS,
    remove: bool = typer.Option(False, "--remove", help="Remove the generated block instead."),
) -> None:
    """Write the entries of open_clip_all into params.yaml `models`, between two marker
    comments (replaced when run again; the rest of the file is left byte for byte). Its
    weights that a hand-written entry already loads keep that entry's key."""
    if group != OPEN_CLIP_ALL:
        raise InputError(f"only {OPEN_CLIP_ALL} is generated; {group!r} is written by hand")
    text = Path(params).read_text(encoding="utf-8")
    if remove:
        new = catalog.remove_block(text, group)
        # refused, not written, while run.models or a group still names a generated key
        config.parse(yaml.safe_load(new), source=f"{params} without the {group} block")
        files.write_text(Path(params), new)
        typer.echo(f"{params}: the {group} block removed")
        return
    cfg = config.load_params(params)
    pairs = catalog.open_clip_all(cfg.models)
    version = catalog.open_clip_version()
    new = catalog.write_block(text, group, pairs, version)
    config.parse(yaml.safe_load(new), source=f"{params} with the {group} block")
    files.write_text(Path(params), new)
    own = sum(p.key.startswith(catalog.PREFIX) for p in pairs)
    typer.echo(
        f"{params}: {group}: open_clip {version}, {_pair_count()} (model, pretrained) pairs, "
        f"{len(pairs)} weight files: {own} generated entries, {len(pairs) - own} already "
        "hand-written"
    )


# ---------------------------------------------------------------------------------------
# parameter counts without weights


def parameter_count(entry: Mapping[str, Any]) -> int | None:
    """The model's parameter count, built on torch's meta device (no weights, no memory);
    None when the architecture cannot be known offline (a hub config not in the cache, a
    LAVIS model, whose library lives in its own virtualenv)."""
    try:
        family = entry.get("family")
        if family == "open_clip":
            module = _open_clip_meta(entry)
        elif family in ("align", "blip2_hf"):
            module = _transformers_meta(str(entry["source"]), family)
        else:
            return None
        return None if module is None else int(sum(p.numel() for p in module.parameters()))
    # An unknown size is an answer (the model then runs after the known ones): a config not
    # in the cache, an architecture that does not build on the meta device.
    except (ImportError, OSError, KeyError, ValueError, TypeError, RuntimeError, AttributeError):
        return None


def _open_clip_meta(entry: Mapping[str, Any]) -> Any:
    """open_clip's own factory, weights left out: the config of a tag, a local folder or a
    cached hub repo (not in the cache: an OSError, so unknown)."""
    import open_clip
    import torch

    with torch.device("meta"):
        return open_clip.create_model(
            str(entry["model"]),
            pretrained=None,
            load_weights=False,
            pretrained_text=False,  # a Hugging Face text tower from its config alone
            device="meta",
        )


def _transformers_meta(source: str, family: str) -> Any:
    import torch
    import transformers

    cfg = transformers.AutoConfig.from_pretrained(source, local_files_only=True)
    with torch.device("meta"):
        if family == "blip2_hf":
            return transformers.Blip2ForImageTextRetrieval(cfg)
        return transformers.AutoModel.from_config(cfg)


@contextlib.contextmanager
def offline() -> Iterator[None]:
    """The hub cache only, for this process, for a while: counting parameters must not
    download (nor wait for retries): an uncached config is an unknown size."""
    from huggingface_hub import constants

    saved = os.environ.get("HF_HUB_OFFLINE"), constants.HF_HUB_OFFLINE
    os.environ["HF_HUB_OFFLINE"] = "1"
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        if saved[0] is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = saved[0]
        constants.HF_HUB_OFFLINE = saved[1]


def order_largest(keys: list[str], sizes: Mapping[str, int | None]) -> list[str]:
    """Largest first (ties and unknown sizes in the given order, unknown ones last)."""
    return sorted(keys, key=lambda k: (sizes.get(k) is None, -(sizes.get(k) or 0)))


# ---------------------------------------------------------------------------------------
# params.yaml, temporarily


def set_run_list(text: str, name: str, values: list[str]) -> str:
    """``text`` with ``run.<name>`` set to ``values``: the key's line and its continuation
    lines replaced by one flow list, every other line untouched."""
    lines = text.splitlines(keepends=True)
    try:
        start = next(i for i, line in enumerate(lines) if line.rstrip() == "run:")
    except StopIteration:
        raise InputError("params file: no top-level `run:` section") from None
    for i in range(start + 1, len(lines)):
        line = lines[i]
        if line[:1] not in ("", " ", "\n", "#"):
            break  # the next section
        if re.match(rf"  {re.escape(name)}:", line):
            value = line.split(":", 1)[1].split("#", 1)[0].strip()
            j = i + 1
            if value.startswith("["):  # a flow list, perhaps over several lines
                while j < len(lines) and "]" not in lines[j - 1].split("#", 1)[0]:
                    j += 1
            elif not value:  # a block list: "  - item" or deeper lines
                while j < len(lines) and re.match(r"(  - |   +\S)", lines[j]):
                    j += 1
            new = f"  {name}: [{', '.join(values)}]  # kisbench sweep (put back after)\n"
            return "".join([*lines[:i], new, *lines[j:]])
    raise InputError(f"params file: no `run.{name}` to set")


def fingerprint(entry: Mapping[str, Any], collections: list[str]) -> str:
    """What makes an earlier ok stand: the model's entry and the collections."""
    data = json.dumps({"entry": entry, "collections": sorted(collections)}, sort_keys=True)
    return hashlib.sha256(data.encode()).hexdigest()[:12]


def last_error(log: str) -> str:
    """The reason of a failure: the last ``error:`` line a stage printed (the project's clear
    errors), else DVC's last ``ERROR:`` line, else the log's last line."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    for pattern in (r"^error: ", r"^ERROR: ", r"(Error|Exception)\b"):
        found = [line for line in lines if re.search(pattern, line)]
        if found:
            return found[-1][:400]
    return lines[-1][:400] if lines else "no output"


def dvc_env() -> dict[str, str]:
    """DVC runs with this virtualenv's python first, without analytics (hub access as the
    user has it: HF_HUB_OFFLINE is passed through, not forced)."""
    bin_dir = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "DVC_NO_ANALYTICS": "1",
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
    }


@dataclass
class Row:
    key: str
    status: str
    reason: str = ""
    parameters: int | None = None
    seconds: float | None = None
    collections: str = ""
    entry: str = ""
    finished: str = ""


def read_status(path: Path = STATUS_CSV) -> dict[str, Row]:
    if not path.is_file():
        return {}
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    out = {}
    for rec in table.to_dict("records"):
        rec = {c: rec.get(c, "") for c in COLUMNS}
        out[rec["key"]] = Row(
            key=rec["key"],
            status=rec["status"],
            reason=rec["reason"],
            parameters=int(rec["parameters"]) if rec["parameters"] else None,
            seconds=float(rec["seconds"]) if rec["seconds"] else None,
            collections=rec["collections"],
            entry=rec["entry"],
            finished=rec["finished"],
        )
    return out


def _count(n: int | None) -> str:
    """A parameter count for people: 151.3 M, 2.54 B, 45.4 k."""
    if n is None:
        return ""
    if n >= 1e9:
        return f"{n / 1e9:.2f} B"
    return f"{n / 1e6:.1f} M" if n >= 1e6 else f"{n / 1e3:.1f} k"


def write_status(
    rows: list[Row], command: str, csv: Path = STATUS_CSV, md: Path = STATUS_MD
) -> None:
    """The status table: CSV for tools, Markdown for people."""
    table = pd.DataFrame([asdict(r) for r in rows], columns=COLUMNS)
    table["parameters"] = table["parameters"].astype("Int64")
    files.write_csv(csv, table, index=False)
    counts = {s: sum(r.status == s for r in rows) for s in (OK, FAILED, SKIPPED)}
    out = [
        "# Sweep status",
        "",
        f"Written by `kisbench sweep` ({csv}); {counts[OK]} ok, {counts[FAILED]} failed, "
        f"{counts[SKIPPED]} skipped. Re-running the sweep retries the failed and skipped ones. "
        "Evaluate the ok ones together:",
        "",
        f"    {command}",
        "",
        "| model | status | parameters | seconds | collections | reason |",
        "|---|---|---:|---:|---|---|",
    ]
    for r in rows:
        reason = r.reason.replace("|", "\\|")
        secs = "" if r.seconds is None else f"{r.seconds:.0f}"
        out.append(
            f"| {r.key} | {r.status} | {_count(r.parameters)} | {secs} | {r.collections} | "
            f"{reason} |"
        )
    files.write_text(md, "\n".join(out) + "\n")


def remove_hub_weights(repos: set[str], cache_dir: Path | None = None) -> int:
    """Delete these model repos from the Hugging Face cache (every revision); the bytes
    freed. Only the repos named: a tokenizer repo that other models share stays."""
    from huggingface_hub import scan_cache_dir

    if not repos:
        return 0
    info = scan_cache_dir(cache_dir)
    revisions = [
        rev.commit_hash
        for repo in info.repos
        if repo.repo_type == "model" and repo.repo_id in repos
        for rev in repo.revisions
    ]
    if not revisions:
        return 0
    strategy = info.delete_revisions(*revisions)
    strategy.execute()
    return int(strategy.expected_freed_size)


def weight_repos(key: str, collections: list[str]) -> set[str]:
    """The hub repos that a model's meta.json provenance names as its weights."""
    repos: set[str] = set()
    for collection in collections:
        meta = layout.features_dir(key, collection) / "meta.json"
        if not meta.is_file():
            continue
        weights = json.loads(meta.read_text(encoding="utf-8")).get("weights") or {}
        if weights.get("source") == "hf-hub" and isinstance(weights.get("repo"), str):
            repos.add(weights["repo"])
    return repos


def evaluate_command(keys: list[str]) -> str:
    return f"dvc exp run -S 'run.models=[{','.join(keys)}]'"


def model_stages(key: str, collections: list[str], dvc_yaml: Path = Path("dvc.yaml")) -> list[str]:
    """The stages of one model: every stage of dvc.yaml whose matrix is run.models x
    run.collections (embed-images, embed-queries, rank, ...), so that the model's weights
    are needed by none of the later stages (``--remove-weights``)."""
    stages = yaml.safe_load(dvc_yaml.read_text(encoding="utf-8")).get("stages") or {}
    names = [
        name
        for name, stage in stages.items()
        if isinstance(stage.get("matrix"), Mapping)
        and list(stage["matrix"]) == ["model", "collection"]
        and stage["matrix"]["model"] == "${run.models}"
    ]
    if not names:
        raise InputError(f"{dvc_yaml}: no stage with the matrix run.models x run.collections")
    return [f"{name}@{key}-{c}" for c in collections for name in names]


def run_one(
    key: str, collections: list[str], original: str, params: Path, log: Path
) -> tuple[bool, str]:
    """Embed one model on the collections through DVC; (ok, reason)."""
    text = set_run_list(original, "models", [key])
    if collections:
        text = set_run_list(text, "collections", collections)
    targets = model_stages(key, collections)
    files.write_text(params, text)
    try:
        with log.open("w", encoding="utf-8") as out:
            proc = subprocess.run(
                [str(Path(sys.executable).parent / "dvc"), "repro", *targets],
                env=dvc_env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
            )
    finally:
        if params.read_text(encoding="utf-8") == text:
            files.write_text(params, original)
        else:
            typer.echo(f"warning: {params} was edited during the sweep; left as it is", err=True)
    if proc.returncode == 0:
        return True, ""
    return False, last_error(log.read_text(encoding="utf-8", errors="replace"))


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@clear_errors
def main(
    names: list[str] = typer.Argument(..., metavar="GROUP|KEY...", help="Groups or model keys."),
    collection: list[str] = typer.Option(
        None, "--collection", metavar="C", help="Collection (repeat; default: run.collections)."
    ),
    order: str = typer.Option(
        "largest", help="largest: most parameters first (counted without weights); given."
    ),
    remove_weights: bool = typer.Option(
        False,
        "--remove-weights",
        help="Delete each model's weights from the Hugging Face cache once its embeddings are "
        "written (the repos its meta.json names), so that a sweep fits a small disk.",
    ),
    evaluate: bool = typer.Option(
        False,
        "--evaluate",
        help="Then run the printed `dvc exp run -S run.models=[ok keys]` (in the workspace: "
        "DVC rewrites params.yaml, as a plain `dvc exp run -S` does).",
    ),
) -> None:
    """Embed every model of the groups or keys through DVC, one at a time: a model that
    fails does not stop the others. Ends with the status table (metrics/sweep.csv,
    reports/sweep.md; logs in .dvc/tmp/sweep/) and the command that evaluates the ok ones
    together. Run again, it retries only what failed or was skipped."""
    if order not in ("largest", "given"):
        raise InputError(f"--order: largest or given, not {order!r}")
    params = config.DEFAULT  # the file that DVC reads, in the repository root
    cfg = config.load_params(params)
    # `kill` as Ctrl-C: params.yaml is put back and the table written either way.
    signal.signal(signal.SIGTERM, _interrupt)
    keys = expand_names(names, cfg)
    missing = [k for k in keys if k not in cfg.models]
    if missing:
        hint = f"; run `{_ADD}` first" if any(k.startswith(catalog.PREFIX) for k in missing) else ""
        raise InputError(f"not in {params} `models`: {', '.join(missing)}{hint}")
    collections = list(collection or cfg.run.collections)
    earlier = read_status()
    todo, rows = [], {}
    for key in keys:
        stamp = fingerprint(cfg.models[key], collections)
        row = earlier.get(key)
        if row is not None and row.status == OK and row.entry == stamp:
            rows[key] = row
        else:
            todo.append(key)
    sizes: dict[str, int | None] = {}
    from tqdm import tqdm

    with offline():
        logging.disable(logging.WARNING)  # open_clip's "no pretrained weights loaded"
        try:
            for key in tqdm(todo, desc="parameter counts", unit="model", disable=len(todo) < 5):
                sizes[key] = parameter_count(cfg.models[key])
        finally:
            logging.disable(logging.NOTSET)
    if order == "largest":
        todo = order_largest(todo, sizes)
    typer.echo(
        f"sweep: {len(keys)} models, {len(keys) - len(todo)} ok from an earlier sweep, "
        f"{len(todo)} to run on {', '.join(collections)}"
    )
    original = params.read_text(encoding="utf-8")
    lock = Path("dvc.lock")
    lock_bytes = lock.read_bytes() if lock.is_file() else None
    LOGS.mkdir(parents=True, exist_ok=True)
    stopped = False
    try:
        for i, key in enumerate(todo, 1):
            stamp = fingerprint(cfg.models[key], collections)
            base = Row(key, SKIPPED, "", sizes.get(key), None, " ".join(collections), stamp)
            if stopped:
                rows[key] = Row(**{**asdict(base), "reason": "the sweep was stopped before it"})
                continue
            typer.echo(f"[{i}/{len(todo)}] {key} ({_count(sizes.get(key)) or 'size unknown'})")
            start = time.perf_counter()
            try:
                ok, reason = run_one(key, collections, original, params, LOGS / f"{key}.log")
            except KeyboardInterrupt:
                stopped = True
                rows[key] = Row(**{**asdict(base), "reason": "interrupted"})
                continue
            row = Row(
                key,
                OK if ok else FAILED,
                reason,
                sizes.get(key),
                round(time.perf_counter() - start, 1),
                " ".join(collections),
                stamp,
                datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            )
            rows[key] = row
            typer.echo(f"    {row.status}{': ' + reason if reason else ''}")
            if ok and remove_weights:
                freed = remove_hub_weights(weight_repos(key, collections))
                typer.echo(f"    weights removed from the hub cache: {freed / 1e9:.2f} GB")
    finally:
        if lock_bytes is None:
            lock.unlink(missing_ok=True)
        else:
            lock.write_bytes(lock_bytes)
        ordered = [rows[k] for k in keys if k in rows]
        ordered += [r for k, r in earlier.items() if k not in rows]  # other sweeps' models
        ok_keys = [r.key for r in ordered if r.status == OK and r.key in keys]
        command = evaluate_command(ok_keys)
        write_status(ordered, command)
    counts = {s: sum(rows[k].status == s for k in keys) for s in (OK, FAILED, SKIPPED)}
    typer.echo(
        f"sweep: {counts[OK]} ok, {counts[FAILED]} failed, {counts[SKIPPED]} skipped: "
        f"{STATUS_CSV}, {STATUS_MD}"
    )
    typer.echo(f"evaluate the ok ones together: {command}")
    if stopped:
        raise typer.Exit(130)
    if evaluate and ok_keys:
        proc = subprocess.run(
            [str(Path(sys.executable).parent / "dvc"), *shlex.split(command)[1:]], env=dvc_env()
        )
        raise typer.Exit(proc.returncode)
    if counts[FAILED]:
        raise typer.Exit(1)
