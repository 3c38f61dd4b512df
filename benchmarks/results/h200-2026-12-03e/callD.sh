R=$OUT/r; mkdir -p $R; export PYTHONUNBUFFERED=1
python -m pip install -q --no-deps --no-build-isolation -e . > $R/pip.log 2>&1
timeout -k 10 -s INT 170 python .gpu/merge_ab.py pdl > $R/pdl_merge.md 2> $R/pdl_merge.err; cat $R/pdl_merge.md; tail -3 $R/pdl_merge.err
tar czf $OUT/r.tgz -C $OUT r
timeout -k 15 -s INT 245 python ci/gpu_tier.py --deadline 215 --out $R/t1 -n 15 -m gpu tests/test_decode.py tests/test_merge.py > $R/t1.log 2>&1
tail -3 $R/t1.log; grep -E "Status|Total" $R/t1/*.md
tar czf $OUT/r.tgz -C $OUT r
