# Tenth session, call 1: the rotary launcher's tuned-entry lookup on the GPU, the rotary tuner
# with its fixed space, the rotary bench; then how much of split decode is the merge launch.
R=$OUT/r; mkdir -p $R; export PYTHONUNBUFFERED=1
python -m pip install -q --no-deps --no-build-isolation -e . > $R/pip.log 2>&1
D=benchmarks/results/h200-2026-12-04b
timeout -k 5 -s INT 60 python $D/merge_share.py > $R/merge_share.md 2>&1; cat $R/merge_share.md
timeout -k 5 -s INT 150 python -m pytest -q -m gpu tests/test_rotary.py -p no:cacheprovider > $R/test_rotary.log 2>&1
tail -2 $R/test_rotary.log
cp attn/configs/nvidia/NVIDIA_H200.json $R/before.json
timeout -k 5 -s INT 200 python -m attn tune --op rotary --budget-s 170 --no-progress > $R/tune.log 2>&1
tail -15 $R/tune.log; cp attn/configs/nvidia/NVIDIA_H200.json $R/after.json
timeout -k 5 -s INT 120 python -m attn bench --op rotary --out-dir $R/bench --no-progress > $R/bench.log 2>&1
tail -30 $R/bench.log
tar czf $OUT/r.tgz -C $OUT r
