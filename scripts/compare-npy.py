#!/usr/bin/env python3
"""Compares two float32 .npy files element by element, without NumPy.

usage: compare-npy.py GOT.npy WANT.npy [RELATIVE_TOLERANCE]

Prints the shape, the largest |got - want| relative to the largest |want|, and how
many elements differ at all; exits 1 if the shapes differ or the relative difference
exceeds the tolerance (default 1e-5, the GPU-vs-CPU bound of tests/gpu.rs).
"""
import ast
import struct
import sys
from array import array


def read_npy(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:6] != b"\x93NUMPY":
        sys.exit(f"{path}: not a .npy file")
    major = data[6]
    if major == 1:
        (length,) = struct.unpack("<H", data[8:10])
        start = 10
    else:
        (length,) = struct.unpack("<I", data[8:12])
        start = 12
    header = ast.literal_eval(data[start:start + length].decode("latin1"))
    if header["descr"] != "<f4" or header["fortran_order"]:
        sys.exit(f"{path}: expected little-endian float32 in C order, got {header}")
    values = array("f")
    values.frombytes(data[start + length:])
    return tuple(header["shape"]), values


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    tolerance = float(sys.argv[3]) if len(sys.argv) == 4 else 1e-5
    got_shape, got = read_npy(sys.argv[1])
    want_shape, want = read_npy(sys.argv[2])
    if got_shape != want_shape or len(got) != len(want):
        sys.exit(f"shapes differ: {got_shape} vs {want_shape}")
    scale = max((abs(w) for w in want), default=0.0)
    worst = max((abs(g - w) for g, w in zip(got, want)), default=0.0)
    differing = sum(1 for g, w in zip(got, want) if g != w)
    relative = worst / scale if scale > 0 else worst
    print(f"shape {got_shape}: max |got - want| = {worst:.3e} ({relative:.2e} of the max {scale:.4f}); "
          f"{differing} of {len(want)} elements differ")
    if relative > tolerance:
        sys.exit(f"relative difference {relative:.2e} exceeds {tolerance:.0e}")


if __name__ == "__main__":
    main()
