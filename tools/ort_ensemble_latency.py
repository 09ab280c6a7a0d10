#!/usr/bin/env python3
"""Batch-1 latency with onnxruntime: a merged ensemble against its members run in turn.

Run by hand (CI never runs Python):

    target/release/smelt merge tests/data/fixtures/digits_ensemble/member_{0,1,2,3}.onnx -o /tmp/ens.onnx
    python3 tools/ort_ensemble_latency.py /tmp/ens.onnx tests/data/fixtures/digits_ensemble/member_{0,1,2,3}.onnx

Prints the median time per call of the merged model and of the members called one after
another (default session options, one thread, 2,000 calls after 200 warm-up calls).
"""

from __future__ import annotations

import sys
import time

import numpy as np
import onnxruntime as ort


def session(path: str) -> ort.InferenceSession:
    o = ort.SessionOptions()
    o.intra_op_num_threads = 1
    o.inter_op_num_threads = 1
    return ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])


def median_us(fn, n: int = 2000, warm: int = 200) -> float:
    for _ in range(warm):
        fn()
    t = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        t.append(time.perf_counter() - t0)
    return float(np.median(t) * 1e6)


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__)
        return 2
    merged, members = session(argv[1]), [session(p) for p in argv[2:]]
    x = np.random.default_rng(0).random((1, 64), dtype=np.float32)
    name = merged.get_inputs()[0].name
    m = median_us(lambda: merged.run(None, {name: x}))
    each = median_us(lambda: [s.run(None, {s.get_inputs()[0].name: x}) for s in members])
    print(f"merged: {m:.1f} us; {len(members)} members in turn: {each:.1f} us; ratio {m / each:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
