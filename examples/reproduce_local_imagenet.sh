#!/usr/bin/env bash
# The same reproduction from a local ImageNet (train/ and val/ folders, or the VIPriors toolkit's
# imagenet_50/ layout, or parquet shards): the official split lists select the subset.
#
#   IMAGENET=/data/imagenet bash examples/reproduce_local_imagenet.sh
#   IMAGENET=/data/imagenet SPLIT_LISTS=./vipriors_splits bash examples/reproduce_local_imagenet.sh   # offline lists
set -euo pipefail
IMAGENET=${IMAGENET:?set IMAGENET to the folder that holds ImageNet}
LISTS=${SPLIT_LISTS:+--split-lists $SPLIT_LISTS}
DATA="--dataset vipriors --data-dir $IMAGENET ${LISTS:-}" exec bash "$(dirname "$0")/reproduce_vipriors.sh"
