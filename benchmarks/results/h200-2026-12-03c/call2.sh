cd $(git rev-parse --show-toplevel 2>/dev/null || pwd)
R=$OUT/r; mkdir -p $R
export PYTHONUNBUFFERED=1
python -m pip install -q --no-deps --no-build-isolation -e . > $R/pip.log 2>&1 || echo "pip install failed"
pack() { tar czf $OUT/r.tgz -C $OUT r; }
timeout -k 15 -s INT 150 python .gpu/exp2.py ext > $R/ext.txt 2>&1; cat $R/ext.txt; pack
timeout -k 15 -s INT 120 python .gpu/exp2.py dec > $R/dec.txt 2>&1; cat $R/dec.txt; pack
timeout -k 15 -s INT 150 python .gpu/exp2.py rot > $R/rot.txt 2>&1; cat $R/rot.txt | tail -40; pack
