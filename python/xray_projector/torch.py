"""PyTorch autograd functions for the projector: `project` (line integrals) and
`backproject` (its exact transpose), differentiable with respect to their tensor input.

Import it as ``import xray_projector.torch as xpt`` (only where PyTorch is installed;
the rest of the package does not need it).

How the backward works
----------------------
Siddon and Joseph are *linear* in the attenuation volume: ``p = A mu`` where the matrix
``A`` depends only on the grid and the geometry. So the vector-Jacobian product that
autograd needs is ``A^T g`` for the incoming gradient ``g`` of the projections, which is
exactly what `backproject` computes, and the other way round: the gradient of
`backproject` with respect to the projections is `project` of the incoming volume
gradient. Neither function records an autograd tape through the ray walk: the Rust
library walks each ray once forward and once backward, and nothing is saved between the
two except the grid, the geometry and the method (no tensors). Memory is therefore
O(volume + image): the input, the output and, in the backward, the incoming gradient and
the result.

Because the backward is itself computed by the (non-differentiable) native library, the
functions are differentiable once: a double backward (``create_graph=True`` and then
differentiating the gradient) raises a RuntimeError. Since ``A`` is constant, a second
derivative would be zero with respect to ``mu`` anyway; Hessian-vector products of a loss
``f(A mu)`` can be formed by hand as ``A^T H_f A v`` with these two functions.

Tensors, dtypes and copies
--------------------------
* Only ``torch.float32`` is accepted; any other dtype raises TypeError (no silent
  casting: call ``.float()`` yourself when a float64 tensor is what you have, and know
  that the line integrals are float32 either way).
* A C-contiguous float32 CPU tensor goes to the library without a copy
  (``tensor.detach().numpy()`` shares its memory), and the result comes back without a
  copy (``torch.from_numpy`` of the array the library returned). A non-contiguous
  tensor is first made contiguous, which copies it.
* Batches: ``mu`` may be ``[z, y, x]`` or ``[B, z, y, x]`` (projections ``[views, rows,
  cols]`` or ``[B, views, rows, cols]``). A batch runs as B library calls, one per item,
  each result copied into one preallocated batch tensor as it comes (one copy of the
  output; at most one item's result is held besides it). The geometry is either one
  `Geometry` shared by the whole batch or a sequence of B geometries, one per item, all
  with the same number of views, rows and cols. The grid is shared by the batch.
* CUDA tensors: this layer does **not** yet hand device memory to the library. A CUDA
  tensor is copied to the host, projected there (by the library's own backend, which
  with ``backend="auto"`` may itself be the GPU, uploading the host copy again), and
  the result is copied back to the input's device. Both copies cost time and host
  memory; the result is on the same device as the input. The next step is zero-copy
  device interop: accepting DLPack / ``__cuda_array_interface__`` tensors and handing
  their device pointers to the crate's device buffers (its resident ``DeviceVolume``),
  so that a CUDA tensor never leaves the GPU.
* ``requires_grad`` is handled as for any autograd function: the output requires a
  gradient when the input does, and ``torch.no_grad()`` turns that off.
* Gradients flow to the tensor argument only (``mu`` for `project`, the projections for
  `backproject`). The grid and the geometry are plain numbers, not tensors: there is no
  gradient with respect to the pose. Pose registration through this layer parameterises
  the *volume* instead (e.g. resample ``mu`` with ``torch.nn.functional.grid_sample`` under
  a differentiable rigid transform, or write ``mu`` as a function of the parameters), at
  the cost of that resampling.

Conventions are the package's (see `xray_projector._geometry`): volumes ``[z, y, x]``
with x fastest, mu in 1/mm, lengths in mm, projections ``[views, rows, cols]``.
"""

from __future__ import annotations

from collections.abc import Sequence as _SequenceABC
from typing import Sequence, Tuple, Union

import numpy as np
import torch
from torch.autograd.function import once_differentiable

import xray_projector as _xp
from ._geometry import Geometry, Volume, VolumeGrid

__all__ = ["project", "backproject", "Project", "Backproject"]

GeometryArg = Union[Geometry, Sequence[Geometry]]


def _check_tensor(tensor, name: str) -> None:
    """TypeError unless ``tensor`` is a float32 `torch.Tensor` (no casting)."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    if tensor.dtype != torch.float32:
        raise TypeError(
            f"{name} must be a float32 tensor, got {tensor.dtype} "
            "(this layer does not cast; use .float() if you mean to)"
        )


def _host_array(tensor: torch.Tensor, name: str) -> np.ndarray:
    """The float32 C-contiguous NumPy view of ``tensor``'s data on the host.

    No copy for a contiguous float32 CPU tensor; a non-contiguous one is made contiguous
    (a copy), a CUDA one is copied to the host. Other dtypes raise TypeError.
    """
    _check_tensor(tensor, name)
    t = tensor.detach()
    if t.device.type != "cpu":
        t = t.cpu()
    t = t.resolve_neg().contiguous()
    return t.numpy()


def _to_tensor(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """A tensor on ``device`` for a float32 array the library returned (no copy on the
    CPU unless the array is read-only, which torch cannot share)."""
    if not array.flags.writeable:
        array = array.copy()
    out = torch.from_numpy(np.ascontiguousarray(array))
    if device.type != "cpu":
        out = out.to(device)
    return out


def _as_grid(grid) -> VolumeGrid:
    """A `VolumeGrid` from a grid or a `Volume` (its grid), else TypeError."""
    if isinstance(grid, VolumeGrid):
        return grid
    if isinstance(grid, Volume):
        return grid.grid
    raise TypeError(f"grid must be a VolumeGrid (or a Volume), got {type(grid).__name__}")


def _geometries(geometry: GeometryArg, batch) -> Tuple[Geometry, ...]:
    """The geometry of each item: a 1-tuple for one shared geometry, or B of them.

    ``batch`` is the batch size, or None for an unbatched input (which needs a single
    `Geometry`). A sequence must hold B geometries with the same ``(views, rows, cols)``.
    """
    if isinstance(geometry, Geometry):
        return (geometry,)
    if isinstance(geometry, (str, bytes)) or not isinstance(geometry, _SequenceABC):
        raise TypeError(
            f"geometry must be a Geometry or a sequence of them, got {type(geometry).__name__}"
        )
    items = tuple(geometry)
    for i, g in enumerate(items):
        if not isinstance(g, Geometry):
            raise TypeError(f"geometry[{i}] must be a Geometry, got {type(g).__name__}")
    if batch is None:
        raise ValueError(
            "a sequence of geometries needs a batched input (its first axis one item per geometry)"
        )
    if len(items) != batch:
        raise ValueError(f"{len(items)} geometries for a batch of {batch}")
    shapes = {g.shape for g in items}
    if len(shapes) != 1:
        raise ValueError(
            f"the geometries of a batch must share (views, rows, cols), got {sorted(shapes)}"
        )
    return items


def _project(mu: torch.Tensor, grid: VolumeGrid, geometries, method: str, backend: str) -> torch.Tensor:
    """``A mu`` for an unbatched ``[z, y, x]`` or batched ``[B, z, y, x]`` tensor."""
    array = _host_array(mu, "mu")
    if array.ndim == 3:
        if tuple(array.shape) != tuple(grid.shape):
            raise ValueError(f"mu has shape {tuple(array.shape)} but the grid is {grid.shape}")
        out = _xp.project(Volume(array, grid=grid), geometries[0], method=method, backend=backend)
        return _to_tensor(out, mu.device)
    if array.ndim != 4:
        raise ValueError(f"mu must be [z, y, x] or [B, z, y, x], got shape {tuple(array.shape)}")
    if tuple(array.shape[1:]) != tuple(grid.shape):
        raise ValueError(f"mu has items of shape {tuple(array.shape[1:])} but the grid is {grid.shape}")
    if array.shape[0] == 0:
        raise ValueError("mu has an empty batch")
    out = np.empty((array.shape[0],) + geometries[0].shape, dtype=np.float32)
    for b in range(array.shape[0]):
        geometry = geometries[b if len(geometries) > 1 else 0]
        out[b] = _xp.project(Volume(array[b], grid=grid), geometry, method=method, backend=backend)
    return _to_tensor(out, mu.device)


def _backproject(p: torch.Tensor, geometries, grid: VolumeGrid, method: str, backend: str) -> torch.Tensor:
    """``A^T p`` for unbatched ``[views, rows, cols]`` or batched ``[B, views, rows, cols]``."""
    array = _host_array(p, "projections")
    expected = geometries[0].shape
    if array.ndim == 3:
        if tuple(array.shape) != expected:
            raise ValueError(
                f"projections have shape {tuple(array.shape)} but the geometry's is {expected}"
            )
        out = _xp.backproject(array, geometries[0], grid, method=method, backend=backend)
        return _to_tensor(out, p.device)
    if array.ndim != 4:
        raise ValueError(
            "projections must be [views, rows, cols] or [B, views, rows, cols], "
            f"got shape {tuple(array.shape)}"
        )
    if tuple(array.shape[1:]) != expected:
        raise ValueError(
            f"projections have items of shape {tuple(array.shape[1:])} but the geometry's is {expected}"
        )
    if array.shape[0] == 0:
        raise ValueError("projections have an empty batch")
    out = np.empty((array.shape[0],) + tuple(grid.shape), dtype=np.float32)
    for b in range(array.shape[0]):
        geometry = geometries[b if len(geometries) > 1 else 0]
        out[b] = _xp.backproject(array[b], geometry, grid, method=method, backend=backend)
    return _to_tensor(out, p.device)


def _batch_of(tensor, item_ndim: int):
    """The batch size of a tensor whose items have ``item_ndim`` axes (None if unbatched)."""
    if isinstance(tensor, torch.Tensor) and tensor.dim() == item_ndim + 1:
        return tensor.shape[0]
    return None


class Project(torch.autograd.Function):
    """``p = A mu`` as an autograd function; its backward is `Backproject`'s forward.

    ``Project.apply(mu, grid, geometry, method, backend)`` with ``mu`` a float32 tensor
    ``[z, y, x]`` or ``[B, z, y, x]``, ``grid`` a `VolumeGrid`, ``geometry`` a `Geometry`
    or a sequence of B of them. Prefer the `project` function, which checks its
    arguments the same way and has defaults.
    """

    @staticmethod
    def forward(ctx, mu, grid, geometry, method="siddon", backend="auto"):
        """Line integrals of ``mu`` for every pixel of every view (float32, on ``mu``'s
        device). Saves no tensors for the backward, only the grid and geometry."""
        _check_tensor(mu, "mu")
        grid = _as_grid(grid)
        geometries = _geometries(geometry, _batch_of(mu, 3))
        out = _project(mu, grid, geometries, method, backend)
        ctx.grid, ctx.geometries, ctx.method, ctx.backend = grid, geometries, method, backend
        ctx.mu_device = mu.device
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_p):
        """``A^T grad_p``: the gradient with respect to ``mu`` (None for the others)."""
        if not ctx.needs_input_grad[0]:
            return None, None, None, None, None
        grad_mu = _backproject(grad_p, ctx.geometries, ctx.grid, ctx.method, ctx.backend)
        return grad_mu.to(ctx.mu_device), None, None, None, None


class Backproject(torch.autograd.Function):
    """``x = A^T p`` as an autograd function; its backward is `Project`'s forward.

    ``Backproject.apply(p, geometry, grid, method, backend)`` with ``p`` a float32
    tensor ``[views, rows, cols]`` or ``[B, views, rows, cols]``. Prefer the
    `backproject` function.
    """

    @staticmethod
    def forward(ctx, p, geometry, grid, method="siddon", backend="auto"):
        """The backprojection of ``p`` onto ``grid`` (float32, on ``p``'s device). Saves
        no tensors for the backward, only the grid and geometry."""
        _check_tensor(p, "projections")
        grid = _as_grid(grid)
        geometries = _geometries(geometry, _batch_of(p, 3))
        out = _backproject(p, geometries, grid, method, backend)
        ctx.grid, ctx.geometries, ctx.method, ctx.backend = grid, geometries, method, backend
        ctx.p_device = p.device
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_x):
        """``A grad_x``: the gradient with respect to ``p`` (None for the others)."""
        if not ctx.needs_input_grad[0]:
            return None, None, None, None, None
        grad_p = _project(grad_x, ctx.grid, ctx.geometries, ctx.method, ctx.backend)
        return grad_p.to(ctx.p_device), None, None, None, None


def project(
    mu: torch.Tensor,
    grid: VolumeGrid,
    geometry: GeometryArg,
    method: str = "siddon",
    backend: str = "auto",
) -> torch.Tensor:
    """Line integrals through ``mu`` (differentiable with respect to ``mu``).

    Parameters
    ----------
    mu : torch.Tensor
        float32 attenuation (1/mm), ``[z, y, x]`` or a batch ``[B, z, y, x]``, each item
        of ``grid``'s shape. Any device (CUDA tensors go through host copies).
    grid : VolumeGrid
        Where the voxels are (a `Volume` is accepted and its grid used).
    geometry : Geometry or sequence of Geometry
        One geometry for every item, or (batched ``mu`` only) one per item, all with the
        same ``(views, rows, cols)``.
    method : "siddon" or "joseph"
    backend : "auto", "cpu" or "cuda"
        The library's backend (see `xray_projector.project`).

    Returns
    -------
    torch.Tensor
        float32 ``[views, rows, cols]`` (or ``[B, views, rows, cols]``) on ``mu``'s
        device. Its gradient is the exact backprojection of the incoming gradient.

    Raises
    ------
    TypeError
        ``mu`` is not a float32 tensor, or an argument has the wrong type.
    ValueError
        Shapes disagree, or the library rejects the input (e.g. NaN).
    """
    return Project.apply(mu, grid, geometry, method, backend)


def backproject(
    p: torch.Tensor,
    geometry: GeometryArg,
    grid: VolumeGrid,
    method: str = "siddon",
    backend: str = "auto",
) -> torch.Tensor:
    """The exact transpose of `project`: ``A^T p`` (differentiable with respect to ``p``).

    Parameters
    ----------
    p : torch.Tensor
        float32 projections ``[views, rows, cols]`` or a batch ``[B, views, rows,
        cols]``, matching ``geometry``'s shape.
    geometry : Geometry or sequence of Geometry
        One geometry for every item, or (batched ``p`` only) one per item.
    grid : VolumeGrid
        The grid to backproject onto (a `Volume` is accepted and its grid used).
    method : "siddon" or "joseph"
    backend : "auto", "cpu" or "cuda"

    Returns
    -------
    torch.Tensor
        float32 ``[z, y, x]`` (or ``[B, z, y, x]``) on ``p``'s device, with
        ``<project(x), p> == <x, backproject(p)>`` to float32 rounding.

    Raises
    ------
    TypeError
        ``p`` is not a float32 tensor, or an argument has the wrong type.
    ValueError
        Shapes disagree, or the library rejects the input (e.g. NaN).
    """
    return Backproject.apply(p, geometry, grid, method, backend)
