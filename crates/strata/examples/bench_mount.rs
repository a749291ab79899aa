//! Mount benchmark: get+put latency at chain depths 1, 128 and 500, and create+remove throughput,
//! each against the legacy `mount(2)` path (what Docker's overlay2 uses) measured in the same run.
//! Run as root: `cargo run --release -p strata --example bench_mount` (or scripts/bench-mount).
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use strata::{Driver, LayerId, Options, StorageOpts};
use strata_testkit::layer_id as id;

fn chain(d: &Driver, prefix: &str, depth: usize) -> LayerId {
    let none = StorageOpts::default();
    let mut parent: Option<LayerId> = None;
    for i in 0..depth {
        let l = id(&format!("{prefix}-{i:03}"));
        if i + 1 == depth {
            d.create_read_write(&l, parent.as_ref(), &none).unwrap();
        } else {
            d.create(&l, parent.as_ref(), &none).unwrap();
        }
        parent = Some(l);
    }
    parent.unwrap()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn mount_latency(d: &Driver, top: &LayerId, rounds: usize) -> Duration {
    let mut v = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        d.get(top, "").unwrap();
        d.put(top).unwrap();
        v.push(t.elapsed());
    }
    median(v)
}

fn create_remove(d: &Driver, n: usize) -> f64 {
    let none = StorageOpts::default();
    let base = id("cr-base");
    d.create(&base, None, &none).unwrap();
    let t = Instant::now();
    for i in 0..n {
        let l = id(&format!("cr-{i}"));
        d.create_read_write(&l, Some(&base), &none).unwrap();
        d.remove(&l).unwrap();
    }
    let rate = n as f64 / t.elapsed().as_secs_f64();
    d.remove(&base).unwrap();
    rate
}

fn main() {
    let dir = tempfile::Builder::new()
        .prefix("strata-bench-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let new = Driver::open(dir.path().join("new"), Options::default()).unwrap();
    let legacy = Driver::open(
        dir.path().join("legacy"),
        Options::parse(["strata.mount_api=legacy"]).unwrap(),
    )
    .unwrap();
    println!(
        "mount API on this kernel: {}",
        if new.probes().new_mount_api {
            "fsopen/fsconfig lowerdir+"
        } else {
            "legacy only"
        }
    );
    println!(
        "{:<28} {:>12} {:>14} {:>8}",
        "get+put (median of 30)", "strata", "legacy mount", "ratio"
    );
    for depth in [1usize, 2, 128, 500] {
        let top = chain(&new, &format!("n{depth}"), depth);
        let t_new = mount_latency(&new, &top, 30);
        let legacy_top = if depth <= 128 {
            Some(chain(&legacy, &format!("l{depth}"), depth))
        } else {
            None
        };
        match legacy_top {
            Some(lt) => {
                let t_old = mount_latency(&legacy, &lt, 30);
                println!(
                    "{:<28} {:>10.1}us {:>12.1}us {:>7.2}x",
                    format!("depth {depth}"),
                    t_new.as_secs_f64() * 1e6,
                    t_old.as_secs_f64() * 1e6,
                    t_new.as_secs_f64() / t_old.as_secs_f64()
                );
            }
            None => println!(
                "{:<28} {:>10.1}us {:>14} {:>8}",
                format!("depth {depth}"),
                t_new.as_secs_f64() * 1e6,
                "(refused)",
                "-"
            ),
        }
    }
    let n = 300;
    let r_new = create_remove(&new, n);
    let r_old = create_remove(&legacy, n);
    println!("create+remove of a child layer: {r_new:.0}/s (legacy-mount home {r_old:.0}/s, ratio {:.2}x)", r_new / r_old);
    new.cleanup().unwrap();
    legacy.cleanup().unwrap();
}
