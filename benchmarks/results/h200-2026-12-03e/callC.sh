R=$OUT/r; mkdir -p $R; export PYTHONUNBUFFERED=1
python -m pip install -q --no-deps --no-build-isolation -e . > $R/pip.log 2>&1
timeout -k 10 -s INT 200 python .gpu/merge_ab.py fuse_merge > $R/fused_merge.md 2> $R/fused_merge.err; cat $R/fused_merge.md; tail -3 $R/fused_merge.err
tar czf $OUT/r.tgz -C $OUT r
timeout -k 15 -s INT 330 python ci/gpu_tier.py --deadline 300 --out $R/t1 -n 15 -m gpu tests/test_decode.py > $R/t1.log 2>&1
tail -3 $R/t1.log; grep -E "Status|Total" $R/t1/*.md
tar czf $OUT/r.tgz -C $OUT r
