# exp/merge-latency (the working tree) against main (.gpu/wt/main), one GPU, one call.
R=$OUT/r; mkdir -p $R; export PYTHONUNBUFFERED=1
ab() { VARIANTS='{"tuned": {}}' LAYOUTS=mixed:HND:16,mixed:vllm:16,1x131072:HND:16,8x32768:HND:16 \
       timeout -k 5 -s INT 60 python .gpu/split_ab.py 2> $R/ab_$1.err | grep -v "_kernel:" > $R/ab_$1.md; echo "== $1"; cat $R/ab_$1.md; }
python -m pip install -q --no-deps --no-build-isolation -e . > $R/pip.log 2>&1; ab branch
(cd .gpu/wt/main && python -m pip install -q --no-deps --no-build-isolation -e . >> $R/pip.log 2>&1); ab main
python -m pip install -q --no-deps --no-build-isolation -e . >> $R/pip.log 2>&1; ab branch2
timeout -k 5 -s INT 60 python -m pytest -q -x -n 8 -m gpu tests/test_merge.py "tests/test_decode.py::test_batch_decode_cuda_graph" "tests/test_decode.py::test_decode_gpu_long" -p no:cacheprovider > $R/tests.log 2>&1; tail -2 $R/tests.log
timeout -k 5 -s INT 100 python -m pytest -q -m gpu tests/test_bounds.py -p no:cacheprovider > $R/bounds.log 2>&1; tail -2 $R/bounds.log
