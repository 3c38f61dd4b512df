cd $(git rev-parse --show-toplevel 2>/dev/null || pwd)
R=$OUT/r; mkdir -p $R
export PYTHONUNBUFFERED=1
python -m pip install -q --no-deps --no-build-isolation -e . > $R/pip.log 2>&1 || echo "pip install failed"
pack() { tar czf $OUT/r.tgz -C $OUT r; }
timeout -k 15 -s INT 200 python ci/gpu_tier.py --deadline 180 --out $R/tier -n 15 -m "gpu or not gpu" tests/test_decode.py tests/test_rotary.py tests/test_prefill.py -k "not test_prefill or several_pages" > $R/tier.log 2>&1
tail -3 $R/tier.log; pack
timeout -k 15 -s INT 90 python -m attn bench --op rotary --peers --no-flex --no-progress --out $R/rotary.md --out-dir $R/rot > $R/rotary.log 2>&1
grep "^|" $R/rotary.md | head -12; tail -2 $R/rotary.log; pack
timeout -k 15 -s INT 60 python -m attn bench --op decode --shapes 1x131072,64x4096 --no-progress --out $R/dec.md --out-dir $R/dec > $R/dec.log 2>&1
grep "^|" $R/dec.md | head -12; pack
