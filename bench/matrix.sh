#!/usr/bin/env bash
# End-to-end speed on a Llama-3.2-1B-shaped model (random F16 weights, the real Llama 3 vocab).
#
#   bench/matrix.sh [bench options]      default: -p 512 -n 128 -t 2 -r 3
#
# Writes the model once with ../shared/tools/make_bench_gguf.py into a scratch directory
# ($LL_BENCH_DIR, default $TMPDIR/locallama-bench; never committed: 2.5 GB), then prints the
# memory read bandwidth (build/bench/membw) and `build/locallama bench`'s table. Token
# generation reads every weight once per token, so bandwidth / model size is its ceiling; the
# script prints that ceiling next to the measurement.
set -euo pipefail
cd "$(dirname "$0")/.."

SHARED=${LL_SHARED_DIR:-../shared}
DIR=${LL_BENCH_DIR:-${TMPDIR:-/tmp}/locallama-bench}
MODEL=$DIR/llama3.2-1b-shape-F16.gguf
ARGS=("$@")
[ ${#ARGS[@]} -gt 0 ] || ARGS=(-p 512 -n 128 -t 2 -r 3)

if ! python3 -c 'import gguf, numpy' 2>/dev/null; then
    echo "matrix: installing the PyPI packages gguf and numpy (the model generator needs them)" >&2
    python3 -m pip install -q gguf numpy 2>/dev/null ||
        python3 -m pip install -q --break-system-packages gguf numpy
fi

make -s -j2 build/locallama build/bench/membw >/dev/null

mkdir -p "$DIR"
if [ ! -s "$MODEL" ]; then
    echo "matrix: writing $MODEL (random weights, about 2.5 GB; a few minutes)" >&2
    python3 "$SHARED/tools/make_bench_gguf.py" "$MODEL.tmp" --vocab "$SHARED/tokenizer/llama3.gguf" >&2
    mv "$MODEL.tmp" "$MODEL"
fi

echo "## machine"
echo
echo "- cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores online"
echo "- load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
build/bench/membw 1024 5 | sed 's/^/- /'
echo
echo "## locallama bench ${ARGS[*]}"
echo
build/locallama bench -m "$MODEL" "${ARGS[@]}" | tee "$DIR/last.md"
echo
size=$(stat -c %s "$MODEL")
bw=$(build/bench/membw 1024 3 | awk '/threads 2/ {print $3}')
awk -v s="$size" -v bw="$bw" 'BEGIN { printf "tg ceiling at %.2f GB/s for %.2f GB of weights: %.2f tokens/s\n", bw, s / 1e9, bw * 1e9 / s }'
