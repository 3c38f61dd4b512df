# The next device call, prepared 2026-12-03 (eighth session, its device time spent). Main's
# validation fixes (host checks) have not met the GPU tier: the whole tier first, memcheck, then
# issue 5's rotary tile question (rot_tiles.py). From the repository root:
#   run(command="bash benchmarks/results/h200-2026-12-03f/next_call.sh", timeout_s=600)   (~8 minutes)
R=$OUT/r; mkdir -p $R; export PYTHONUNBUFFERED=1
python -m pip install -q --no-deps --no-build-isolation -e . > $R/pip.log 2>&1
timeout -k 15 -s INT 330 python ci/gpu_tier.py --deadline 300 --out $R/tier -n 15 > $R/tier.log 2>&1
tail -2 $R/tier.log; grep -E "Status|Total" $R/tier/*.md
timeout -k 5 -s INT 100 python -m pytest -q -m gpu tests/test_bounds.py -p no:cacheprovider > $R/bounds.log 2>&1
tail -1 $R/bounds.log
timeout -k 5 -s INT 120 python benchmarks/results/h200-2026-12-03f/rot_tiles.py > $R/rot_tiles.md 2> $R/rot_tiles.err
cat $R/rot_tiles.md
tar czf $OUT/r.tgz -C $OUT r
