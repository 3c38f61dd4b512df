R=$OUT/r; mkdir -p $R; export PYTHONUNBUFFERED=1
python -m pip install -q --no-deps --no-build-isolation -e . > $R/pip.log 2>&1
timeout 250 python -m pytest -q -m gpu tests/test_bounds.py -p no:cacheprovider > $R/fixed.log 2>&1; tail -3 $R/fixed.log
(cd .gpu/wt/head && python -m pip install -q --no-deps --no-build-isolation -e . >> $R/pip.log 2>&1 && timeout 200 python -m pytest -q -m gpu tests/test_bounds.py -p no:cacheprovider > $R/unfixed.log 2>&1; tail -3 $R/unfixed.log; grep -m3 -A3 "Invalid" $R/unfixed.log)
python -m pip install -q --no-deps --no-build-isolation -e . >> $R/pip.log 2>&1
