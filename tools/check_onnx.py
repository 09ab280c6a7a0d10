#!/usr/bin/env python3
"""Validate ONNX files with onnx.checker.check_model(full_check=True).

Run by hand (CI never runs Python):

    python3 tools/check_onnx.py target/real-models/*/model.onnx

Prints "OK   FILE" or "FAIL FILE: reason" per file; exits 1 if any failed.
full_check=True also runs strict shape inference over the whole graph.
"""

from __future__ import annotations

import argparse
import sys

import onnx


def check(path: str) -> str | None:
    """None if the file passes, else the reason it does not."""
    try:
        # The path form (not a loaded ModelProto) also handles models with
        # external data and models larger than 2 GB.
        onnx.checker.check_model(path, full_check=True)
    except Exception as e:  # checker, shape inference, I/O or parse errors
        msg = str(e).strip().replace("\n", " | ")
        return f"{type(e).__name__}: {msg}"
    return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", metavar="FILE", help="ONNX model files")
    args = ap.parse_args(argv)
    failed = 0
    for path in args.files:
        reason = check(path)
        if reason is None:
            print(f"OK   {path}")
        else:
            failed += 1
            print(f"FAIL {path}: {reason}")
    if failed:
        print(f"{failed} of {len(args.files)} file(s) failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
