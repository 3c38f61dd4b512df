cd $(git rev-parse --show-toplevel 2>/dev/null || pwd)
R=$OUT/r; mkdir -p $R
export PYTHONUNBUFFERED=1
python -m pip install -q --no-deps --no-build-isolation -e . > $R/pip.log 2>&1 || echo "pip install failed"
pack() { tar czf $OUT/r.tgz -C $OUT r; }
timeout -k 15 -s INT 230 python ci/gpu_tier.py --deadline 200 --out $R/tier -n 15 -m "gpu or not gpu" tests/test_decode.py tests/test_prefill.py tests/test_rotary.py tests/test_batch_attention.py tests/test_merge.py > $R/tier.log 2>&1
tail -3 $R/tier.log; pack
timeout -k 15 -s INT 300 python -m attn bench --op decode --peers --no-flex --no-progress --out $R/decode.md --out-dir $R > $R/decode.log 2>&1
grep "^|" $R/decode.md | head -30; tail -3 $R/decode.log; pack
