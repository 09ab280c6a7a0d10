#!/usr/bin/env python3
"""Batch-1 latency of one model with onnxruntime, for docs/performance.md's comparisons.

Run by hand (CI never runs Python):

    python3 tools/ort_latency.py tests/data/small_models/vit_tiny/model.onnx \\
        tests/data/small_models/vit_tiny/test_data_set_0

Feeds input_K.pb from the folder to graph input K and prints the median time per call
(default graph optimizations, one intra-op and one inter-op thread, 2,000 calls after 200
warm-up calls) — the single-threaded setting smelt's benchmark uses for itself and tract.
"""

from __future__ import annotations

import os
import sys

import onnx
from onnx import numpy_helper

from ort_ensemble_latency import median_us, session


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    s = session(argv[1])
    feed = {}
    for k, inp in enumerate(s.get_inputs()):
        t = onnx.load_tensor(os.path.join(argv[2], f"input_{k}.pb"))
        feed[inp.name] = numpy_helper.to_array(t)
    print(f"{argv[1]}: onnxruntime median {median_us(lambda: s.run(None, feed)):.1f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
