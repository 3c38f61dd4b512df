"""Benchmark attn's extend beside its peers: `python benchmarks/bench_extend.py [--peers] [--shapes ...]`
(the same code as `python -m attn bench --op extend`; see attn/bench.py)."""
import sys

from attn.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "--op", "extend", *sys.argv[1:]]))
