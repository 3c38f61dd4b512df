# A second device call, prepared 2026-12-03 (seventh session): exp/dynamic-queue (BatchAttention's
# programs take items from a per-head atomic counter, longest first; merged with main 7bef1cc, never
# run on a GPU). Here, before the call:
#   mkdir -p .gpu/wt/queue && git archive exp/dynamic-queue | tar x -C .gpu/wt/queue
#   cp benchmarks/results/h200-2026-12-03e/next_call_queue.sh .gpu/
# then: run(command="bash .gpu/next_call_queue.sh", carry=[".gpu"], timeout_s=600)
R=$OUT/r; mkdir -p $R; export PYTHONUNBUFFERED=1
cd .gpu/wt/queue && python -m pip install -q --no-deps --no-build-isolation -e . > $R/pip.log 2>&1
timeout -k 15 -s INT 200 python ci/gpu_tier.py --deadline 180 --out $R/t1 -n 15 -m gpu tests/test_batch_attention.py > $R/t1.log 2>&1
tail -3 $R/t1.log; grep -E "Status|Total" $R/t1/*.md
timeout -k 10 -s INT 300 python -m attn bench --op mixed --no-plot --no-progress --out $R/mixed.md > $R/mixed.log 2>&1
grep -E "^mixed|queue|calibrated" $R/mixed.log | cut -c1-200
tar czf $OUT/r.tgz -C $OUT r
