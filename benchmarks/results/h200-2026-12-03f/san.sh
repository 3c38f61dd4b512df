R=$OUT/r; mkdir -p $R; export PYTHONUNBUFFERED=1
python -m pip install -q --no-deps --no-build-isolation -e . > $R/pip.log 2>&1
CS=$(which compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1 || find / -name compute-sanitizer -type f 2>/dev/null | head -1); echo "CS=$CS"
[ -n "$CS" ] && ATTN_TEST_SEED=2041346535 timeout 400 $CS --tool memcheck --print-limit 5 python -m pytest -q -x -m gpu "tests/test_decode.py::test_decode_gpu_rotary_rotating_k" -p no:cacheprovider > $R/san.log 2>&1; tail -40 $R/san.log
