"""xray-projector: X-ray line integrals through voxel grids (DRRs, cone-beam CT
sinograms), their exact adjoint, and FDK/SIRT/CGLS reconstruction, on the CPU or an
NVIDIA GPU, from the Rust library of the same name.

Five lines to a DRR of a CT::

    import xray_projector as xp
    ct = xp.Volume.from_file("ct.nii.gz", hu=True)        # mu in 1/mm, centred
    pose = xp.Geometry.drr(source=(0, -1000, 0), sdd=1500, detector=512, pixel=0.8)
    image = xp.drr(ct, pose, i0=1e5)[0]                     # [rows, cols] float32

Conventions (one set, the crate's): mm, 1/mm; volumes ``[z, y, x]`` float32 with
``spacing (sx, sy, sz)`` and ``origin`` the grid's minimum corner; projections
``[views, rows, cols]``; geometries as ASTRA ``cone_vec`` rows (source, detector centre,
u, v). Converters from ASTRA, RTK, TIGRE, pinhole cameras and 3x4 matrices are in
`xray_projector.convert`; PyTorch autograd functions in `xray_projector.torch`;
spectra, materials and polychromatic radiographs with noise in `xray_projector.physics`.

Importing the package loads nothing native; the first call loads the CUDA build of the
native module when an NVIDIA driver is present and the CPU build otherwise (see
`backends()`).
"""

from ._functions import (
    BackendStatus,
    Reconstruction,
    backends,
    backproject,
    cgls,
    drr,
    fdk,
    hu_to_mu,
    project,
    sirt,
)
from ._geometry import Geometry, Volume, VolumeGrid
from . import convert, physics

try:
    from importlib.metadata import PackageNotFoundError, version

    __version__ = version("xray-projector")
except PackageNotFoundError:  # a source tree that is not installed
    __version__ = "unknown"

__all__ = [
    "BackendStatus",
    "Geometry",
    "Reconstruction",
    "Volume",
    "VolumeGrid",
    "backends",
    "backproject",
    "cgls",
    "convert",
    "physics",
    "drr",
    "fdk",
    "hu_to_mu",
    "project",
    "sirt",
]
