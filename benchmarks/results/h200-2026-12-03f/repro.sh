R=$OUT/r; mkdir -p $R; export PYTHONUNBUFFERED=1
python -m pip install -q --no-deps --no-build-isolation -e . > $R/pip.log 2>&1
for s in 2041346535 1 2 3; do ATTN_TEST_SEED=$s CUDA_LAUNCH_BLOCKING=1 timeout 120 python -m pytest -q -x -m gpu "tests/test_decode.py::test_decode_gpu_rotary_rotating_k" -p no:cacheprovider 2>&1 | tail -3; done
cd .gpu/wt/longest && python -m pip install -q --no-deps --no-build-isolation -e . >> $R/pip.log 2>&1
ATTN_TEST_SEED=2041346535 CUDA_LAUNCH_BLOCKING=1 timeout 120 python -m pytest -q -x -m gpu "tests/test_decode.py::test_decode_gpu_rotary_rotating_k" -p no:cacheprovider 2>&1 | tail -30
