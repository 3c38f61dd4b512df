R=$OUT/r; mkdir -p $R
python -m pip install -q --no-deps --no-build-isolation -e . > $R/pip.log 2>&1
timeout -k 15 -s INT 560 python ci/gpu_tier.py --deadline 500 --out $R/t1 -n 15 -m gpu tests/test_decode.py tests/test_prefill.py tests/test_batch_attention.py > $R/t1.log 2>&1
tail -5 $R/t1.log; grep -E "Status|Total" $R/t1/*.md
tar czf $OUT/r.tgz -C $OUT r
