#!/usr/bin/env bash
# Builds DeepGEMM from source on the GPU host (no package index there) and runs
# tools/deepgemm_compare.py (from the project root). The source tarball holds deepseek-ai/DeepGEMM
# at 54e2261 with its submodules' headers at the pinned commits: third-party/cutlass/include
# (NVIDIA/cutlass f3fde58) and third-party/fmt/include (fmtlib/fmt 553ec11).
#   bash .gpu/boot.sh bash tools/build_deepgemm.sh DeepGEMM.tar.xz OUT.json
# NOTES: build with the system g++ (CXX=/usr/bin/g++): with the image's /opt/gcc wrapper the
# extension built but crashed in std::regex on the first GEMM call (segmentation fault).
set -euo pipefail
tarball=$1 out=$2
export CUDA_HOME=${CUDA_HOME:-/usr/local/cuda} PYTHONUNBUFFERED=1
work=$(mktemp -d)
tar -xJf "$tarball" -C "$work"
(cd "$work/DeepGEMM" && CC=/usr/bin/gcc CXX=/usr/bin/g++ LDSHARED="/usr/bin/g++ -shared" \
  python3 setup.py build > "$work/build.log" 2>&1) || { tail -20 "$work/build.log"; exit 1; }
export DG_LIB=$(ls -d "$work"/DeepGEMM/build/lib.* | head -1) DG_JIT_CACHE_DIR=$work/jit
# DeepGEMM JIT-compiles one kernel per shape with nvcc: warm its cache in parallel first.
for i in 0 1 2 3 4 5 6 7; do python3 tools/deepgemm_compare.py warm $i 8 > /dev/null 2>&1 & done; wait
python3 tools/deepgemm_compare.py time 0 1 "$out"
