//! The solids of a [`super::Phantom`], each with point membership and an exact chord.

/// One solid of constant attenuation.
#[derive(Clone, Debug, PartialEq)]
pub enum Solid {
    /// An ellipsoid rotated about z.
    Ellipsoid(Ellipsoid),
    /// An axis-aligned box.
    Cuboid(Cuboid),
    /// An elliptic cylinder along z.
    EllipticCylinder(EllipticCylinder),
}

impl Solid {
    /// Attenuation inside, 1/mm.
    pub fn mu(&self) -> f64 {
        match self {
            Solid::Ellipsoid(e) => e.mu,
            Solid::Cuboid(c) => c.mu,
            Solid::EllipticCylinder(c) => c.mu,
        }
    }

    /// Whether `p` is inside (boundaries excluded).
    pub fn contains(&self, p: [f64; 3]) -> bool {
        match self {
            Solid::Ellipsoid(e) => e.contains(p),
            Solid::Cuboid(c) => c.contains(p),
            Solid::EllipticCylinder(c) => c.contains(p),
        }
    }

    /// Length (mm) of `{origin + t d : t in [t_min, t_max]}` inside the solid.
    pub fn chord(&self, origin: [f64; 3], d: [f64; 3], t_min: f64, t_max: f64) -> f64 {
        let (t0, t1) = match self {
            Solid::Ellipsoid(e) => e.interval(origin, d),
            Solid::Cuboid(c) => c.interval(origin, d),
            Solid::EllipticCylinder(c) => c.interval(origin, d),
        }
        .unwrap_or((0.0, 0.0));
        let (t0, t1) = (t0.max(t_min), t1.min(t_max));
        if t1 > t0 {
            (t1 - t0) * (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt()
        } else {
            0.0
        }
    }
}

/// An ellipsoid with semi-axes along the x, y, z axes rotated by `angle_z` about z.
#[derive(Clone, Debug, PartialEq)]
pub struct Ellipsoid {
    /// Centre, mm.
    pub centre: [f64; 3],
    /// Semi-axes before rotation, mm.
    pub semi_axes: [f64; 3],
    /// Rotation about z, radians (counter-clockwise seen from +z).
    pub angle_z: f64,
    /// Attenuation inside, 1/mm.
    pub mu: f64,
}

impl Ellipsoid {
    /// `p` in the frame where the ellipsoid is the unit sphere.
    fn to_unit(&self, p: [f64; 3], is_point: bool) -> [f64; 3] {
        let (sin, cos) = self.angle_z.sin_cos();
        let q = if is_point {
            [
                p[0] - self.centre[0],
                p[1] - self.centre[1],
                p[2] - self.centre[2],
            ]
        } else {
            p
        };
        // Rotate by -angle_z, then scale by the semi-axes.
        [
            (cos * q[0] + sin * q[1]) / self.semi_axes[0],
            (-sin * q[0] + cos * q[1]) / self.semi_axes[1],
            q[2] / self.semi_axes[2],
        ]
    }

    fn contains(&self, p: [f64; 3]) -> bool {
        let q = self.to_unit(p, true);
        q[0] * q[0] + q[1] * q[1] + q[2] * q[2] < 1.0
    }

    fn interval(&self, origin: [f64; 3], d: [f64; 3]) -> Option<(f64, f64)> {
        let o = self.to_unit(origin, true);
        let e = self.to_unit(d, false);
        let a = e[0] * e[0] + e[1] * e[1] + e[2] * e[2];
        let b = o[0] * e[0] + o[1] * e[1] + o[2] * e[2];
        let c = o[0] * o[0] + o[1] * o[1] + o[2] * o[2] - 1.0;
        quadratic_interval(a, b, c)
    }
}

/// The interval where `a t^2 + 2 b t + c < 0` (for `a > 0`), if any.
fn quadratic_interval(a: f64, b: f64, c: f64) -> Option<(f64, f64)> {
    if a <= 0.0 {
        return None;
    }
    let disc = b * b - a * c;
    if disc <= 0.0 {
        return None;
    }
    let root = disc.sqrt();
    Some(((-b - root) / a, (-b + root) / a))
}

/// An axis-aligned box.
#[derive(Clone, Debug, PartialEq)]
pub struct Cuboid {
    /// Minimum corner, mm.
    pub min: [f64; 3],
    /// Maximum corner, mm.
    pub max: [f64; 3],
    /// Attenuation inside, 1/mm.
    pub mu: f64,
}

impl Cuboid {
    fn contains(&self, p: [f64; 3]) -> bool {
        (0..3).all(|a| p[a] > self.min[a] && p[a] < self.max[a])
    }

    fn interval(&self, origin: [f64; 3], d: [f64; 3]) -> Option<(f64, f64)> {
        let mut t0 = f64::NEG_INFINITY;
        let mut t1 = f64::INFINITY;
        for a in 0..3 {
            if d[a] == 0.0 {
                if !(origin[a] >= self.min[a] && origin[a] <= self.max[a]) {
                    return None;
                }
            } else {
                let ta = (self.min[a] - origin[a]) / d[a];
                let tb = (self.max[a] - origin[a]) / d[a];
                t0 = t0.max(ta.min(tb));
                t1 = t1.min(ta.max(tb));
            }
        }
        (t1 > t0).then_some((t0, t1))
    }
}

/// An elliptic cylinder along z, between two z planes.
#[derive(Clone, Debug, PartialEq)]
pub struct EllipticCylinder {
    /// Centre in the xy plane, mm.
    pub centre: [f64; 2],
    /// Semi-axes along x and y, mm.
    pub semi_axes: [f64; 2],
    /// `[z_min, z_max]`, mm.
    pub z_range: [f64; 2],
    /// Attenuation inside, 1/mm.
    pub mu: f64,
}

impl EllipticCylinder {
    fn contains(&self, p: [f64; 3]) -> bool {
        let x = (p[0] - self.centre[0]) / self.semi_axes[0];
        let y = (p[1] - self.centre[1]) / self.semi_axes[1];
        x * x + y * y < 1.0 && p[2] > self.z_range[0] && p[2] < self.z_range[1]
    }

    fn interval(&self, origin: [f64; 3], d: [f64; 3]) -> Option<(f64, f64)> {
        let ox = (origin[0] - self.centre[0]) / self.semi_axes[0];
        let oy = (origin[1] - self.centre[1]) / self.semi_axes[1];
        let ex = d[0] / self.semi_axes[0];
        let ey = d[1] / self.semi_axes[1];
        let (mut t0, mut t1) = if ex == 0.0 && ey == 0.0 {
            if ox * ox + oy * oy < 1.0 {
                (f64::NEG_INFINITY, f64::INFINITY)
            } else {
                return None;
            }
        } else {
            quadratic_interval(
                ex * ex + ey * ey,
                ox * ex + oy * ey,
                ox * ox + oy * oy - 1.0,
            )?
        };
        if d[2] == 0.0 {
            if !(origin[2] >= self.z_range[0] && origin[2] <= self.z_range[1]) {
                return None;
            }
        } else {
            let ta = (self.z_range[0] - origin[2]) / d[2];
            let tb = (self.z_range[1] - origin[2]) / d[2];
            t0 = t0.max(ta.min(tb));
            t1 = t1.min(ta.max(tb));
        }
        (t1 > t0).then_some((t0, t1))
    }
}
