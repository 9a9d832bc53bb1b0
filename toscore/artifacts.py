"""Content-addressed, checksummed artifacts, so interrupted runs resume where they stopped.

Each artifact (trained minima, a minima barcode) is a set of named numpy arrays saved
under a key: the SHA-256 of everything that determines it (configuration, a fingerprint
of the data, seeds, and the source code of the algorithms). A changed parameter gives a
new key, so a stale artifact is never reused. Writes are atomic (temporary file, then
rename) and every file has a checksum beside it; a truncated or corrupted file is
reported, deleted and recomputed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

__all__ = ["ArtifactStore", "default_store", "fingerprint_tensors", "code_fingerprint"]

logger = logging.getLogger("toscore")

# Modules whose code determines minima and barcodes; editing any of them changes every key.
_ALGORITHM_MODULES = ("barcode", "engine", "minima", "models", "objectives", "paths")


def code_fingerprint() -> str:
    """SHA-256 of the source of the modules that compute minima and barcodes."""
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parent
    for name in _ALGORITHM_MODULES:
        digest.update((package / f"{name}.py").read_bytes())
    return digest.hexdigest()


def fingerprint_tensors(*tensors: torch.Tensor) -> str:
    """SHA-256 of the dtypes, shapes and bytes of tensors (e.g. a dataset's inputs and targets)."""
    digest = hashlib.sha256()
    for tensor in tensors:
        array = tensor.detach().cpu().contiguous().numpy()
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


class ArtifactStore:
    """Folder of artifacts keyed by what determines them.

    Parameters
    ----------
    root : path
        Folder with one subfolder per artifact kind.
    fresh : bool, default False
        Ignore existing artifacts (they are recomputed and overwritten).
    """

    def __init__(self, root, fresh: bool = False) -> None:
        self.root = Path(root)
        self.fresh = fresh

    def key(self, kind: str, **parts) -> str:
        """Key of an artifact: SHA-256 of ``kind``, ``parts`` (JSON) and the code fingerprint."""
        text = json.dumps({"kind": kind, "parts": parts, "code": code_fingerprint()},
                          sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def path(self, kind: str, key: str) -> Path:
        """File of an artifact: ``<root>/<kind>/<key>.npz``."""
        return self.root / kind / f"{key}.npz"

    def load(self, kind: str, key: str) -> dict[str, np.ndarray] | None:
        """Arrays of a saved artifact, or None when it is missing, corrupted or ``fresh`` is set.

        A file whose checksum is missing or wrong is reported with a warning naming it,
        deleted, and treated as missing.
        """
        path = self.path(kind, key)
        if self.fresh or not path.exists():
            return None
        checksum = path.with_suffix(".sha256")
        expected = checksum.read_text().strip() if checksum.exists() else None
        actual = _sha256_of_file(path)
        if expected != actual:
            warnings.warn(f"artifact {path} is truncated or corrupted (checksum mismatch); "
                          "recomputing it", stacklevel=2)
            path.unlink(missing_ok=True)
            checksum.unlink(missing_ok=True)
            return None
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        logger.info("reusing %s artifact %s", kind, path.name[:12])
        return arrays

    def save(self, kind: str, key: str, arrays: dict[str, np.ndarray]) -> Path:
        """Save arrays atomically with a checksum; return the artifact's path."""
        path = self.path(kind, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(path, lambda handle: np.savez(handle, **arrays))
        digest = _sha256_of_file(path)
        _atomic_write(path.with_suffix(".sha256"), lambda handle: handle.write(digest.encode()))
        return path


def default_store() -> ArtifactStore:
    """Store at ``TOSCORE_CACHE_DIR`` (else ``runs/cache`` in the repository).

    ``TOSCORE_FRESH=1`` makes it ignore existing artifacts; ``reproduce.sh`` sets both.
    """
    from .runs import repo_root

    root = os.environ.get("TOSCORE_CACHE_DIR") or repo_root() / "runs" / "cache"
    return ArtifactStore(root, fresh=os.environ.get("TOSCORE_FRESH", "") in ("1", "true", "yes"))


def _atomic_write(path: Path, write) -> None:
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
