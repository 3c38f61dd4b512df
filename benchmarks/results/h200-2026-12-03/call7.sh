cd $(git rev-parse --show-toplevel 2>/dev/null || pwd)
R=$OUT/r; mkdir -p $R
export PYTHONUNBUFFERED=1
python -m pip install -q --no-deps --no-build-isolation -e . > /dev/null 2>&1 || echo "pip install failed"
pack() { tar czf $OUT/r.tgz -C $OUT r; }
git log --oneline -1 > $R/commit.txt 2>/dev/null
timeout -k 15 -s INT 110 python ci/gpu_tier.py --deadline 85 --out $R/tier -n 15 -m "gpu or not gpu" tests/test_batch_attention.py tests/test_decode.py::test_decode_register_ceiling_reaches_the_launch tests/test_decode.py::test_decode_vllm_k_by_dim_group > $R/tier.log 2>&1
tail -3 $R/tier.log; pack
timeout -k 15 -s INT 180 python -m attn bench --op mixed --peers --no-flex --no-progress --out $R/mixed.md > $R/mixed.log 2>&1
grep "^|" $R/mixed.md | head -8; tail -3 $R/mixed.log; pack
