cd $(git rev-parse --show-toplevel 2>/dev/null || pwd)
R=$OUT/r; mkdir -p $R
export PYTHONUNBUFFERED=1
python -m pip install -q --no-deps --no-build-isolation -e . > $R/pip.log 2>&1 || echo "pip install failed"
pack() { tar czf $OUT/r.tgz -C $OUT r; }
timeout -k 15 -s INT 105 python ci/gpu_tier.py --deadline 95 --out $R/tier_f1 -n 15 -m gpu tests/test_decode.py > $R/tier_f1.log 2>&1
tail -2 $R/tier_f1.log; pack
timeout -k 10 -s INT 48 python ci/gpu_tier.py --deadline 40 --out $R/tier_f2 -n 15 -m "not gpu" tests/test_prefill.py -k prefill_matrix > $R/tier_f2.log 2>&1
tail -2 $R/tier_f2.log; pack
timeout -k 10 -s INT 36 python ci/gpu_tier.py --deadline 28 --out $R/tier_f3 -n 15 -m gpu tests/test_batch_attention.py tests/test_merge.py > $R/tier_f3.log 2>&1
tail -2 $R/tier_f3.log; pack
