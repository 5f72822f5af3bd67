#!/usr/bin/env bash
# Reproduce the paper on the VIPriors ImageNet subset, streamed from the Hub (ILSVRC/imagenet-1k is
# gated: accept its terms and `hf auth login` first). Teacher, then student, with the
# paper's hyperparameters; then the test-time tricks and the submission file.
#
#   bash examples/reproduce_vipriors.sh                 # one process; or set LAUNCH for several:
#   LAUNCH="accelerate launch --config_file examples/accelerate/gpu_8_bf16.yaml" bash examples/reproduce_vipriors.sh
#
# Every setting can be overridden from the environment (the tests run it tiny, on CPU, on local data).
set -euo pipefail
LAUNCH=${LAUNCH:-"python -m"}
OUT=${OUT:-runs/vipriors}
ARCH=${ARCH:-vipriors_resnet50}
DATA=${DATA:-"--dataset vipriors"}                     # add --data-dir DIR for a local copy
TEACHER=${TEACHER:-"--epochs 800 --batch-size 256 --img-size 224"}   # per process; lr = 0.03 x batch / 256
STUDENT=${STUDENT:-"--epochs 100 --batch-size 64 --img-size 448"}    # lr = 0.1 x batch / 256
EVAL=${EVAL:-"--ten-crop --img-size 448"}

$LAUNCH vipriors_hub train-teacher $DATA --model "$ARCH" $TEACHER --output "$OUT/teacher"
vipriors-hub eval-teacher $DATA --checkpoint "$OUT/teacher/final" --split val --output "$OUT/teacher/eval.json"
$LAUNCH vipriors_hub train-student $DATA --teacher "$OUT/teacher/final" $STUDENT --output "$OUT/student"
vipriors-hub evaluate $DATA --checkpoint "$OUT/student/final" --split val $EVAL --output "$OUT/student/val.json"
vipriors-hub evaluate $DATA --checkpoint "$OUT/student/final" --split test $EVAL \
    --output "$OUT/student/test.json" --submission "$OUT/submission.csv"
