"""The weights lock: ``weights.lock.yaml`` (committed, next to params.yaml) holds the hub
commit of each hub model's weights.

A model's first run records the commit its revision (``main`` unless its params entry names
another) points to then; every later run loads exactly that commit (`pinned_entry`, applied
by `kisbench.models.model_entry`), however the hub's ``main`` moves meanwhile. The lock is
part of each model's cache key (`ensure`, called once per ``dvc repro``), so DVC reruns a
model whose locked commit changes. ``kisbench weights update`` moves it on purpose.

Not lockable, so never in the file: local folders (the tiny models, ``local-dir:``) and
``blip2_lavis``, whose LAVIS code downloads fixed URLs that have no commit.

Light on purpose (no torch, no model library): the cache-key stage calls `ensure` before
every embed stage, and an entry already locked costs a file read, no network.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import constants

from kisbench.errors import ModelError
from kisbench.files import write_text
from kisbench.models import hub, registry, weights
from kisbench.models.spec import ModelSpec

DEFAULT = Path("weights.lock.yaml")
UPDATE_COMMAND = "kisbench weights update"
MAIN = "main"
RESOLVE_TIMEOUT_S = 10.0
_COMMIT = re.compile(r"[0-9a-f]{40}")

HEADER = f"""\
# The Hugging Face hub commit of each hub model's weights (kisbench/models/lock.py).
# A model's first run records the commit its revision (main unless params.yaml names
# another) points to; every later run loads exactly this commit, and DVC reruns a model's
# stages when its entry here changes. Commit this file with params.yaml.
# Update on purpose: `{UPDATE_COMMAND} [MODEL ...]` (all hub models if none), then
# `dvc repro`; `kisbench weights show` compares the locks with the hub's main.
# Never locked: local folders (the tiny models) and blip2_lavis (LAVIS downloads fixed
# URLs, which have no commit).
"""


def is_commit(revision: object) -> bool:
    return isinstance(revision, str) and _COMMIT.fullmatch(revision) is not None


def hub_repo(spec: ModelSpec) -> str | None:
    """The hub repository whose commit pins the model's weights; None for local folders,
    local checkpoint files, ``blip2_lavis`` and open_clip tags that open_clip does not place
    on the hub.

    Only the weights' repository counts: the separate tokenizer repository some SigLIP
    configs name is loaded at its ``main`` (open_clip takes no revision for it).
    """
    family = registry.family_of(spec)  # a bad entry fails here, naming its mistake
    if family.name == "open_clip":
        name = str(spec.require("model"))
        if name.startswith(weights.LOCAL_DIR):
            return None
        if name.startswith(weights.HF_HUB):
            return name.removeprefix(weights.HF_HUB).strip("/")
        pretrained = spec.args.get("pretrained")
        if not pretrained or Path(str(pretrained)).is_file():
            return None
        tagged = _open_clip_hub_path(name, str(pretrained))
        return weights.split_hub_path(tagged)[0] if tagged else None
    if family.needs is weights.transformers_needs:  # align, blip2_hf: `source` is the repo
        source = str(spec.require("source"))
        return None if weights.is_local_source(source) else source
    return None


def _open_clip_hub_path(name: str, tag: str) -> str | None:
    """open_clip's hub path of a pretrained tag: from `weights.OPEN_CLIP_TAGS` (the params
    presets, no import), else from open_clip's own table, so that every model of
    ``open_clip_all`` is locked too (importing open_clip takes seconds, once)."""
    known = weights.OPEN_CLIP_TAGS.get((name, tag))
    if known is not None:
        return known
    import open_clip

    return open_clip.get_pretrained_cfg(name, tag).get("hf_hub") or None


def requested(spec: ModelSpec) -> str | None:
    """The entry's own ``revision:`` (YAML may read an all-digit commit as a number)."""
    revision = spec.args.get("revision")
    return None if revision in (None, "") else str(revision)


# -- the file ------------------------------------------------------------------------------


def read(path: Path = DEFAULT) -> dict[str, dict[str, str]]:
    """The lock's entries (model key -> repo, revision and, if not main, ref); a missing
    file locks nothing."""
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ModelError(f"{path} is not valid YAML ({err}); restore it from git") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ModelError(f"{path} must map model keys to {{repo, revision}}; restore it from git")
    lock: dict[str, dict[str, str]] = {}
    for key, entry in data.items():
        ok = (
            isinstance(entry, dict)
            and isinstance(entry.get("repo"), str)
            and is_commit(entry.get("revision"))
            and set(entry) <= {"repo", "revision", "ref"}
        )
        if not ok:
            raise ModelError(
                f"{path}: entry {key!r} must be {{repo: ORG/NAME, revision: <40-hex commit>}} "
                f"(got {entry!r}); delete it and run `{UPDATE_COMMAND} {key}`"
            )
        lock[str(key)] = {k: str(v) for k, v in entry.items()}
    return lock


def write(path: Path, lock: dict[str, dict[str, str]]) -> None:
    """Write the lock atomically: the header (regenerated, so it never goes stale), then the
    entries in key order, each as repo, revision[, ref], so that diffs show only changes."""
    entries = {
        key: {f: lock[key][f] for f in ("repo", "revision", "ref") if f in lock[key]}
        for key in sorted(lock)
    }
    body = yaml.safe_dump(entries, sort_keys=False, default_flow_style=False) if entries else ""
    write_text(Path(path), HEADER + body)


def _entry(repo: str, commit: str, ref: str | None) -> dict[str, str]:
    # `ref` is kept only when it says something: the name the commit was resolved from, when
    # that is not main (a commit pinned in params is its own ref).
    entry = {"repo": repo, "revision": commit}
    if ref is not None and ref != MAIN and not is_commit(ref):
        entry["ref"] = ref
    return entry


# -- resolving a revision to a commit ---------------------------------------------------------


def cached_ref(repo: str, revision: str) -> str | None:
    """What the local hub cache's ``refs/<revision>`` says (written by the last download at
    that revision), or None."""
    folder = Path(constants.HF_HUB_CACHE) / f"models--{repo.replace('/', '--')}" / "refs"
    try:
        commit = (folder / revision).read_text(encoding="utf-8").strip()
    except (OSError, ValueError):
        return None
    return commit if is_commit(commit) else None


class Resolver:
    """Asks the hub what a revision is now, or the local cache when the hub cannot be
    asked; whether it can is probed once per resolver, lazily (a locked model never asks)."""

    def __init__(self) -> None:
        self._online: bool | None = None

    def online(self) -> bool:
        if self._online is None:
            offline = hub.hub_offline() or constants.HF_HUB_OFFLINE
            self._online = not offline and hub.reachable(hub.endpoint())
        return self._online

    def resolve(self, repo: str, revision: str) -> str | None:
        if is_commit(revision):
            return revision
        if self.online():
            from huggingface_hub import HfApi
            from huggingface_hub.errors import (
                GatedRepoError,
                HfHubHTTPError,
                RepositoryNotFoundError,
                RevisionNotFoundError,
            )

            # The hub client's transport errors depend on its version (requests: OSErrors;
            # httpx: not); HfHubHTTPError derives from that version's base error.
            unanswered = (OSError, *HfHubHTTPError.__bases__)
            try:
                info = HfApi(endpoint=hub.endpoint()).model_info(
                    repo, revision=revision, timeout=RESOLVE_TIMEOUT_S
                )
                sha = info.sha
            except RevisionNotFoundError as err:
                raise ModelError(f"hub repository {repo} has no revision {revision!r}") from err
            except GatedRepoError as err:
                raise ModelError(
                    f"hub repository {repo} is gated: accept its terms on the hub, then log in "
                    "with `hf auth login`"
                ) from err
            except RepositoryNotFoundError as err:
                raise ModelError(
                    f"hub repository {repo} not found (or private: log in with `hf auth login`)"
                ) from err
            except unanswered:
                sha = None  # the hub answered the probe but not this: the cache may know
            if is_commit(sha):
                return sha
        return cached_ref(repo, revision)


def resolve(spec: ModelSpec, revision: str = MAIN) -> str | None:
    """The commit ``revision`` of the model's hub repository points to: asked of the hub,
    or read from the local cache's ``refs/<revision>`` when offline (HF_HUB_OFFLINE) or
    when the hub does not answer; None if neither knows, or for a model not on the hub."""
    repo = hub_repo(spec)
    return None if repo is None else Resolver().resolve(repo, revision)


# -- using the lock ----------------------------------------------------------------------


def _conflict(key: str, spec: ModelSpec, repo: str, locked: dict[str, str], path: Path) -> None:
    """Raise when the params entry no longer agrees with its lock entry: a changed repo, a
    pinned commit or named revision other than the locked one. Params are not silently
    re-locked: moving a lock is `update`'s job, done on purpose."""
    fix = f"run `{UPDATE_COMMAND} {key}` to lock what params.yaml asks for"
    if locked["repo"] != repo:
        raise ModelError(
            f"model {key!r}: params.yaml names hub repository {repo} but {path} locks "
            f"{locked['repo']}@{locked['revision']}; {fix}"
        )
    pin = requested(spec)
    if pin is None:
        return
    if is_commit(pin):
        if pin != locked["revision"]:
            raise ModelError(
                f"model {key!r}: params.yaml pins revision {pin} but {path} locks "
                f"{locked['revision']}; {fix}, or remove `revision:` from params.yaml to "
                "load the locked commit"
            )
    elif locked.get("ref", MAIN) != pin:
        raise ModelError(
            f"model {key!r}: params.yaml asks for revision {pin!r} but {path} locks "
            f"{locked['revision']}, resolved from {locked.get('ref', MAIN)!r}; {fix}"
        )


def _spec(models: dict[str, dict[str, Any]], key: str) -> ModelSpec:
    if key not in models:
        raise ModelError(f"unknown model key {key!r}; params.yaml defines: {', '.join(models)}")
    return ModelSpec.from_params(key, models[key])


def ensure(
    models: dict[str, dict[str, Any]], keys: Iterable[str], path: Path = DEFAULT
) -> dict[str, str | None]:
    """Each model's locked commit (None: not a hub model, or neither the hub nor the cache
    knows its revision yet). A hub model without a lock entry is locked now, at the commit
    its params ``revision:`` (default main) points to, and the file rewritten, only when
    something was added. Raises `ModelError` when params and lock disagree."""
    path = Path(path)
    lock = read(path)
    asker = Resolver()
    added = False
    out: dict[str, str | None] = {}
    for key in keys:
        spec = _spec(models, key)
        repo = hub_repo(spec)
        if repo is None:  # an entry of a model now local stays, unused, for when it goes back
            out[key] = None
            continue
        if key in lock:
            _conflict(key, spec, repo, lock[key], path)
            out[key] = lock[key]["revision"]
            continue
        ref = requested(spec) or MAIN
        commit = asker.resolve(repo, ref)
        out[key] = commit
        if commit is not None:
            lock[key] = _entry(repo, commit, ref)
            added = True
    if added:
        write(path, lock)
    return out


def pinned_entry(key: str, entry: dict[str, Any], path: Path = DEFAULT) -> dict[str, Any]:
    """``entry`` with ``revision`` set to its locked commit: the commit every stage loads.
    An entry that pins a commit itself keeps it (it must equal the lock's); one that is not
    locked, or not a hub model, is returned as it is."""
    path = Path(path)
    locked = read(path).get(key)
    if locked is None:
        return entry
    spec = ModelSpec.from_params(key, entry)
    repo = hub_repo(spec)
    if repo is None:
        return entry
    _conflict(key, spec, repo, locked, path)
    if is_commit(requested(spec)):
        return entry
    return {**entry, "revision": locked["revision"]}


def update(
    models: dict[str, dict[str, Any]],
    keys: Iterable[str],
    path: Path = DEFAULT,
    revision: str = MAIN,
) -> dict[str, tuple[str | None, str | None]]:
    """Re-resolve the models' revisions and rewrite their lock entries, on purpose: each
    model's params ``revision:`` if it has one, else ``revision``. Returns key -> (old, new)
    commit for each hub model; new is None where neither the hub nor the cache knows the
    revision (that entry is left as it was). Models not on the hub are skipped."""
    path = Path(path)
    lock = read(path)
    asker = Resolver()
    changes: dict[str, tuple[str | None, str | None]] = {}
    for key in keys:
        spec = _spec(models, key)
        repo = hub_repo(spec)
        if repo is None:
            continue
        old = lock.get(key, {}).get("revision")
        ref = requested(spec) or revision
        commit = asker.resolve(repo, ref)
        changes[key] = (old, commit)
        if commit is not None:
            lock[key] = _entry(repo, commit, ref)
    if any(new is not None for _, new in changes.values()) or not path.exists():
        write(path, lock)
    return changes


def hub_models(models: dict[str, dict[str, Any]]) -> list[str]:
    """The keys of the params models that are lockable (on the hub)."""
    return [key for key in models if hub_repo(ModelSpec.from_params(key, models[key]))]
