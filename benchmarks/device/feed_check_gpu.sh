#!/usr/bin/env bash
# Does the device data pipeline keep one lent GPU (H100/H200 class) fed? benchmarks/feed_check.py:
# 5,120 ImageNet-size JPEGs decoded into the cache, ResNet-50, bf16, compiled, batch 256, 4 loader
# workers: the teacher (224 px) and the student (448 px) end to end against gpu_check.py's
# synthetic-batch step rate, and the teacher's --dry-run estimate against its measured time. One
# device call of at most 10 minutes (five compilations of about a minute each); the JSON is rewritten
# after every stage, so a call cut short returns what it finished.
#
# Prepare here (CPU), then run it once on the device:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     -d .whl datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19        # the device image lacks datasets
#   bash benchmarks/device/feed_check_gpu.sh --dry-run                   # CPU, tiny model (tested)
#   device run: bash benchmarks/device/feed_check_gpu.sh, carry [".whl"], timeout_s 600
set -euo pipefail
source "$(dirname "$0")/environment.sh"
python3 benchmarks/feed_check.py --output "${RUNS:-/tmp/feed_check}" \
  --json-out "$out/feed_check-resnet50-$(date +%F-%H%M%S).json" "$@"
