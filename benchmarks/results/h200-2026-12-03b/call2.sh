cd $(git rev-parse --show-toplevel 2>/dev/null || pwd)
ROOT=$(pwd)
R=$OUT/r; mkdir -p $R
export PYTHONUNBUFFERED=1
python -m pip install -q --no-deps --no-build-isolation -e . > $R/pip.log 2>&1 || echo "pip install failed"
pack() { tar czf $OUT/r.tgz -C $OUT r; }
timeout -k 15 -s INT 100 python ci/gpu_tier.py --deadline 80 --out $R/tier -n 15 -m "gpu or not gpu" tests/test_batch_attention.py > $R/tier.log 2>&1
tail -2 $R/tier.log; pack
timeout -k 15 -s INT 90 python -m attn tune --op extend --budget-s 70 --no-progress > $R/tune_extend.log 2>&1
grep -E "^extend|wrote" $R/tune_extend.log; cp attn/configs/nvidia/NVIDIA_H200.json $R/after_extend.json; pack
timeout -k 15 -s INT 150 python -m attn bench --op extend --peers --no-flex --no-progress --out $R/extend.md --out-dir $R > $R/extend.log 2>&1
grep "^|" $R/extend.md | head -14; tail -2 $R/extend.log; pack
timeout -k 15 -s INT 60 python -m attn tune --op rotary --budget-s 40 --no-progress > $R/tune_rotary.log 2>&1
grep -E "^rotary|wrote" $R/tune_rotary.log; cp attn/configs/nvidia/NVIDIA_H200.json $R/after_rotary.json
timeout -k 15 -s INT 60 python -m attn bench --op rotary --peers --no-flex --no-progress --out $R/rotary.md --out-dir $R/rot > $R/rotary.log 2>&1
grep "^|" $R/rotary.md | head -5; pack
timeout -k 15 -s INT 100 python .gpu/pers_stages.py > $R/pers_stages.txt 2>&1
grep -E "^##|^\|" $R/pers_stages.txt; pack
