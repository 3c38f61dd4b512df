cd $(git rev-parse --show-toplevel 2>/dev/null || pwd)
R=$OUT/r; mkdir -p $R
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $R/gpu.txt
python -c "import torch, triton; print(torch.__version__, triton.__version__)" >> $R/gpu.txt
python -m pip install -q --no-deps --no-build-isolation -e . > $R/pip.log 2>&1 || echo "pip install failed"
pack() { tar czf $OUT/r.tgz -C $OUT r; }
timeout -k 15 -s INT 170 python benchmarks/bench_rotary.py --sweep-budget 120 --out $R/rotary.md > $R/rotary.log 2>&1
grep "^|" $R/rotary.md | head -60; tail -3 $R/rotary.log; pack
timeout -k 15 -s INT 230 python .gpu/exp1.py prefill > $R/prefill.txt 2>&1
cat $R/prefill.txt | tail -40; pack
timeout -k 15 -s INT 120 python .gpu/exp1.py extend > $R/extend.txt 2>&1
cat $R/extend.txt | tail -15; pack
