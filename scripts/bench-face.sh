#!/usr/bin/env bash
# Face benchmarks on the real photo set when present, else on the images shipped in the wheels.
set -euo pipefail
data="${1:-../shared/faces}"
kiosk=".venv/bin/kiosk"
if [ -d "$data" ]; then
    "$kiosk" bench accuracy --data "$data" --pairs "$data/pairs.tsv"
    "$kiosk" bench robustness --data "$data"
else
    echo "note: $data not found; benchmarking on the sample images shipped in the wheels" >&2
    "$kiosk" bench accuracy --data wheel-samples
    "$kiosk" bench robustness --data wheel-samples
fi
"$kiosk" bench latency
"$kiosk" bench gallery --size 100000
