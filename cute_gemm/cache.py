"""The on-disk cache of compiled kernels.

Entries live in ``$CUTE_GEMM_CACHE_DIR`` (default ``~/.cache/cute_gemm``), one object file per
kernel, named by a SHA-256 of everything that changes the binary: the source of ``cute_gemm``,
``layouts`` and ``schedulers``, the configuration, the DSL and TVM-FFI versions, the Python version
and the target arch. Each ``<key>.o`` has a ``<key>.sha256`` beside it holding the object's own
checksum; an entry whose object does not match it (truncated, corrupted) is deleted and rebuilt,
never loaded.

Writers never collide: each writes under a unique temporary name in the same directory and
publishes with ``os.replace`` (atomic on POSIX), object first, checksum last. Several processes
compiling the same kernel at once each publish a complete, identical entry; readers see either no
entry or a complete one.
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import tempfile
from pathlib import Path

_PACKAGES = ("cute_gemm", "layouts", "schedulers")
FUNCTION_NAME = "cute_gemm_kernel"


def cache_dir() -> Path:
    return Path(os.environ.get("CUTE_GEMM_CACHE_DIR", Path.home() / ".cache" / "cute_gemm"))


def enabled() -> bool:
    """The disk cache is on unless ``CUTE_GEMM_CACHE_DIR`` is set to an empty string."""
    return os.environ.get("CUTE_GEMM_CACHE_DIR", None) != ""


@functools.lru_cache(maxsize=None)
def source_fingerprint() -> str:
    """SHA-256 over every ``.py`` file of the three packages (path and content)."""
    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for package in _PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


@functools.lru_cache(maxsize=None)
def _toolchain() -> str:
    from importlib.metadata import PackageNotFoundError, version

    parts = [platform.python_version()]
    for dist in ("nvidia-cutlass-dsl", "apache-tvm-ffi"):
        try:
            parts.append(f"{dist}=={version(dist)}")
        except PackageNotFoundError:
            parts.append(f"{dist}==?")
    return ";".join(parts)


def entry_key(config, arch: str) -> str:
    text = f"{source_fingerprint()}|{_toolchain()}|{arch}|{config!r}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def lookup(key: str) -> Path | None:
    """The object file of a complete, intact entry; a corrupted entry is removed."""
    obj, check = cache_dir() / f"{key}.o", cache_dir() / f"{key}.sha256"
    try:
        expected = check.read_text().strip()
    except FileNotFoundError:
        return None
    try:
        if _sha256(obj) == expected:
            return obj
    except FileNotFoundError:
        pass
    for stale in (check, obj):
        try:
            stale.unlink()
        except FileNotFoundError:
            pass
    return None


def publish(key: str, write_object) -> Path:
    """Write an entry: ``write_object(path)`` writes the object file; returns its final path."""
    directory = cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp_obj = tempfile.mkstemp(dir=directory, prefix=f".{key}.", suffix=".o")
    os.close(fd)
    try:
        write_object(tmp_obj)
        digest = _sha256(Path(tmp_obj))
        fd, tmp_check = tempfile.mkstemp(dir=directory, prefix=f".{key}.", suffix=".sha256")
        with os.fdopen(fd, "w") as f:
            f.write(digest)
        os.replace(tmp_obj, directory / f"{key}.o")
        os.replace(tmp_check, directory / f"{key}.sha256")
    finally:
        if os.path.exists(tmp_obj):
            os.unlink(tmp_obj)
    return directory / f"{key}.o"


def load(path: Path):
    """The compiled function stored in an object file (TVM-FFI calling convention)."""
    from cutlass.runtime import load_module

    return load_module(str(path), enable_tvm_ffi=True)[FUNCTION_NAME]
