"""Benchmark attn's prefill beside its peers: `python benchmarks/bench_prefill.py [--peers] [--shapes ...]`
(the same code as `python -m attn bench --op prefill`; see attn/bench.py)."""
import sys

from attn.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "--op", "prefill", *sys.argv[1:]]))
