#!/usr/bin/env bash
# Downloads the wheels of tools/notebook-wheels.txt for CPython 3.12 on manylinux x86-64 into .whl/
# (ignored by git: add `/.whl/` to .git/info/exclude), for tools/execute_notebooks.sh on a host
# without a package index. Run where pip reaches an index:  bash tools/download_notebook_wheels.sh
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
grep -v '^#' tools/notebook-wheels.txt | grep -v '^$' | while read -r spec; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
    -d .whl "$spec"
done
echo "$(ls .whl/*.whl | wc -l) wheels, $(du -sh .whl | cut -f1) in .whl/"
