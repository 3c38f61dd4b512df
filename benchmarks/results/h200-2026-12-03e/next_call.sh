# The next device call, prepared 2026-12-03 (seventh session, its device time spent): the branch
# exp/decode-longest-first (work items longest chunk first, config longest_first) A/B'd against
# main's plans on the same inputs, then its decode GPU tests. Here, before the call:
#   mkdir -p .gpu/wt/longest && git archive exp/decode-longest-first | tar x -C .gpu/wt/longest
#   cp benchmarks/results/h200-2026-12-03e/{next_call.sh,split_ab.py} .gpu/
# then: run(command="bash .gpu/next_call.sh", carry=[".gpu"], timeout_s=600)   (~6 minutes)
R=$OUT/r; mkdir -p $R; export PYTHONUNBUFFERED=1
cd .gpu/wt/longest && python -m pip install -q --no-deps --no-build-isolation -e . > $R/pip.log 2>&1
VARIANTS='{"tuned": {}, "longest_first": {"longest_first": true}, "longest_first pps8": {"longest_first": true, "programs_per_sm": 8}, "fit_wave": {"fit_wave": true}}' \
LAYOUTS=mixed:HND:16,mixed:NHD:16,mixed:vllm:16,mixed:pool:1,8x32768:HND:16,1x131072:HND:16,64x4096:HND:16 \
  timeout -k 5 -s INT 150 python ../../split_ab.py > $R/longest.md 2> $R/longest.err; cat $R/longest.md
timeout -k 15 -s INT 330 python ci/gpu_tier.py --deadline 300 --out $R/t1 -n 15 -m gpu tests/test_decode.py > $R/t1.log 2>&1
tail -3 $R/t1.log; grep -E "Status|Total" $R/t1/*.md
tar czf $OUT/r.tgz -C $OUT r
