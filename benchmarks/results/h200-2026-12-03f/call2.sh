R=$OUT/r; mkdir -p $R
bash .gpu/bounds.sh
timeout -k 10 -s INT 150 python ci/gpu_tier.py --deadline 130 --out $R/t0 -n 15 -m gpu -k "rotary or rotating" tests/test_decode.py tests/test_prefill.py tests/test_rotary.py > $R/t0.log 2>&1; tail -2 $R/t0.log
bash .gpu/next_call_queue.sh
tar czf $OUT/r.tgz -C $OUT r
