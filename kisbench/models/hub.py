"""Weights on the Hugging Face hub (or a URL): cached or not, which commit, and a quick
offline verdict.

Light on purpose (no torch, no model library): model stages call it before importing
anything heavy, so that a machine without network and without cached weights fails in a
second or two, with a message that says what to do, instead of after the hub client's
~95 s of retries.
"""

from __future__ import annotations

import os
import re
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huggingface_hub import constants, hf_hub_download, try_to_load_from_cache
from huggingface_hub.errors import EntryNotFoundError

from kisbench.errors import ModelError

PROBE_TIMEOUT_S = 2.0
# Cache blobs are named by their hash: sha256 for large (LFS) files, git's sha1 for small ones.
_BLOB = re.compile(r"^([0-9a-f]{64}|[0-9a-f]{40})$")


@dataclass(frozen=True)
class HubFile:
    """One file a model needs from a hub repository; ``names`` are alternatives (any one
    suffices, e.g. a ``.safetensors`` file or its ``.bin`` twin)."""

    repo_id: str
    names: tuple[str, ...]
    revision: str | None = None

    def cached(self) -> Path | None:
        for name in self.names:
            path = try_to_load_from_cache(self.repo_id, name, revision=self.revision)
            if isinstance(path, str):
                return Path(path)
        return None

    def describe(self) -> str:
        rev = f"@{self.revision}" if self.revision else ""
        return f"{self.repo_id}{rev}: {' or '.join(self.names)} (Hugging Face hub)"


@dataclass(frozen=True)
class UrlFile:
    """A file a library downloads from a plain URL into its own cache (LAVIS checkpoints)."""

    url: str
    path: Path

    def cached(self) -> Path | None:
        return self.path if self.path.is_file() else None

    def describe(self) -> str:
        return f"{self.url} (cached as {self.path})"


Needed = HubFile | UrlFile


def hub_offline() -> bool:
    """HF_HUB_OFFLINE set (read now, not at import, so tests and callers can set it)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def go_offline() -> None:
    """Make every hub client in this process use the cache only (no network round trips):
    for when everything is cached but the hub does not answer."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    constants.HF_HUB_OFFLINE = True


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", constants.ENDPOINT).rstrip("/")


def reachable(url: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Does ``url``'s server answer at all within ``timeout`` seconds? (Any HTTP status
    counts: the question is the network, not the file.)"""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False


def _probe_url(item: Needed) -> str:
    return endpoint() if isinstance(item, HubFile) else item.url


def missing_weights_message(key: str, missing: Sequence[Needed], why: str) -> str:
    listing = "".join(f"\n  - {item.describe()}" for item in missing)
    return (
        f"model {key!r}: its weights are not cached here and cannot be downloaded ({why}). "
        f"It needs:{listing}\n"
        "Provide them in one of these ways:\n"
        "  1. run once with network access (the files are then cached), or copy a Hugging Face "
        f"cache that holds them and point HF_HOME (or HF_HUB_CACHE) at it; now: {cache_dir()};\n"
        f"  2. skip this stage: `dvc pull data/features/{key} data/queries/{key}` fetches the "
        "embeddings someone already computed from the project's DVC remote."
    )


def cache_dir() -> str:
    return os.environ.get("HF_HUB_CACHE") or str(
        Path(os.environ.get("HF_HOME", Path(constants.HF_HOME))) / "hub"
    )


def require(key: str, needed: Sequence[Needed]) -> bool:
    """Check that every needed file is cached or can be downloaded; fail fast otherwise.

    Returns True when everything is cached and the hub should not be asked at all (offline,
    or unreachable): callers then load with ``local_files_only``. Raises ``ModelError``
    naming the model, the files and how to provide them when something is missing and
    there is no network.
    """
    missing = [item for item in needed if item.cached() is None]
    offline = hub_offline()
    if not missing:
        return offline or not all(reachable(u) for u in {_probe_url(i) for i in needed})
    if offline:
        raise ModelError(missing_weights_message(key, missing, "HF_HUB_OFFLINE is set"))
    for url in sorted({_probe_url(item) for item in missing}):
        if not reachable(url):
            raise ModelError(missing_weights_message(key, missing, f"{url} does not answer"))
    return False


def snapshot_commit(path: Path | str) -> str | None:
    """The hub commit of a file in the Hugging Face cache (``.../snapshots/<commit>/...``)."""
    parts = Path(path).parts
    if "snapshots" in parts:
        i = parts.index("snapshots")
        if i + 1 < len(parts):
            return parts[i + 1]
    return None


def blob_sha256(path: Path | str) -> str | None:
    """The hash of a cached file, free: the cache names its blobs by it (sha256 for large
    files, git's sha1 for small ones)."""
    name = Path(os.path.realpath(path)).name
    return name if _BLOB.match(name) else None


def describe_files(repo_id: str, revision: str | None, paths: dict[str, Path]) -> dict[str, Any]:
    """Provenance of files loaded from the hub cache: repo, requested and resolved revision."""
    commits = {snapshot_commit(p) for p in paths.values()} - {None}
    return {
        "source": "hf-hub",
        "repo": repo_id,
        "revision_requested": revision,
        "revision": commits.pop() if len(commits) == 1 else sorted(commits) or None,
        "files": {name: blob_sha256(p) for name, p in sorted(paths.items())},
    }


def download_first(key: str, item: HubFile) -> Path:
    """The first of ``item``'s alternative files that the cache or the hub has."""
    for name in item.names:
        try:
            return Path(hf_hub_download(item.repo_id, name, revision=item.revision))
        except EntryNotFoundError:
            continue
    raise ModelError(f"model {key!r}: none of {item.describe()} is in the cache or on the hub")
