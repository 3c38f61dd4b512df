cd $(git rev-parse --show-toplevel 2>/dev/null || pwd)
R=$OUT/r; mkdir -p $R
export PYTHONUNBUFFERED=1
python -m pip install -q --no-deps --no-build-isolation -e . > $R/pip.log 2>&1 || echo "pip install failed"
pack() { tar czf $OUT/r.tgz -C $OUT r; }
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv > $R/smi.txt 2>&1
timeout -k 15 -s INT 170 python ci/gpu_tier.py --deadline 140 --out $R/tier -n 15 -m "gpu or not gpu" tests/test_batch_attention.py tests/test_prefill.py::test_gpu_rotary_rotating_k_on_load tests/test_prefill.py::test_bf16_matches_the_reference_in_the_interpreter tests/test_decode.py -k "test_batch_attention or rotating_k_on_load or bf16_matches or gpu_matrix and (NHD-1- or HND-1- or vllm-1-) or rotary or register" > $R/tier.log 2>&1
tail -3 $R/tier.log; pack
timeout -k 15 -s INT 200 python -m attn bench --op mixed --peers --no-flex --no-progress --out $R/mixed.md --out-dir $R > $R/mixed.log 2>&1
grep "^|" $R/mixed.md | head -12; tail -3 $R/mixed.log; pack
cp attn/configs/nvidia/NVIDIA_H200.json $R/before.json
timeout -k 15 -s INT 150 python -m attn tune --op decode --budget-s 120 --no-progress > $R/tune_decode.log 2>&1
grep -E "^decode|wrote" $R/tune_decode.log; cp attn/configs/nvidia/NVIDIA_H200.json $R/after_decode.json; pack
