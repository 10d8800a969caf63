//! Criterion benches of the forward projector on the standard cases of BENCHMARKS.md
//! (`xray_projector::cases`, the anchors' phantoms and geometry).
//!
//! CPU runs use fewer views than the cases' own (rays per second is what compares with
//! the anchors): fp256 8 views, fp512 2 views, drr1 1 view. Names are
//! `cpu_<method>/<case>/<views>_views_<lanes>_<gather>`, where `<lanes>` is the vector
//! path that ran (`avx512`, `avx2` or `scalar`: the fastest the CPU has, or the one
//! `XRAY_CPU_LANES` caps it to) and `<gather>` how its lanes read voxels (`instruction`
//! or `loads`: this CPU's preferred way, or the one `XRAY_CPU_GATHER` names);
//! throughput is in rays (detector pixels).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use xray_projector::cases::StandardCase;
use xray_projector::{Backend, Gather, LanePath, Method, Projector};

fn cpu_forward(c: &mut Criterion) {
    let projector = Projector::new(Backend::Cpu).expect("the CPU backend is always there");
    for (name, views) in [("fp256", 8), ("drr1", 1), ("fp512", 2)] {
        let case = StandardCase::named(name)
            .expect("a standard case")
            .with_views(views);
        let (volume, geometry) = case.inputs().expect("the standard case fits in memory");
        let rays = geometry.ray_count().expect("the ray count fits") as u64;
        for (label, method) in [("siddon", Method::Siddon), ("joseph", Method::Joseph)] {
            let mut group = c.benchmark_group(format!("cpu_{label}"));
            group.throughput(Throughput::Elements(rays));
            group.sample_size(10);
            group.bench_function(
                BenchmarkId::new(
                    name,
                    format!("{views}_views_{}_{}", LanePath::in_use(), Gather::in_use()),
                ),
                |b| {
                    b.iter(|| {
                        projector
                            .forward(&volume, &case.volume, &geometry, method)
                            .expect("the projection runs")
                    })
                },
            );
            group.finish();
        }
    }
}

criterion_group!(benches, cpu_forward);
criterion_main!(benches);
