#!/usr/bin/env bash
# Wheels that `import labeling.worker` needs on the lent GPU machine (Python 3.12, no network) and
# that its image lacks. There, torch/torchvision/transformers/timm/opencv/numpy/tensorstore/pillow/
# pyyaml/tqdm/typing_extensions/packaging are preinstalled; ray and dask are not needed by the
# benchmark and are NOT brought.
#
#   bash benchmarks/gpu_wheels.sh download   # here (registry access): fill .gpu_wheels/ (~3 MB)
#   bash benchmarks/gpu_wheels.sh install    # there: unpack into .gpu_site/ (use PYTHONPATH=.gpu_site:.)
#
# .gpu_wheels/ and .gpu_site/ ignore themselves (a `*` .gitignore inside), so nothing is committed;
# the device tool therefore needs `carry: [".gpu_wheels"]`.
set -euo pipefail
cd "$(dirname "$0")/.."

WHEELS=.gpu_wheels
SITE=.gpu_site
# name==version: the versions this repo's venv runs (zarr 3.1.6 etc.), pinned so both sides agree.
PACKAGES=(
  zarr==3.1.6
  numcodecs==0.16.6
  donfig==0.8.1.post1
  google-crc32c==1.9.0
  pycocotools==2.0.11
  segment-anything==1.0
  simplejpeg==1.9.0
)

self_ignoring_dir() {  # mkdir + a .gitignore holding `*`
  mkdir -p "$1"
  printf '*\n' >"$1/.gitignore"
}

download() {
  self_ignoring_dir "$WHEELS"
  local py=${PYTHON:-python3}
  "$py" -m pip download --quiet --no-deps --only-binary=:all: \
    --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
    -d "$WHEELS" "${PACKAGES[@]}"
  ls -l "$WHEELS"/*.whl
  du -ch "$WHEELS"/*.whl | tail -n 1
}

install() {
  self_ignoring_dir "$SITE"
  python3 -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" "$WHEELS"/*.whl
}

case "${1:-}" in
  download) download ;;
  install) install ;;
  *) echo "usage: $0 download|install" >&2; exit 2 ;;
esac
