#!/usr/bin/env bash
# The main job end to end on the embedded defaults, CPU only, no downloads, into demo_out/ (or $1):
# sample photos → c2f-label (classic labeler, local Ray) → validate → info → c2f-train (tiny model)
# → exported encoder → c2f-data stats and show → publish → verify. Takes a few minutes on 2 cores.
# The output folder must be new or empty, or one an earlier demo made (marked by .c2fmae-demo; it is
# emptied first); any other folder is refused before anything is installed or deleted.
source "$(dirname "${BASH_SOURCE[0]}")/demo_out.sh"
OUT="${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/demo_out}"
demo_out "$OUT" || exit
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
echo "== 1/7 sample images (ImageNet layout, 4 classes, plus 2 broken files)"
python "$ROOT/scripts/make_samples.py" "$OUT/images"
echo "== 2/7 c2f-label: classic labeler on a local Ray, shards of 16"
c2f-label "$OUT/images" -o "$OUT/dataset" --shard-size 16 --canvas 128
echo "== 3/7 c2f-data validate and info"
c2f-data validate "$OUT/dataset" --quiet
c2f-data info "$OUT/dataset"
echo "== 4/7 c2f-train: tiny C2FMAE on the labeled samples, 300 steps"
c2f-train --config c2fmae_tiny_cpu --data "$OUT/dataset" --images "$OUT/images" \
    --out "$OUT/run" --max-steps 300
echo "== 5/7 export the encoder for timm"
c2f-train export "$OUT/run" -o "$OUT/encoder"
echo "== 6/7 c2f-data stats and show: what the labels look like"
c2f-data stats "$OUT/dataset" --plot "$OUT/stats.png" --quiet
c2f-data show "$OUT/dataset" --images "$OUT/images" -n 6 -o "$OUT/show.png"
echo "== 7/7 c2f-data publish in the Hugging Face Hub's format (Parquet, no image pixels) and verify"
c2f-data publish "$OUT/dataset" -o "$OUT/release" --format parquet --quiet
c2f-data verify "$OUT/release"
echo "pictures: $OUT/run/images/ $OUT/run/curriculum.png $OUT/run/losses.png $OUT/stats.png $OUT/show.png   log: $OUT/run/log.jsonl   encoder: $OUT/encoder/"
echo "release: $OUT/release/ (data/train-*.parquet, README.md dataset card, croissant.json, SHA256SUMS)"
