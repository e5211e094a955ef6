#!/usr/bin/env bash
# The main job end to end on the embedded defaults, CPU only, into demo_out/ (or $1).
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
OUT="${1:-$ROOT/demo_out}"
rm -rf "$OUT" && mkdir -p "$OUT"
echo "== 1/3 build a dataset store from generated images and their exact masks"
c2f-data synth "$OUT/dataset" --images "$OUT/images" --count 48 --canvas 64 --shard-size 16
echo "== 2/3 validate it"
c2f-data validate "$OUT/dataset"
echo "== 3/3 summarise it"
c2f-data info "$OUT/dataset"
