"""Benchmark attn's decode beside its peers: `python benchmarks/bench_decode.py [--peers] [--shapes ...]`
(the same code as `python -m attn bench --op decode`; see attn/bench.py)."""
import sys

from attn.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "--op", "decode", *sys.argv[1:]]))
