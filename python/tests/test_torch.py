"""Tests of the PyTorch layer (`xray_projector.torch`).

The ground truths are outside the code under test: the adjoint identity
<A x, y> = <x, A^T y>, central finite differences of a loss, an optimisation that must
find parameters that were used to make its target, per-item calls for batches, and the
NumPy-level functions (the Rust library's own numbers) for bit-for-bit agreement.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import xray_projector as xp  # noqa: E402
import xray_projector.torch as xpt  # noqa: E402

METHODS = ["siddon", "joseph"]


def _grid():
    """A small, deliberately non-cubic grid (nz, ny, nx all different, anisotropic
    spacing), so that any mix-up of the axes changes the numbers."""
    return xp.VolumeGrid((6, 7, 8), spacing=(1.0, 1.1, 0.9))


def _geometry(views=4, start_angle=0.3):
    """A few cone-beam views whose detector covers the grid (magnification 2: the
    ~8 mm grid casts ~16 mm, the detector is 18 x 15 mm). The start angle keeps rays off
    the voxel planes."""
    return xp.Geometry.circular(
        sod=40.0, sdd=80.0, views=views, detector=(10, 12), pixel=1.5, start_angle=start_angle
    )


def _rand(shape, seed):
    """Uniform [0, 1) float32 values from a fixed seed (positive: the inner products
    below then have no cancellation, so their relative rounding is that of the terms)."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g, dtype=torch.float32)


def _dot(a, b):
    """<a, b> accumulated in float64."""
    return float((a.detach().double() * b.detach().double()).sum())


# (a) the adjoint identity through autograd ------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_vjp_of_project_is_the_adjoint(method):
    grid, geom = _grid(), _geometry()
    x = _rand(grid.shape, 1).requires_grad_(True)
    y = _rand(geom.shape, 2)
    ax = xpt.project(x, grid, geom, method=method)
    assert ax.shape == geom.shape and ax.dtype == torch.float32
    # Not vacuous: most pixels see the volume.
    assert float((ax > 0).float().mean()) > 0.5
    (aty,) = torch.autograd.grad(ax, x, grad_outputs=y)
    lhs, rhs = _dot(ax, y), _dot(x, aty)
    rel = abs(lhs - rhs) / abs(lhs)
    print(f"{method}: <Ax,y> = {lhs:.9g}, <x,A^T y> = {rhs:.9g}, relative error {rel:.2e}")
    # f32 terms (each rounded to ~6e-8 relative), positive, summed in f64: ~1e-7 expected.
    assert rel < 1e-5


@pytest.mark.parametrize("method", METHODS)
def test_vjp_of_backproject_is_the_adjoint(method):
    grid, geom = _grid(), _geometry()
    x = _rand(grid.shape, 3)
    y = _rand(geom.shape, 4).requires_grad_(True)
    aty = xpt.backproject(y, geom, grid, method=method)
    assert aty.shape == grid.shape and aty.dtype == torch.float32
    (ax,) = torch.autograd.grad(aty, y, grad_outputs=x)
    lhs, rhs = _dot(ax, y), _dot(x, aty)
    rel = abs(lhs - rhs) / abs(lhs)
    print(f"{method}: <Ax,y> = {lhs:.9g}, <x,A^T y> = {rhs:.9g}, relative error {rel:.2e}")
    assert rel < 1e-5  # as above


# (b) gradients against central finite differences ------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_gradient_matches_central_differences(method):
    """L(mu) = sum(w * (A mu)^2). A is linear in mu (Siddon's lengths and Joseph's
    interpolation weights depend on the geometry only), so L is an exact quadratic and
    the central difference (L(mu + h d) - L(mu - h d)) / 2h = 2 <w A mu, A d> has *no*
    truncation error, whatever h. Only rounding is left, so the step can be large (A h d
    as large as A mu), which keeps L(+) - L(-) of the same order as L(+-) on the rays
    that d changes (the others give bitwise equal terms, which cancel exactly) and the
    check sharp.

    The bound: each projection is a sum of <= ~30 float32 products (Siddon crosses
    <= 21 voxels of this 6 x 7 x 8 grid, Joseph reads 4 taps on each of <= 8 slices),
    each rounded to 6e-8 relative, so a projection is good to <= ~2e-6 relative (worst
    case; typically ~1e-7); the gradient A^T (2 w A mu) likewise. With
    positive mu, w and d nothing cancels in <w A mu, A d>, and L(+-) / (L(+) - L(-)) is
    ~1 here, so the relative error is <= ~4e-6 worst case. 1e-4 leaves a margin of 25
    while a wrong gradient (a transposed axis, a missing factor) is off by O(1).
    """
    grid, geom = _grid(), _geometry()
    mu = 0.02 * (0.5 + _rand(grid.shape, 5))  # 0.01..0.03 /mm, soft-tissue-like
    w = 0.5 + _rand(geom.shape, 6)

    def loss(m):
        p = xpt.project(m, grid, geom, method=method)
        return (w.double() * p.double() ** 2).sum()

    m = mu.clone().requires_grad_(True)
    loss(m).backward()
    grad = m.grad.double()

    directions = [_rand(grid.shape, 10 + k) for k in range(4)]  # random, nonnegative
    for index in [(3, 3, 4), (2, 4, 3)]:  # single voxels near the middle
        d = torch.zeros(grid.shape)
        d[index] = 1.0
        directions.append(d)
    errors = []
    with torch.no_grad():
        for d in directions:
            # Any h is exact; this one makes A(h d) as large as A mu, so that the
            # difference L(+) - L(-) is of the order of L(+-) on the rays it changes.
            h = float(xpt.project(mu, grid, geom, method=method).max()) / float(
                xpt.project(d, grid, geom, method=method).max()
            )
            fd = (float(loss(mu + h * d)) - float(loss(mu - h * d))) / (2 * h)
            an = float((grad * d.double()).sum())
            assert an > 0  # every voxel here is crossed by some ray: not vacuous
            errors.append(abs(fd - an) / abs(an))
    print(f"{method}: max relative error of the gradient vs central differences {max(errors):.2e}")
    assert max(errors) < 1e-4


# (c) registration-style optimisations --------------------------------------------


def _blob_grid():
    """16^3 voxels of 1 mm, centred on the world origin."""
    return xp.VolumeGrid((16, 16, 16), spacing=(1.0, 1.0, 1.0))


def _voxel_centres(grid):
    """World (x, y, z) of every voxel centre, as three float64 tensors [z, y, x]."""
    nz, ny, nx = grid.shape
    o, s = grid.origin, grid.spacing
    z = o[2] + s[2] * (torch.arange(nz, dtype=torch.float64) + 0.5)
    y = o[1] + s[1] * (torch.arange(ny, dtype=torch.float64) + 0.5)
    x = o[0] + s[0] * (torch.arange(nx, dtype=torch.float64) + 0.5)
    zz, yy, xx = torch.meshgrid(z, y, x, indexing="ij")
    return xx, yy, zz


def _blob(grid, shift, sigma=2.5, peak=0.05):
    """A Gaussian blob of attenuation (peak 1/mm) centred at ``shift`` (mm), sampled at
    the voxel centres: a differentiable function of ``shift``. float32 [z, y, x]."""
    xx, yy, zz = _voxel_centres(grid)
    r2 = (xx - shift[0]) ** 2 + (yy - shift[1]) ** 2 + (zz - shift[2]) ** 2
    return (peak * torch.exp(-r2 / (2 * sigma**2))).to(torch.float32)


def test_recovers_the_scale_of_a_volume_from_its_drr():
    grid = _blob_grid()
    geom = xp.Geometry.circular(sod=60.0, sdd=120.0, views=2, detector=16, pixel=2.0, start_angle=0.2)
    mu0 = _blob(grid, (1.0, -2.0, 0.5)) + 0.002  # a blob on a faint uniform box
    true_scale = 1.7
    # The target comes from the NumPy-level DRR, not from the code under test.
    target = torch.from_numpy(xp.drr(xp.Volume((true_scale * mu0).numpy(), grid=grid), geom))
    scale = torch.tensor(1.0, requires_grad=True)
    opt = torch.optim.LBFGS(
        [scale], lr=1.0, max_iter=100, tolerance_grad=1e-12, tolerance_change=1e-15,
        line_search_fn="strong_wolfe",
    )

    def closure():
        opt.zero_grad()
        p = xpt.project(scale * mu0, grid, geom)
        loss = ((torch.exp(-p.double()) - target.double()) ** 2).mean()
        loss.backward()
        return loss

    for _ in range(3):
        opt.step(closure)
    print(f"recovered scale {float(scale.detach()):.7f}, true {true_scale}")
    # The model is exact (same projector, same volume up to the scale), so the optimum is
    # the true scale up to float32 rounding of the target (~1e-7 relative); 1e-3 is the
    # required accuracy.
    assert abs(float(scale.detach()) - true_scale) < 1e-3


def test_recovers_the_shift_of_a_blob_from_its_projections():
    grid = _blob_grid()
    # Three views over half a turn: x and y are seen along u, z along v.
    geom = xp.Geometry.circular(
        sod=60.0, sdd=120.0, views=3, detector=24, pixel=1.5, start_angle=0.2, arc=np.pi
    )
    true_shift = torch.tensor([0.7, -1.3, 0.4], dtype=torch.float64)
    target = xpt.project(_blob(grid, true_shift), grid, geom, method="joseph")
    shift = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS(
        [shift], lr=1.0, max_iter=100, tolerance_grad=1e-14, tolerance_change=1e-16,
        line_search_fn="strong_wolfe",
    )

    def closure():
        opt.zero_grad()
        p = xpt.project(_blob(grid, shift), grid, geom, method="joseph")
        loss = ((p.double() - target.double()) ** 2).sum()
        loss.backward()
        return loss

    for _ in range(3):
        opt.step(closure)
    error = float((shift.detach() - true_shift).abs().max())
    print(f"recovered shift {shift.detach().numpy()}, true {true_shift.numpy()}, max error {error:.2e} mm")
    # The target was made by the same model at the true shift, so the optimum is exactly
    # there; what limits it is float32 rounding of the projections (the loss's minimum
    # is flat to ~1e-7 relative, i.e. ~1e-4 voxel for this blob). 0.01 voxel (1 mm
    # voxels) is a sub-voxel bar two orders above that, which a wrong gradient (sign,
    # axis order) cannot meet from a start 1.5 voxels away.
    assert error < 0.01


# (d) batches ---------------------------------------------------------------------------
# Bit-for-bit comparisons run on the CPU backend, whose sums are in a fixed order; a GPU
# backprojection adds with atomics, in no fixed order.


@pytest.mark.parametrize("method", METHODS)
def test_batch_of_volumes_with_one_geometry_equals_per_item_calls(method):
    grid, geom = _grid(), _geometry()
    mu = _rand((3,) + grid.shape, 20).requires_grad_(True)
    y = _rand((3,) + geom.shape, 21)
    p = xpt.project(mu, grid, geom, method=method, backend="cpu")
    assert p.shape == (3,) + geom.shape
    (g,) = torch.autograd.grad(p, mu, grad_outputs=y)
    for b in range(3):
        assert torch.equal(p[b], xpt.project(mu[b].detach(), grid, geom, method=method, backend="cpu"))
        assert torch.equal(g[b], xpt.backproject(y[b], geom, grid, method=method, backend="cpu"))
    q = xpt.backproject(y, geom, grid, method=method, backend="cpu")
    assert q.shape == (3,) + grid.shape
    for b in range(3):
        assert torch.equal(q[b], xpt.backproject(y[b], geom, grid, method=method, backend="cpu"))


@pytest.mark.parametrize("method", METHODS)
def test_batch_with_one_geometry_per_item_equals_per_item_calls(method):
    grid = _grid()
    geoms = [_geometry(views=3, start_angle=a) for a in (0.1, 0.7, 1.9)]
    mu = _rand((3,) + grid.shape, 22).requires_grad_(True)
    y = _rand((3,) + geoms[0].shape, 23).requires_grad_(True)
    p = xpt.project(mu, grid, geoms, method=method, backend="cpu")
    (g,) = torch.autograd.grad(p, mu, grad_outputs=y.detach())
    q = xpt.backproject(y, geoms, grid, method=method, backend="cpu")
    (gq,) = torch.autograd.grad(q, y, grad_outputs=mu.detach())
    for b in range(3):
        assert torch.equal(p[b], xpt.project(mu[b].detach(), grid, geoms[b], method=method, backend="cpu"))
        assert torch.equal(g[b], xpt.backproject(y[b].detach(), geoms[b], grid, method=method, backend="cpu"))
        assert torch.equal(q[b], xpt.backproject(y[b].detach(), geoms[b], grid, method=method, backend="cpu"))
        assert torch.equal(gq[b], xpt.project(mu[b].detach(), grid, geoms[b], method=method, backend="cpu"))
    # The items really differ (the geometries are not the same).
    assert not torch.equal(p[0], xpt.project(mu[0].detach(), grid, geoms[1], method=method, backend="cpu"))


# (e) errors -------------------------------------------------------------------------


def test_wrong_dtypes_raise_type_error():
    grid, geom = _grid(), _geometry()
    for dtype in (torch.float64, torch.float16, torch.int32):
        with pytest.raises(TypeError):
            xpt.project(torch.zeros(grid.shape, dtype=dtype), grid, geom)
        with pytest.raises(TypeError):
            xpt.backproject(torch.zeros(geom.shape, dtype=dtype), geom, grid)
    with pytest.raises(TypeError):
        xpt.project(np.zeros(grid.shape, np.float32), grid, geom)  # not a tensor
    with pytest.raises(TypeError):
        xpt.project(torch.zeros(grid.shape), grid.shape, geom)  # not a grid
    with pytest.raises(TypeError):
        xpt.project(torch.zeros(grid.shape), grid, geom.vectors)  # not a geometry


def test_wrong_shapes_raise_value_error():
    grid, geom = _grid(), _geometry()
    bad_volumes = [
        torch.zeros(grid.shape[1:]),  # 2-D
        torch.zeros((1, 1) + grid.shape),  # 5-D
        torch.zeros((grid.shape[0] + 1,) + grid.shape[1:]),  # not the grid's shape
        torch.zeros(grid.shape[::-1]),  # [x, y, z] instead of [z, y, x]
        torch.zeros((0,) + grid.shape),  # empty batch
    ]
    for mu in bad_volumes:
        with pytest.raises(ValueError):
            xpt.project(mu, grid, geom)
    bad_projections = [
        torch.zeros(geom.shape[1:]),
        torch.zeros((geom.views, geom.cols, geom.rows)),
        torch.zeros((2, geom.views + 1, geom.rows, geom.cols)),
    ]
    for p in bad_projections:
        with pytest.raises(ValueError):
            xpt.backproject(p, geom, grid)
    # Geometry sequences: only with a batch, one per item, all of one shape.
    with pytest.raises(ValueError):
        xpt.project(torch.zeros(grid.shape), grid, [geom])
    with pytest.raises(ValueError):
        xpt.project(torch.zeros((3,) + grid.shape), grid, [geom, geom])
    with pytest.raises(ValueError):
        xpt.project(torch.zeros((2,) + grid.shape), grid, [geom, _geometry(views=3)])
    # NaN is refused by the library.
    mu = torch.zeros(grid.shape)
    mu[1, 2, 3] = float("nan")
    with pytest.raises(ValueError):
        xpt.project(mu, grid, geom)


def test_double_backward_is_refused():
    grid, geom = _grid(), _geometry()
    mu = _rand(grid.shape, 30).requires_grad_(True)
    p = xpt.project(mu, grid, geom)
    (g,) = torch.autograd.grad((p**2).sum(), mu, create_graph=True)
    with pytest.raises(RuntimeError):
        g.sum().backward()


def test_no_grad_and_requires_grad():
    grid, geom = _grid(), _geometry()
    mu = _rand(grid.shape, 31).requires_grad_(True)
    assert xpt.project(mu, grid, geom).requires_grad
    assert not xpt.project(mu.detach(), grid, geom).requires_grad
    with torch.no_grad():
        assert not xpt.project(mu, grid, geom).requires_grad


# (f) the same numbers as the NumPy-level functions ------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_forward_and_gradient_equal_the_numpy_functions_bit_for_bit(method):
    grid, geom = _grid(), _geometry()
    mu = _rand(grid.shape, 40).requires_grad_(True)
    y = _rand(geom.shape, 41)
    p = xpt.project(mu, grid, geom, method=method, backend="cpu")
    p.backward(y)  # the incoming gradient is y exactly
    want_p = xp.project(xp.Volume(mu.detach().numpy(), grid=grid), geom, method=method, backend="cpu")
    want_g = xp.backproject(y.numpy(), geom, grid, method=method, backend="cpu")
    assert np.array_equal(p.detach().numpy(), want_p)
    assert np.array_equal(mu.grad.numpy(), want_g)
    yy = y.clone().requires_grad_(True)
    q = xpt.backproject(yy, geom, grid, method=method, backend="cpu")
    q.backward(mu.detach())
    assert np.array_equal(q.detach().numpy(), want_g)
    assert np.array_equal(yy.grad.numpy(), want_p)


def test_contiguous_cpu_tensors_are_not_copied(monkeypatch):
    """Spies on the NumPy-level calls: what they receive and return is the tensors' memory."""
    grid, geom = _grid(), _geometry()
    seen = []
    real_project, real_backproject = xp.project, xp.backproject

    def spy_project(volume, *args, **kwargs):
        seen.append(volume.data)
        seen.append(real_project(volume, *args, **kwargs))
        return seen[-1]

    def spy_backproject(projections, *args, **kwargs):
        seen.append(projections)
        seen.append(real_backproject(projections, *args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(xp, "project", spy_project)
    monkeypatch.setattr(xp, "backproject", spy_backproject)
    mu = _rand(grid.shape, 50)
    y = _rand(geom.shape, 51)
    p = xpt.project(mu, grid, geom)
    q = xpt.backproject(y, geom, grid)
    # The inputs are read in place, and the outputs are the library's own arrays.
    assert np.shares_memory(seen[0], mu.numpy())
    assert np.shares_memory(seen[1], p.numpy())
    assert np.shares_memory(seen[2], y.numpy())
    assert np.shares_memory(seen[3], q.numpy())


@pytest.mark.parametrize("method", METHODS)
def test_non_contiguous_input_gives_the_contiguous_result(method):
    grid, geom = _grid(), _geometry()
    base = _rand(grid.shape[::-1], 60)  # [x, y, z]
    mu = base.permute(2, 1, 0)  # a [z, y, x] view, not contiguous
    assert not mu.is_contiguous()
    assert torch.equal(
        xpt.project(mu, grid, geom, method=method, backend="cpu"),
        xpt.project(mu.contiguous(), grid, geom, method=method, backend="cpu"),
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device for torch")
@pytest.mark.parametrize("method", METHODS)
def test_cuda_tensors_come_back_on_their_device(method):
    grid, geom = _grid(), _geometry()
    mu = _rand(grid.shape, 70)
    y = _rand(geom.shape, 71)
    mu_gpu = mu.cuda().requires_grad_(True)
    p = xpt.project(mu_gpu, grid, geom, method=method, backend="cpu")
    assert p.device == mu_gpu.device
    p.backward(y.cuda())
    assert mu_gpu.grad.device == mu_gpu.device
    assert torch.equal(p.cpu(), xpt.project(mu, grid, geom, method=method, backend="cpu"))
    assert torch.equal(mu_gpu.grad.cpu(), xpt.backproject(y, geom, grid, method=method, backend="cpu"))
