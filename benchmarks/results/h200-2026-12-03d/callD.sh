cd $(git rev-parse --show-toplevel 2>/dev/null || pwd)
R=$OUT/r; mkdir -p $R
export PYTHONUNBUFFERED=1
python -m pip install -q --no-deps --no-build-isolation -e . > $R/pip.log 2>&1 || echo "pip install failed"
pack() { tar czf $OUT/r.tgz -C $OUT r; }
timeout -k 15 -s INT 150 python ci/gpu_tier.py --deadline 135 --out $R/tier_d1 -n 15 -m gpu tests/test_rotary.py tests/test_prefill.py > $R/tier_d1.log 2>&1
tail -2 $R/tier_d1.log; pack
timeout -k 15 -s INT 100 python ci/gpu_tier.py --deadline 85 --out $R/tier_d2 -n 15 -m gpu tests/test_decode.py -k "vllm or several_pages" > $R/tier_d2.log 2>&1
tail -2 $R/tier_d2.log; pack
timeout -k 15 -s INT 270 python -m attn bench --op decode,rotary --peers --flex-max 1 --no-progress --out $R/bench.md --out-dir $R > $R/bench.log 2>&1
grep -E "^(decode|rotary) " $R/bench.log | cut -c1-175; tail -3 $R/bench.log; pack
