cd $(git rev-parse --show-toplevel 2>/dev/null || pwd)
R=$OUT/r; mkdir -p $R
export PYTHONUNBUFFERED=1
python -m pip install -q --no-deps --no-build-isolation -e . > $R/pip.log 2>&1 || echo "pip install failed"
pack() { tar czf $OUT/r.tgz -C $OUT r; }
timeout -k 15 -s INT 150 python -m attn tune --op decode --budget-s 125 --no-progress > $R/tune_decode.log 2>&1
grep -E "^decode|wrote" $R/tune_decode.log; cp attn/configs/nvidia/NVIDIA_H200.json $R/after_decode.json; pack
timeout -k 15 -s INT 200 python -m attn bench --op decode,extend,rotary --peers --no-flex --no-progress --out $R/bench.md --out-dir $R > $R/bench.log 2>&1
grep "^|" $R/bench.md | head -40; tail -3 $R/bench.log; pack
timeout -k 15 -s INT 150 python -m attn bench --op mixed --peers --no-flex --no-progress --out $R/mixed.md --out-dir $R/m > $R/mixed.log 2>&1
grep "^|" $R/mixed.md | head -12; tail -3 $R/mixed.log; pack
