"""Where real data lives, how it is verified, and the opt-in download.

Real data goes to ``$EQUIBENCH_DATA`` (default ``~/.cache/equibench``). Nothing is downloaded
unless asked (``download=True``); offline, a missing file raises :class:`DataMissingError` saying
which file to fetch, from where, and where to put it.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import urllib.request
from pathlib import Path


class DataMissingError(FileNotFoundError):
    """A data file that is not on disk; the message says how to get it."""


class ChecksumError(ValueError):
    """A data file whose sha256 differs from the recorded one."""


def cache_dir(*parts: str) -> Path:
    """``$EQUIBENCH_DATA/<parts>`` (default ``~/.cache/equibench``), created if needed."""
    root = Path(os.environ.get("EQUIBENCH_DATA") or Path.home() / ".cache" / "equibench").expanduser()
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, sha256: str | None) -> None:
    """Raise :class:`ChecksumError` unless ``path`` has the recorded sha256 (``None``: nothing recorded)."""
    if sha256 is None:
        return
    actual = sha256_of(path)
    if actual != sha256:
        raise ChecksumError(f"{path} has sha256 {actual}, expected {sha256}: the file is corrupt or a different "
                            "version; delete it and fetch it again")


def locate(filename: str, search: list[Path], url: str | None, sha256: str | None,
           download: bool = False, cache: Path | None = None) -> Path:
    """Find ``filename`` in ``search`` folders (then ``cache``), verified; download into ``cache`` if allowed."""
    folders = [*search, cache] if cache else list(search)
    for folder in folders:
        candidate = Path(folder) / filename
        if candidate.is_file():
            verify(candidate, sha256)
            return candidate
    where = ", ".join(map(str, folders)) or "(no folder given)"
    if not download or url is None or cache is None:
        how = f"download {url} and put it at {cache / filename if cache else 'a folder passed as --data-dir'}" \
            if url else "get it from the dataset's authors"
        hint = " (or rerun with download enabled)" if url and not download else ""
        raise DataMissingError(f"data file {filename!r} not found in {where}; {how}{hint}, "
                               "or pass --data-dir pointing to the folder that holds it")
    return _download(url, cache / filename, sha256)


def _download(url: str, dest: Path, sha256: str | None) -> Path:
    tmp = dest.with_suffix(dest.suffix + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as out:
            shutil.copyfileobj(response, out)
    except OSError as exc:
        raise DataMissingError(f"could not download {url} ({exc}); fetch it by hand and put it at {dest}") from exc
    verify(tmp, sha256)
    os.replace(tmp, dest)
    return dest
