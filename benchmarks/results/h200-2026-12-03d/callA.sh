cd $(git rev-parse --show-toplevel 2>/dev/null || pwd)
R=$OUT/r; mkdir -p $R
export PYTHONUNBUFFERED=1
python -m pip install -q --no-deps --no-build-isolation -e . > $R/pip.log 2>&1 || echo "pip install failed"
pack() { tar czf $OUT/r.tgz -C $OUT r; }
timeout -k 15 -s INT 200 python ci/gpu_tier.py --deadline 180 --out $R/tier_a -n 15 -m gpu tests/test_prefill.py tests/test_rotary.py > $R/tier_a.log 2>&1
tail -3 $R/tier_a.log; pack
timeout -k 15 -s INT 120 python ci/gpu_tier.py --deadline 100 --out $R/tier_b -n 15 -m gpu tests/test_batch_attention.py tests/test_decode.py -k "test_batch_attention or vllm or several_pages or Batch" > $R/tier_b.log 2>&1
tail -3 $R/tier_b.log; pack
timeout -k 15 -s INT 150 python -m attn bench --op decode --no-progress --no-plot --out $R/dec_all.md > $R/dec_all.log 2>&1
grep "^decode" $R/dec_all.log | cut -c1-150; pack
timeout -k 15 -s INT 60 python -m attn bench --op mixed --peers --no-flex --no-progress --out $R/mixed.md --out-dir $R/m > $R/mixed.log 2>&1
grep "^mixed" $R/mixed.log | cut -c1-200; pack
