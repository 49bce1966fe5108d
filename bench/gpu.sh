#!/usr/bin/env bash
# GPU figures: burn's wgpu backend beside PyTorch (CUDA) at the same shapes, a wgpu retraining
# of a CPU run compared step by step, and the backend agreement tests, on a machine that has
# a GPU but no Rust toolchain. Build the three binaries here and copy them to `.gpu/`:
#
#   cargo build -p model --features wgpu --examples
#   cargo test -p model --features wgpu --test backends --no-run   # prints the test binary
#   mkdir -p .gpu && cp $CARGO_TARGET_DIR/debug/examples/{train_speed,retrain} .gpu/
#   cp <the backends binary> .gpu/backends && strip .gpu/*
#
# and, to retrain, a CPU run's token streams and TopK model card and checkpoint metadata
# (`prepare/{train,val}.bin`, `train/topk/config.json`, `train/topk/checkpoints/*/meta.json`)
# under `.gpu/run/`. Files may be xz-compressed to travel. Then, on the GPU machine, from the
# repository root: `bash bench/gpu.sh [out dir]`.
set -u
out=${1:-/tmp/gpu}
mkdir -p "$out"
bin=.gpu
for f in $(find .gpu -name "*.xz"); do
    python3 -c "import lzma, sys; open(sys.argv[1][:-3], 'wb').write(lzma.open(sys.argv[1]).read())" "$f"
done
chmod +x $bin/train_speed $bin/retrain $bin/backends
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
# One wall-clock limit per step, so one slow step cannot take the whole budget.
step() {
    local limit=$1
    shift
    echo "== $*"
    timeout "$limit" "$@" 2>&1 | grep -v "^$" | tail -40
}
step 45 "$bin/backends" --nocapture --test-threads 1
# The CPU run's TopK model trained again on the GPU: same config, data, seed and initial weights.
if [ -d .gpu/run/train/topk ]; then
    step 120 "$bin/retrain" .gpu/run/train/topk .gpu/run/prepare "$out/retrain" wgpu
fi
# The tiny preset (what `pipeline bench train` measures on a CPU), TopK selecting on the device
# (`model.topk_select = "device"`, the default on a GPU) and on the host.
step 60 "$bin/train_speed" backend=wgpu
step 60 "$bin/train_speed" backend=wgpu topk_select=host
step 45 python3 bench/torch_reference.py --device cuda
# A GPU-sized shape: d_model 1024, 8 layers (6 TopK, k = 64), 256 tokens of context.
big="batch=32 rounds=1 steps=5 d_model=1024 n_layers=8 n_heads=16 d_ff=4096 block_size=256 topk_k=64 n_nontopk=2"
step 80 "$bin/train_speed" backend=wgpu $big
step 80 "$bin/train_speed" backend=wgpu $big topk_select=host
step 45 python3 bench/torch_reference.py --device cuda --batch 32 --d-model 1024 --layers 8 \
    --steps 5 --heads 16 --d-ff 4096 --block 256 --k 64 --n-nontopk 2
