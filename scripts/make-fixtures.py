#!/usr/bin/env python3
"""Writes the volume files under tests/data/ with other tools (nibabel, SimpleITK,
pydicom), and what those tools say about them, for tests/formats.rs.

Every image holds the raw samples v(i, j, k) = i + 10 j + 100 k (i along x, the fastest
axis) with a scaling the format records; `expected.json` gives, per file, the scaling
and the world (LPS, mm) centre of some voxels as the writing tool computes them.

    pip install nibabel SimpleITK pydicom numpy
    python3 scripts/make-fixtures.py          # rewrites tests/data/
"""
import json
import math
import os
import random
import shutil

import nibabel as nib
import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, RLELossless, generate_uid

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "data")
NX, NY, NZ = 5, 4, 3
PROBES = [(0, 0, 0), (NX - 1, 0, 0), (0, NY - 1, 0), (0, 0, NZ - 1), (NX - 1, NY - 1, NZ - 1)]


def samples_xyz(dtype):
    """v[i, j, k] = i + 10 j + 100 k, shape (NX, NY, NZ)."""
    i, j, k = np.meshgrid(np.arange(NX), np.arange(NY), np.arange(NZ), indexing="ij")
    return (i + 10 * j + 100 * k).astype(dtype)


def rotation(axis, degrees):
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    a = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + s * k + (1 - c) * k @ k


def ras_to_lps(p):
    return [-p[0], -p[1], p[2]]


def nifti_files(expected):
    spacing = np.array([0.8, 1.2, 2.0])
    r = rotation([1, 2, 3], 35)
    affine = np.eye(4)
    affine[:3, :3] = r @ np.diag(spacing)
    affine[:3, 3] = [-12.5, 30.0, 7.25]
    raw = samples_xyz(np.int16)

    # sform (and nibabel's matching qform), int16 scaled by 0.5, -10, gzip.
    img = nib.Nifti1Image(raw, affine)
    img.header.set_data_dtype(np.int16)
    img.header.set_slope_inter(0.5, -10.0)
    name = "nibabel_sform_int16.nii.gz"
    nib.save(img, os.path.join(OUT, name))
    back = nib.load(os.path.join(OUT, name))
    assert back.dataobj.slope == 0.5 and back.dataobj.inter == -10.0
    expected[name] = probe_nifti(back, 0.5, -10.0)

    # qform only, with qfac = -1 (a reflected grid), float32.
    flip = affine.copy()
    flip[:3, 2] *= -1
    img = nib.Nifti1Image(raw.astype(np.float32), None)
    img.header.set_qform(flip, code=1)
    img.header.set_sform(None, code=0)
    name = "nibabel_qform_float32.nii"
    nib.save(img, os.path.join(OUT, name))
    back = nib.load(os.path.join(OUT, name))
    assert back.header["sform_code"] == 0 and back.header["pixdim"][0] == -1
    expected[name] = probe_nifti(back, 1.0, 0.0)

    # NIfTI-2, big-endian float64.
    header = nib.Nifti2Header().as_byteswapped(">")
    img = nib.Nifti2Image(raw.astype(">f8"), affine, header=header)
    name = "nibabel_nifti2_bigendian.nii"
    nib.save(img, os.path.join(OUT, name))
    back = nib.load(os.path.join(OUT, name))
    assert back.header.endianness == ">"
    expected[name] = probe_nifti(back, 1.0, 0.0)


def probe_nifti(img, slope, inter):
    points = {str(list(p)): ras_to_lps(list(nib.affines.apply_affine(img.affine, p))) for p in PROBES}
    return {"slope": slope, "inter": inter, "points": points}


def metaimage_files(expected):
    raw = samples_xyz(np.int16)
    image = sitk.GetImageFromArray(np.transpose(raw, (2, 1, 0)))  # numpy [z, y, x]
    image.SetSpacing([0.7, 0.9, 2.5])
    image.SetOrigin([100.0, -50.0, 25.0])
    image.SetDirection(rotation([0, 1, 1], -40).flatten().tolist())
    for name, compress in [
        ("sitk_int16.mha", False),
        ("sitk_int16_compressed.mha", True),
        ("sitk_int16.mhd", False),
    ]:
        sitk.WriteImage(image, os.path.join(OUT, name), useCompression=compress)
        back = sitk.ReadImage(os.path.join(OUT, name))
        points = {
            str(list(p)): list(back.TransformIndexToPhysicalPoint([int(v) for v in p]))
            for p in PROBES
        }
        expected[name] = {"slope": 1.0, "inter": 0.0, "points": points}


def dicom_series(expected, name, transfer_syntax):
    folder = os.path.join(OUT, name)
    os.makedirs(folder)
    row_dir = np.array([0.0, 1.0, 0.0])  # sagittal slices: rows along y ...
    col_dir = np.array([0.0, 0.0, -1.0])  # ... columns down z
    normal = np.cross(row_dir, col_dir)  # -x
    spacing_rows, spacing_cols, gap = 0.6, 0.75, 1.5
    origin = np.array([20.0, -10.0, 40.0])
    series = generate_uid()
    raw = samples_xyz(np.int16)  # stored value, HU = value - 1024
    order = list(range(NZ))
    random.Random(7).shuffle(order)
    points = {}
    for file_index, k in enumerate(order):
        position = origin + k * gap * normal
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = pydicom.uid.CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID = meta.MediaStorageSOPClassUID
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.Modality = "CT"
        ds.SeriesInstanceUID = series
        ds.InstanceNumber = file_index + 1  # deliberately not the slice order
        ds.ImagePositionPatient = [float(v) for v in position]
        ds.ImageOrientationPatient = [float(v) for v in (*row_dir, *col_dir)]
        ds.PixelSpacing = [spacing_rows, spacing_cols]
        ds.SliceThickness = gap
        ds.Rows, ds.Columns = NY, NX
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
        ds.PixelRepresentation = 1
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
        ds.PixelData = np.ascontiguousarray(raw[:, :, k].T).tobytes()  # rows of columns
        if transfer_syntax != ExplicitVRLittleEndian:
            ds.compress(transfer_syntax)
        ds.save_as(os.path.join(folder, f"IM{random.Random(k).randint(1000, 9999)}_{file_index}"), enforce_file_format=True)
        for p in PROBES:
            if p[2] == k:
                world = position + p[0] * spacing_cols * row_dir + p[1] * spacing_rows * col_dir
                points[str(list(p))] = [float(v) for v in world]
    with open(os.path.join(folder, "notes.txt"), "w") as f:
        f.write("not DICOM: the reader skips this file\n")
    expected[name] = {"slope": 1.0, "inter": -1024.0, "points": points}


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    expected = {"shape_xyz": [NX, NY, NZ]}
    nifti_files(expected)
    metaimage_files(expected)
    dicom_series(expected, "dicom_shuffled", ExplicitVRLittleEndian)
    dicom_series(expected, "dicom_rle", RLELossless)
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
