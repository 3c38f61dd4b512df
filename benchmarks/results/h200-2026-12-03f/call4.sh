R=$OUT/r; mkdir -p $R
python -m pip install -q --no-deps --no-build-isolation -e . > $R/pip.log 2>&1
timeout 400 python -m pytest -q -m gpu tests/test_bounds.py -p no:cacheprovider > $R/bounds.log 2>&1; tail -3 $R/bounds.log
grep -A6 "Invalid\|Error" $R/bounds.log | head -60
