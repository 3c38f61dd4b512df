cd $(git rev-parse --show-toplevel 2>/dev/null || pwd)
R=$OUT/r; mkdir -p $R
export PYTHONUNBUFFERED=1
python -m pip install -q --no-deps --no-build-isolation -e . > $R/pip.log 2>&1 || echo "pip install failed"
pack() { cp attn/configs/nvidia/NVIDIA_H200.json $R/ 2>/dev/null; tar czf $OUT/r.tgz -C $OUT r; }
timeout -k 10 -s INT 45 python .gpu/wexp.py > $R/wexp.txt 2>&1; cat $R/wexp.txt | grep "^|"; pack
timeout -k 15 -s INT 220 python -m attn tune --op decode --shapes 1x131072:vllm,mixed:vllm --no-hip --no-progress --budget-s 200 > $R/tune.log 2>&1
tail -6 $R/tune.log; pack
timeout -k 15 -s INT 150 python -m attn bench --op decode --peers --flex-max 1 --no-progress --out $R/bench.md --out-dir $R > $R/bench.log 2>&1
grep -E "^decode " $R/bench.log | cut -c1-120; pack
