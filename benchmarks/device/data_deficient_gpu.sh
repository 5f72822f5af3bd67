#!/usr/bin/env bash
# The data-deficient benchmark where the paper used distillation, on one lent GPU (H100/H200 class):
# ResNet-50 at 224 px, bf16, the demo's four arms with the demo's accounting (benchmarks/data_deficient.py),
# seeds 0 and 1, in one device call of at most 10 minutes (the device's 15 minutes include its start).
#
# Recipe: the pipeline's is the paper's but for the teacher's epochs (student 100 epochs as the paper;
# teacher 50 instead of 800, what fits), the baseline's is the demo's (lr-base 0.4, CIFAR-10
# AutoAugment: this repository's tuning); batch 64 on 400 training images; eager (compilation
# costs 65-80 s per arm, more than a 100-epoch run on 400 images saves); 4 loader workers (an
# epoch is 6 steps, so the workers' start-up each epoch counts). The JSON is rewritten after every
# seed, so a run cut by the time limit still returns the seeds it finished; if only seed 0 fits,
# a second call with `--seeds 1` adds the other (the JSON of each call is kept).
#
# Prepare here (CPU), then run it once on the device:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     -d .whl datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19        # the device image lacks datasets
#   mkdir -p .data && cp -r ../shared/data/fashion-mnist .data/          # the full IDX files (30 MB)
#   bash benchmarks/device/data_deficient_gpu.sh --dry-run               # CPU, tiny model (tested)
#   device run: bash benchmarks/device/data_deficient_gpu.sh, carry [".whl", ".data"], timeout_s 600
set -euo pipefail
source "$(dirname "$0")/environment.sh"
data=${DATA_DIR:-.data/fashion-mnist}
[ -d "$data" ] || data=shipped
python3 -c "import torch, timm, accelerate, datasets; print('torch', torch.__version__, 'timm', timm.__version__)"
python3 benchmarks/data_deficient.py --model vipriors_resnet50 --img-size 224 --batch-size 64 \
  --teacher-epochs 50 --student-epochs 100 --mixed-precision bf16 --no-torchcompile --workers 4 \
  --data-dir "$data" --seeds 0 1 --output "${RUNS:-/tmp/data_deficient_gpu}" \
  --json-out "$out/data_deficient-resnet50-224px-$(date +%F-%H%M%S).json" "$@"
