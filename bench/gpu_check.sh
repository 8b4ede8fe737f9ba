#!/usr/bin/env bash
# The GPU check, one script (about 8 minutes on one H100/H200). From the repository root:
#   bash bench/gpu_check.sh
# 1. sets up .venv through the Makefile (the image's CUDA torch is kept: nothing is installed by
#    hand), SmolLM2 and the bench extra included;
# 2. runs the gpu-marked tests;
# 3. runs the language-model step bench on the GPU, this project against TRL as configured by
#    default and at its best, in bfloat16 and float32 (pairs/s, tokens/s, peak GPU memory, model
#    FLOPs against the measured matmul peak and the card's datasheet peak), with a profile of our
#    step (CPU and CUDA activities: where a step's GPU time goes);
# 4. trains one run through torch's distributed launcher (1 process) on the GPU, with throughput;
# 5. runs a 4-child sweep with the local GPU runner (each child pinned to a free GPU), with throughput;
# 6. runs the paper's GlobalOpinionQA experiment at full size (400 steps, three seeds) on the GPU.
# Results go to bench/results/gpu/.
set -euo pipefail
cd "$(dirname "$0")/.."
export PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=true MLFLOW_DISABLE_TELEMETRY=true HF_HUB_OFFLINE=1
out=bench/results/gpu
mkdir -p "$out"

if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L; then
  echo "gpu_check: no NVIDIA GPU visible (nvidia-smi); nothing to check" >&2
  exit 2
fi

step() { printf '\n== %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }

step "set-up"
make smollm2 >"$out/setup.log" 2>&1 || { tail -20 "$out/setup.log"; exit 1; }
.venv/bin/python -c "import torch; assert torch.cuda.is_available(); print('torch', torch.__version__, torch.cuda.get_device_name())"

step "gpu tests"
.venv/bin/python -m pytest -m gpu -q -p no:cacheprovider tests 2>&1 | tee "$out/tests.log" | tail -5

step "language-model step against TRL (default and best, bf16 and fp32), profile, MFU"
timeout 300 .venv/bin/python bench/lm_step.py --device cuda --steps 20 --warmup 3 --rounds 1 \
  --pairs 256 --variants grpo,grpo-fp32,trl,trl-best,trl-best-fp32 --profile --profile-steps 5 \
  --json "$out/lm_step.json" 2>&1 | tee "$out/lm_step.log"

step "one training through the distributed launcher (torchrun), 1 process on the GPU"
timeout 240 .venv/bin/python -m torch.distributed.run --standalone --nproc-per-node 1 \
  -m grpo_cli.main train --config examples/smollm2_goqa_lora.yaml --method gr_ipo \
  --output "$out/nproc1" --no-progress 2>&1 | tail -3
.venv/bin/python -c "import json; t=json.load(open('$out/nproc1/timing.json')); print('pairs/s', t['pairs_per_second'], 'processes', t['processes'])"

step "a sweep with the local GPU runner (SmolLM2 + LoRA, chi 0 and 1 x seeds 0 and 1, 40 steps)"
timeout 300 .venv/bin/grpo sweep --config examples/smollm2_goqa_lora.yaml --set device=cuda \
  --set 'methods=[gr_ipo]' --set 'seeds=[0,1]' --set optim.max_steps=40 \
  --set execution.output_dir="$out/sweep-outputs" --grid group_weights.robust_mix=0,1 \
  --json "$out/sweep_result.json" 2>"$out/sweep.log" | tail -8
.venv/bin/python -c "import json; r=json.load(open('$out/sweep_result.json')); print('children', len(r['runs']), 'pairs/s', [round(x['timing']['pairs_per_second'], 1) for x in r['runs']])"

step "GlobalOpinionQA experiment, full size"
timeout 300 .venv/bin/grpo run --config examples/smollm2_goqa_lora.yaml \
  --set device=cuda --set optim.max_steps=400 --set execution.output_dir="$out/outputs" \
  --json "$out/goqa_result.json" 2>"$out/goqa.log" | tee "$out/goqa.txt"

step "done"
