//! Command-line options shared by the commands: the volume, the scanner, the method and
//! the backend, and their conversion into library types.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use ndarray::Array3;
use xray_projector::hounsfield::{HuToMu, MU_WATER_70KEV};
use xray_projector::io::{
    read_volume, ByteOrder, RawLayout, ReadOptions, SampleType, DEFAULT_MAX_BYTES,
};
use xray_projector::phantom::MaterialPhantom;
use xray_projector::physics::{segmentation, Absorber, Material};
use xray_projector::{
    Backend, CircularScan, GeometryFile, Method, Phantom, ProjectionGeometry, Projector,
    VolumeGeometry,
};

/// Largest phantom edge accepted by --size.
const MAX_PHANTOM_SIZE: usize = 2048;

/// The built-in phantoms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PhantomName {
    /// A head of materials (skull, brain, sinuses, teeth, spine; 256 mm field of view),
    /// rendered through the polychromatic model (80 kV unless --kvp says): the default
    /// of `xray drr`.
    Head,
    /// 3D Shepp-Logan head (Kak-Slaney), 256 mm field of view: the default of
    /// `xray project`.
    SheppLogan,
    /// Nested ellipsoids of the fp256/fp512 benchmark cases.
    Nested,
    /// Body slab of the DRR benchmark cases (body, lungs, spine), 360 mm wide.
    Body,
    /// A uniform box of mu 0.02/mm filling the middle half of the field of view.
    Box,
}

/// Where the volume comes from.
#[derive(Args, Debug)]
pub struct VolumeArgs {
    /// Volume to project: NIfTI (.nii, .nii.gz), MetaImage (.mha, .mhd), a directory
    /// holding one DICOM CT series, a NumPy .npy array [z, y, x], or a headerless file
    /// with --raw. The format is told from the content. Values are mu in 1/mm, or CT
    /// numbers with --hu.
    #[arg(long, value_name = "FILE|DIR", conflicts_with = "phantom")]
    pub volume: Option<PathBuf>,
    /// Voxel size in mm, as SX,SY,SZ (x, y, z order): for .npy and raw volumes, which
    /// do not record it.
    #[arg(
        long,
        value_name = "SX,SY,SZ",
        value_delimiter = ',',
        allow_negative_numbers = true
    )]
    pub spacing: Option<Vec<f64>>,
    /// Read --volume as headerless samples of this shape, NZ,NY,NX (x fastest).
    #[arg(long, value_name = "NZ,NY,NX", value_delimiter = ',', requires_all = ["volume", "dtype"])]
    pub raw: Option<Vec<usize>>,
    /// Sample type of a --raw volume: u8, i8, u16, i16, u32, i32, f32 or f64.
    #[arg(long, value_name = "TYPE", requires = "raw")]
    pub dtype: Option<SampleType>,
    /// A --raw volume's samples are big-endian (default little).
    #[arg(long, requires = "raw")]
    pub big_endian: bool,
    /// Bytes to skip at the start of a --raw volume.
    #[arg(long, value_name = "BYTES", default_value_t = 0, requires = "raw")]
    pub header_bytes: u64,
    /// The volume holds CT numbers (HU): convert them to mu = mu_water (1 + HU/1000),
    /// clipped at 0; with --kvp, to material density maps instead.
    #[arg(long, requires = "volume")]
    pub hu: bool,
    /// Water's attenuation in 1/mm for --hu [default: 0.01929, 70 keV, a 120 kVp CT
    /// beam].
    #[arg(long, value_name = "PER_MM", requires = "hu")]
    pub mu_water: Option<f64>,
    /// Factor on CT numbers above 0 for --hu (bone's attenuation at another energy);
    /// 1 keeps the plain definition [default: 1].
    #[arg(long, value_name = "FACTOR", requires = "hu")]
    pub bone_scale: Option<f64>,
    /// The volume is a label map (whole numbers): give each label its material and,
    /// optionally, its density in g/cm^3 (default: the material's), comma-separated,
    /// as LABEL=MATERIAL or LABEL=MATERIAL:DENSITY (for example
    /// 1=soft_tissue,2=bone:1.85,3=lung:0.3); a label in the map that is given no
    /// material is refused, except 0, which is empty. For the polychromatic model
    /// (--kvp).
    #[arg(
        long,
        value_name = "LABEL=MATERIAL[:DENSITY],...",
        requires = "volume",
        conflicts_with = "hu"
    )]
    pub labels: Option<String>,
    /// Keep the volume where its file puts it (scanner/patient coordinates, LPS) and
    /// give the geometry in that frame. By default the volume's centre is moved to
    /// the origin, so that the scanner options aim at it.
    #[arg(long, requires = "volume")]
    pub world: bool,
    /// Largest file (after decompression) to read, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_BYTES)]
    pub max_bytes: u64,
    /// Built-in phantom to render when no --volume is given (default: head for drr,
    /// shepp-logan for project).
    #[arg(long, value_enum)]
    pub phantom: Option<PhantomName>,
    /// Phantom voxels per edge (the field of view stays the same).
    #[arg(long, value_name = "N", default_value_t = 128)]
    pub size: usize,
}

/// What `drr` and `project` project.
pub enum Input {
    /// One attenuation volume, 1/mm.
    Attenuation(Array3<f32>, VolumeGeometry),
    /// One density map (g/cm^3) per material, for the polychromatic model.
    Materials(Vec<Array3<f32>>, Vec<Absorber>, VolumeGeometry),
}

impl VolumeArgs {
    /// Loads or builds what to project: material maps for the head phantom, or for a
    /// CT in HU when `materials` (a spectrum was asked for); else attenuation.
    /// `default_phantom` stands in for a --phantom not given.
    pub fn load_input(&self, default_phantom: PhantomName, materials: bool) -> Result<Input> {
        let phantom = self.phantom.unwrap_or(default_phantom);
        if self.labels.is_some() && !materials {
            bail!("--labels makes material maps for the polychromatic model: add --kvp");
        }
        match (&self.volume, phantom) {
            (Some(path), _) if materials && self.labels.is_some() => {
                let assignments = parse_labels(self.labels.as_deref().unwrap_or_default())?;
                let loaded = read_volume(path, &self.read_options()?)
                    .with_context(|| format!("reading the label map {}", path.display()))?;
                let maps = segmentation::from_labels(loaded.data.view(), &assignments)
                    .context("the label map's material maps (--labels)")?;
                let absorbers = assignments
                    .iter()
                    .map(|a| Absorber::Material(a.material))
                    .collect();
                Ok(Input::Materials(maps, absorbers, self.placed(loaded.grid)))
            }
            (Some(path), _) if materials => {
                if self.mu_water.is_some() || self.bone_scale.is_some() {
                    bail!(
                        "--mu-water and --bone-scale set the monochromatic HU conversion; with \
                         --kvp the CT becomes material maps"
                    );
                }
                if !self.hu {
                    bail!(
                        "--kvp and --spectrum need materials: a CT in Hounsfield units (add --hu), \
                         a label map (add --labels), or the built-in head (no --volume)"
                    );
                }
                let loaded = read_volume(path, &self.read_options()?)
                    .with_context(|| format!("reading the volume {}", path.display()))?;
                let maps = segmentation::from_hu(loaded.data.view())
                    .context("the CT's material maps (--hu)")?;
                let absorbers = segmentation::CT_MATERIALS
                    .iter()
                    .map(|&m| Absorber::Material(m))
                    .collect();
                Ok(Input::Materials(maps, absorbers, self.placed(loaded.grid)))
            }
            (None, PhantomName::Head) => {
                let n = self.phantom_size()?;
                let grid = VolumeGeometry::centered([n; 3], [256.0 / n as f64; 3]);
                let head = MaterialPhantom::head();
                let maps = head.voxelize(&grid, 1).context("voxelising the head")?;
                Ok(Input::Materials(maps, head.absorbers(), grid))
            }
            _ if materials => bail!(
                "--kvp and --spectrum need materials: the built-in head (--phantom head), a \
                 CT with --hu or a label map with --labels"
            ),
            _ => {
                let (volume, grid) = self.load(phantom)?;
                Ok(Input::Attenuation(volume, grid))
            }
        }
    }

    /// The phantom's voxels per edge, checked.
    fn phantom_size(&self) -> Result<usize> {
        let n = self.size;
        if n == 0 || n > MAX_PHANTOM_SIZE {
            bail!("--size must be between 1 and {MAX_PHANTOM_SIZE}, got {n}");
        }
        Ok(n)
    }

    /// Loads or builds the attenuation volume (1/mm) and its grid; `phantom` when no
    /// --volume is given.
    pub fn load(&self, phantom: PhantomName) -> Result<(Array3<f32>, VolumeGeometry)> {
        if let Some(path) = &self.volume {
            return self.read(path);
        }
        let n = self.phantom_size()?;
        let (phantom, grid) = match phantom {
            PhantomName::Head => bail!(
                "the head phantom is made of materials: it renders through the polychromatic \
                 model (drr and project)"
            ),
            PhantomName::SheppLogan => (
                Phantom::shepp_logan(128.0),
                VolumeGeometry::centered([n; 3], [256.0 / n as f64; 3]),
            ),
            PhantomName::Nested => {
                let voxel = 256.0 / n as f64;
                (
                    Phantom::nested_ellipsoids(voxel * (n as f64 - 1.0) / 2.0),
                    VolumeGeometry::centered([n; 3], [voxel; 3]),
                )
            }
            PhantomName::Body => {
                let nz = ((n * 133) as f64 / 512.0).round().max(1.0) as usize;
                let half_z = 133.0 * 2.5 / 2.0;
                (
                    Phantom::body([-half_z, half_z]),
                    VolumeGeometry::centered(
                        [nz, n, n],
                        [360.0 / n as f64, 360.0 / n as f64, 2.0 * half_z / nz as f64],
                    ),
                )
            }
            PhantomName::Box => (
                Phantom::uniform_box([-64.0; 3], [64.0; 3], 0.02),
                VolumeGeometry::centered([n; 3], [256.0 / n as f64; 3]),
            ),
        };
        let volume = phantom
            .voxelize(&grid, 1)
            .context("voxelising the phantom")?;
        Ok((volume, grid))
    }

    /// Reads `--volume` with the options given.
    fn read(&self, path: &Path) -> Result<(Array3<f32>, VolumeGeometry)> {
        let loaded = read_volume(path, &self.read_options()?)
            .with_context(|| format!("reading the volume {}", path.display()))?;
        let mut data = loaded.data;
        if let Some(conversion) = self.hu_conversion() {
            conversion.apply(&mut data).context("--hu")?;
        }
        Ok((data, self.placed(loaded.grid)))
    }

    /// The reader's options from `--spacing`, `--raw` and its companions, `--max-bytes`.
    pub fn read_options(&self) -> Result<ReadOptions> {
        let spacing = match self.spacing.as_deref() {
            None => None,
            Some(&[sx, sy, sz]) => Some([sx, sy, sz]),
            Some(other) => bail!("--spacing needs three values SX,SY,SZ, got {}", other.len()),
        };
        let raw = match self.raw.as_deref() {
            None => None,
            Some(&[nz, ny, nx]) => Some(RawLayout {
                shape: [nz, ny, nx],
                sample: self.dtype.context("--raw needs --dtype")?,
                order: if self.big_endian {
                    ByteOrder::Big
                } else {
                    ByteOrder::Little
                },
                header_bytes: self.header_bytes,
            }),
            Some(other) => bail!("--raw needs three values NZ,NY,NX, got {}", other.len()),
        };
        Ok(ReadOptions {
            max_bytes: self.max_bytes,
            spacing,
            raw,
        })
    }

    /// The conversion of CT numbers `--hu` asks for, if it does.
    pub fn hu_conversion(&self) -> Option<HuToMu> {
        self.hu.then_some(HuToMu {
            mu_water: self.mu_water.unwrap_or(MU_WATER_70KEV),
            bone_scale: self.bone_scale.unwrap_or(1.0),
        })
    }

    /// The file's grid where `--world` says: as stored, or centred on the origin.
    pub fn placed(&self, grid: VolumeGeometry) -> VolumeGeometry {
        if self.world {
            grid
        } else {
            grid.recentred()
        }
    }
}

/// Parses a size in bytes: `4096`, or with a binary suffix `512K`, `64M`, `2G`, `1T`.
pub fn parse_bytes(text: &str) -> std::result::Result<u64, String> {
    let text = text.trim();
    let (digits, shift) = match text.chars().last() {
        Some('k' | 'K') => (&text[..text.len() - 1], 10),
        Some('m' | 'M') => (&text[..text.len() - 1], 20),
        Some('g' | 'G') => (&text[..text.len() - 1], 30),
        Some('t' | 'T') => (&text[..text.len() - 1], 40),
        _ => (text, 0),
    };
    digits
        .trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1u64 << shift))
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("expected a positive size like 4096, 512M or 2G, got `{text}`"))
}

/// The scanner: a circular-scan position or a geometry file.
#[derive(Args, Debug)]
pub struct ScannerArgs {
    /// Projection geometry file (TOML with a `circular`, `pose` or `vectors` table); replaces the
    /// scanner options below.
    #[arg(long, value_name = "FILE.toml", conflicts_with_all = ["sod", "sdd", "det", "pixel", "angle", "arc"])]
    pub geometry: Option<PathBuf>,
    /// Source to rotation axis distance, mm.
    #[arg(
        long,
        value_name = "MM",
        default_value_t = 1000.0,
        allow_negative_numbers = true
    )]
    pub sod: f64,
    /// Source to detector distance, mm.
    #[arg(
        long,
        value_name = "MM",
        default_value_t = 1500.0,
        allow_negative_numbers = true
    )]
    pub sdd: f64,
    /// Detector size in pixels, ROWSxCOLS.
    #[arg(long, value_name = "ROWSxCOLS", default_value = "256x256", value_parser = parse_detector)]
    pub det: [usize; 2],
    /// Detector pixel size, mm.
    #[arg(
        long,
        value_name = "MM",
        default_value_t = 1.6,
        allow_negative_numbers = true
    )]
    pub pixel: f64,
    /// Angle of the (first) view in degrees; 0 puts the source on -x.
    #[arg(
        long,
        value_name = "DEG",
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    pub angle: f64,
    /// Angle covered by the views of a circular scan in degrees (360: a full turn;
    /// for example 180 plus the fan angle for a short scan). Negative turns clockwise.
    #[arg(
        long,
        value_name = "DEG",
        default_value_t = 360.0,
        allow_negative_numbers = true
    )]
    pub arc: f64,
}

impl ScannerArgs {
    /// The projection geometry: from the file, or a circular scan of `views` views.
    pub fn geometry(&self, views: usize) -> Result<ProjectionGeometry> {
        if let Some(path) = &self.geometry {
            let file = GeometryFile::read(path)?;
            return file
                .geometry()
                .with_context(|| format!("geometry file {}", path.display()));
        }
        Ok(self.circular_scan(views)?.geometry()?)
    }

    /// The circular scan of `views` views: from the options, or from a geometry file
    /// with a `[circular]` table (FDK needs one).
    pub fn circular_scan(&self, views: usize) -> Result<CircularScan> {
        if let Some(path) = &self.geometry {
            return match GeometryFile::read(path)? {
                GeometryFile::Circular(scan) => Ok(scan),
                _ => bail!(
                    "{}: FDK needs a circular scan ([circular]); use --algorithm sirt or cgls \
                     for other geometries",
                    path.display()
                ),
            };
        }
        Ok(CircularScan {
            arc: self.arc.to_radians(),
            ..CircularScan::new(self.sod, self.sdd, views, self.det, self.pixel)
                .starting_at(self.angle.to_radians())
        })
    }
}

/// The grid of a volume to compute (backprojection, reconstruction), centred at the
/// origin.
#[derive(Args, Debug)]
pub struct GridArgs {
    /// Volume size in voxels, as NX,NY,NZ (x, y, z order, like --spacing).
    #[arg(
        long,
        value_name = "NX,NY,NZ",
        value_delimiter = ',',
        default_value = "128,128,128"
    )]
    pub shape: Vec<usize>,
    /// Voxel size in mm, as SX,SY,SZ; the volume is centred at the origin.
    #[arg(
        long,
        value_name = "SX,SY,SZ",
        value_delimiter = ',',
        default_value = "2,2,2",
        allow_negative_numbers = true
    )]
    pub spacing: Vec<f64>,
}

impl GridArgs {
    /// The validated volume geometry.
    pub fn geometry(&self) -> Result<VolumeGeometry> {
        let (&[nx, ny, nz], &[sx, sy, sz]) = (self.shape.as_slice(), self.spacing.as_slice())
        else {
            bail!("--shape and --spacing need three values each (x, y, z order)");
        };
        let grid = VolumeGeometry::centered([nz, ny, nx], [sx, sy, sz]);
        grid.validate().context("--shape/--spacing")?;
        Ok(grid)
    }
}

fn parse_detector(text: &str) -> Result<[usize; 2], String> {
    let (rows, cols) = text
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("expected ROWSxCOLS such as 256x256, got {text:?}"))?;
    let parse = |s: &str| {
        s.trim()
            .parse::<usize>()
            .map_err(|e| format!("{s:?} in {text:?}: {e}"))
    };
    Ok([parse(rows)?, parse(cols)?])
}

/// Ray tracer names on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum MethodName {
    /// Exact path lengths through voxels (Siddon, Amanatides-Woo traversal).
    Siddon,
    /// One bilinear sample per slice of the dominant axis (Joseph; ASTRA's GPU model).
    Joseph,
}

impl From<MethodName> for Method {
    fn from(m: MethodName) -> Method {
        match m {
            MethodName::Siddon => Method::Siddon,
            MethodName::Joseph => Method::Joseph,
        }
    }
}

/// Backend names on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BackendName {
    /// CUDA if usable here, else the CPU (says why).
    Auto,
    /// The CPU (rayon, all cores).
    Cpu,
    /// CUDA, or an error saying why not.
    Cuda,
}

/// Where to compute: `--backend`, and `--devices` for several GPUs.
#[derive(Clone, Debug, Args)]
pub struct BackendArgs {
    /// Where to compute.
    #[arg(long, value_enum, default_value_t = BackendName::Auto)]
    pub backend: BackendName,
    /// CUDA devices to share the work between, by ordinal (`0,1,2,3`): a projection's
    /// views are split between them, a backprojection's slices. Implies `--backend cuda`.
    #[arg(long, value_name = "LIST", value_delimiter = ',', num_args = 1..)]
    pub devices: Option<Vec<u32>>,
    /// Use at most this much memory of each GPU (4096, 512M, 2G): larger volumes run in
    /// slabs of slices, larger projections in batches of views.
    #[arg(long, value_name = "SIZE", value_parser = parse_bytes)]
    pub device_memory: Option<u64>,
}

/// Opens a projector on the named backend (or devices), telling on stderr when Auto
/// falls back.
pub fn projector(args: &BackendArgs) -> Result<Projector> {
    if let Some(devices) = &args.devices {
        if args.backend == BackendName::Cpu {
            bail!("--devices needs the CUDA backend, not --backend cpu");
        }
        let projector = Projector::on_devices(devices)
            .with_context(|| format!("opening CUDA devices {devices:?}"))?;
        return Ok(limited(projector, args.device_memory));
    }
    let backend = match args.backend {
        BackendName::Auto => Backend::Auto,
        BackendName::Cpu => Backend::Cpu,
        BackendName::Cuda => Backend::Cuda,
    };
    let projector = Projector::new(backend).context("opening the backend")?;
    if let Some(reason) = projector.fallback_reason() {
        eprintln!("note: using the CPU backend ({reason})");
    }
    Ok(limited(projector, args.device_memory))
}

/// `projector` with `--device-memory` applied, if given.
fn limited(projector: Projector, device_memory: Option<u64>) -> Projector {
    match device_memory {
        Some(bytes) => projector.with_device_memory(bytes),
        None => projector,
    }
}

/// Parses --labels: `LABEL=MATERIAL[:DENSITY]`, comma-separated.
fn parse_labels(text: &str) -> Result<Vec<segmentation::LabelMaterial>> {
    text.split(',')
        .map(|item| {
            let item = item.trim();
            let (label, rest) = item
                .split_once('=')
                .with_context(|| format!("--labels: {item:?} is not LABEL=MATERIAL[:DENSITY]"))?;
            let label: u32 = label
                .trim()
                .parse()
                .with_context(|| format!("--labels: label {label:?} is not a whole number"))?;
            let (name, density) = match rest.split_once(':') {
                Some((name, density)) => (name, Some(density)),
                None => (rest, None),
            };
            let material: Material = name
                .trim()
                .parse()
                .with_context(|| format!("--labels: label {label}"))?;
            let density = match density {
                Some(d) => d
                    .trim()
                    .parse()
                    .with_context(|| format!("--labels: density {d:?} of label {label}"))?,
                None => material.density(),
            };
            Ok(segmentation::LabelMaterial {
                label,
                material,
                density,
            })
        })
        .collect()
}
