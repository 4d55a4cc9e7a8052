"""The disk cache of compiled kernels (CPU): reuse across processes, concurrent writers, corruption."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# A child process: load (or compile) one configuration, report whether it had to compile.
CHILD = textwrap.dedent(
    """
    import sys
    from cute_gemm import jit
    compiled = []
    real_compile = jit.compile_fp8_gemm
    def counting_compile(*args, **kwargs):
        compiled.append(1)
        return real_compile(*args, **kwargs)
    jit.compile_fp8_gemm = counting_compile
    fn = jit.get_fp8_gemm(jit.GemmConfig(64, 32, 8))
    assert fn is not None
    print("compiled" if compiled else "loaded")
    """
)


def run_child(cache_dir, wait=True):
    env = dict(os.environ, CUTE_GEMM_CACHE_DIR=str(cache_dir), PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    if not wait:
        return proc
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return out.strip()


def entries(cache_dir):
    return sorted(p.name for p in Path(cache_dir).iterdir())


def test_second_process_loads_without_compiling(tmp_path):
    assert run_child(tmp_path) == "compiled"
    assert run_child(tmp_path) == "loaded"


def test_concurrent_processes_publish_one_good_entry(tmp_path):
    procs = [run_child(tmp_path, wait=False) for _ in range(3)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    names = entries(tmp_path)
    assert len(names) == 2 and names[0].endswith(".o") and names[1].endswith(".sha256"), names
    assert run_child(tmp_path) == "loaded"


@pytest.mark.parametrize("damage", ["truncate", "flip", "remove_object"])
def test_corrupted_entry_is_rebuilt_not_loaded(tmp_path, damage):
    run_child(tmp_path)
    obj = next(Path(tmp_path).glob("*.o"))
    data = obj.read_bytes()
    if damage == "truncate":
        obj.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        obj.write_bytes(data[:100] + bytes([data[100] ^ 0xFF]) + data[101:])
    else:
        obj.unlink()
    assert run_child(tmp_path) == "compiled"
    assert run_child(tmp_path) == "loaded"


def test_key_depends_on_config_and_arch():
    from cute_gemm import cache
    from cute_gemm.jit import GemmConfig

    a, b = GemmConfig(128, 128, 6), GemmConfig(128, 128, 5)
    assert cache.entry_key(a, "sm_90a") == cache.entry_key(a, "sm_90a")
    assert len({cache.entry_key(a, "sm_90a"), cache.entry_key(b, "sm_90a"), cache.entry_key(a, "sm_100a")}) == 3
