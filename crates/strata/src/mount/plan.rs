//! Pure: a layer's chain plus the host's probes become a [`MountPlan`]. The limits (500 lower
//! directories, one page of legacy option text) are decided here, so they are unit-tested
//! without root. Never mounts.

use std::path::PathBuf;

use strata_sys::mount::OverlayConfig;

use crate::id::{LayerId, LinkId};
use crate::layout::Layout;
use crate::probe::Probes;

/// The kernel's limit on lower directories of one overlay (`OVL_MAX_STACK`).
pub const MAX_LOWERS: usize = 500;

/// How to mount one layer.
#[derive(Debug, Clone, PartialEq)]
pub enum MountPlan {
    /// A layer without parents: its `diff` directory is the root filesystem; nothing to mount.
    Direct(PathBuf),
    /// New mount API, one `lowerdir+` per lower (Linux 6.8+).
    NewApi {
        /// What to configure.
        config: OverlayConfigPlan,
        /// Mount point.
        target: PathBuf,
    },
    /// Legacy `mount(2)` with option text that fits in a page.
    Legacy {
        /// The option text.
        data: String,
        /// Mount point (relative to `cwd` when that is set).
        target: PathBuf,
        /// Working directory for relative paths (the home), as moby overlay2 does when absolute
        /// paths do not fit in a page.
        cwd: Option<PathBuf>,
        /// Mount without an upper layer.
        read_only: bool,
    },
}

/// What a [`MountPlan::NewApi`] configures: the syscall crate's own description of an overlay
/// (lowers top first, upper and work directories, extra options), handed to it as planned.
pub type OverlayConfigPlan = OverlayConfig;

/// Why a layer cannot be mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    /// More lowers than the kernel stacks.
    TooManyLowers {
        /// Lowers needed.
        lowers: usize,
    },
    /// The legacy option text does not fit in a page even with relative paths.
    DataTooLong {
        /// Bytes needed (with the terminating NUL).
        len: usize,
        /// Page size.
        page: usize,
    },
}

impl std::fmt::Display for PlanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlanError::TooManyLowers { lowers } => write!(
                f,
                "{lowers} lower directories exceed the kernel's limit of {MAX_LOWERS}"
            ),
            PlanError::DataTooLong { len, page } => write!(
                f,
                "mount options need {len} bytes, more than one page ({page}) even with relative \
                 paths"
            ),
        }
    }
}

/// What the plan needs to know about a layer.
#[derive(Debug, Clone)]
pub struct LayerMount<'a> {
    /// The layer.
    pub id: &'a LayerId,
    /// Its parents' link ids, nearest first (the `lower` file).
    pub lowers: &'a [LinkId],
    /// Mount read-only (the layer carries Docker's `committed` marker).
    pub read_only: bool,
    /// SELinux mount label (`context=`), empty for none.
    pub mount_label: &'a str,
}

fn extra_options(probes: &Probes, label: &str) -> Vec<(String, Option<String>)> {
    let mut o = Vec::new();
    // As moby overlay2: index=off when the kernel knows the parameter, so that a layer's upper
    // is not tied to the lowers' inode numbers of one mount (and mounts keep working after the
    // lowers are copied or restored). The store itself prevents double mounts.
    if probes.index_off {
        o.push(("index".to_owned(), Some("off".to_owned())));
    }
    if probes.userxattr {
        o.push(("userxattr".to_owned(), None));
    }
    if !label.is_empty() {
        o.push(("context".to_owned(), Some(format!("\"{label}\""))));
    }
    o
}

fn options_text(opts: &[(String, Option<String>)]) -> String {
    opts.iter()
        .map(|(k, v)| match v {
            Some(v) => format!("{k}={v},"),
            None => format!("{k},"),
        })
        .collect()
}

fn legacy_data(opts: &str, lowers: &[String], upper_work: Option<(String, String)>) -> String {
    let mut s = format!("{opts}lowerdir={}", lowers.join(":"));
    if let Some((u, w)) = upper_work {
        s.push_str(&format!(",upperdir={u},workdir={w}"));
    }
    s
}

/// Plans the mount of `layer` in `layout` on a host with `probes`.
///
/// # Errors
/// [`PlanError`] when the chain cannot be mounted on this host.
pub fn plan(
    layout: &Layout,
    layer: &LayerMount<'_>,
    probes: &Probes,
) -> Result<MountPlan, PlanError> {
    let id = layer.id;
    if layer.lowers.is_empty() {
        return Ok(MountPlan::Direct(layout.diff(id)));
    }
    let n_lowers = layer.lowers.len() + usize::from(layer.read_only);
    if n_lowers > MAX_LOWERS {
        return Err(PlanError::TooManyLowers { lowers: n_lowers });
    }
    let extra = extra_options(probes, layer.mount_label);
    let target = layout.merged(id);
    if probes.new_mount_api {
        let mut lowers: Vec<PathBuf> = Vec::with_capacity(n_lowers);
        // As Docker 20.10: a committed layer mounts read-only with its own diff as top lower.
        if layer.read_only {
            lowers.push(layout.diff(id));
        }
        lowers.extend(layer.lowers.iter().map(|l| layout.link(l)));
        let upper_work = (!layer.read_only).then(|| (layout.diff(id), layout.work(id)));
        return Ok(MountPlan::NewApi {
            config: OverlayConfigPlan {
                lowers,
                upper_work,
                options: extra,
            },
            target,
        });
    }
    let opts = options_text(&extra);
    // Absolute paths first; they need no working directory.
    let mut abs: Vec<String> = Vec::with_capacity(n_lowers);
    if layer.read_only {
        abs.push(layout.diff(id).display().to_string());
    }
    abs.extend(
        layer
            .lowers
            .iter()
            .map(|l| layout.link(l).display().to_string()),
    );
    let abs_uw = (!layer.read_only).then(|| {
        (
            layout.diff(id).display().to_string(),
            layout.work(id).display().to_string(),
        )
    });
    let data = legacy_data(&opts, &abs, abs_uw);
    // mount(2) copies at most one page including the terminating NUL; longer text is cut.
    if data.len() < probes.page_size {
        return Ok(MountPlan::Legacy {
            data,
            target,
            cwd: None,
            read_only: layer.read_only,
        });
    }
    // As moby overlay2 (mountFrom): relative `l/<link>` paths from the home.
    let here = Layout::relative_layer(id);
    let text = |p: PathBuf| p.display().to_string();
    let mut rel: Vec<String> = Vec::with_capacity(n_lowers);
    if layer.read_only {
        rel.push(text(here.diff()));
    }
    rel.extend(layer.lowers.iter().map(|l| text(Layout::relative_link(l))));
    let rel_uw = (!layer.read_only).then(|| (text(here.diff()), text(here.work())));
    let data = legacy_data(&opts, &rel, rel_uw);
    if data.len() >= probes.page_size {
        return Err(PlanError::DataTooLong {
            len: data.len() + 1,
            page: probes.page_size,
        });
    }
    Ok(MountPlan::Legacy {
        data,
        target: here.merged(),
        cwd: Some(layout.home().to_owned()),
        read_only: layer.read_only,
    })
}

/// Checks at create time that a chain of `lowers` below `id` can be mounted both read-write and,
/// once committed, read-only on this host.
///
/// # Errors
/// The [`PlanError`] of the mount that would fail.
pub fn check_mountable(
    layout: &Layout,
    id: &LayerId,
    lowers: &[LinkId],
    probes: &Probes,
) -> Result<(), PlanError> {
    for read_only in [false, true] {
        plan(
            layout,
            &LayerMount {
                id,
                lowers,
                read_only,
                mount_label: "",
            },
            probes,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probes(new_api: bool) -> Probes {
        Probes {
            kernel: "6.1.0".into(),
            kernel_version: (6, 1, 0),
            backing_fs: "extfs",
            d_type: true,
            new_mount_api: new_api,
            index_off: true,
            userxattr: false,
            page_size: 4096,
        }
    }

    fn links(n: usize) -> Vec<LinkId> {
        (0..n).map(|_| LinkId::generate()).collect()
    }

    fn layout() -> Layout {
        Layout::new(PathBuf::from("/var/lib/docker/overlay2"))
    }

    fn id() -> LayerId {
        "f".repeat(64).parse().unwrap()
    }

    #[test]
    fn plan_no_lowers_is_direct_diff() {
        let p = plan(
            &layout(),
            &LayerMount {
                id: &id(),
                lowers: &[],
                read_only: true,
                mount_label: "",
            },
            &probes(true),
        )
        .unwrap();
        assert_eq!(p, MountPlan::Direct(layout().diff(&id())));
    }

    #[test]
    fn plan_new_api_500_layers_read_only_and_read_write() {
        let l = links(499);
        for ro in [false, true] {
            let p = plan(
                &layout(),
                &LayerMount {
                    id: &id(),
                    lowers: &l,
                    read_only: ro,
                    mount_label: "",
                },
                &probes(true),
            )
            .unwrap();
            let MountPlan::NewApi { config, .. } = p else {
                panic!("expected new api")
            };
            assert_eq!(config.lowers.len(), 499 + usize::from(ro));
            assert_eq!(config.upper_work.is_none(), ro);
            if ro {
                assert_eq!(config.lowers[0], layout().diff(&id()));
            }
        }
    }

    #[test]
    fn plan_new_api_501_lowers_refused() {
        let l = links(500);
        let e = plan(
            &layout(),
            &LayerMount {
                id: &id(),
                lowers: &l,
                read_only: true,
                mount_label: "",
            },
            &probes(true),
        )
        .unwrap_err();
        assert_eq!(e, PlanError::TooManyLowers { lowers: 501 });
        assert!(check_mountable(&layout(), &id(), &l, &probes(true)).is_err());
        assert!(check_mountable(&layout(), &id(), &l[..499], &probes(true)).is_ok());
    }

    #[test]
    fn plan_legacy_short_chain_uses_absolute_paths() {
        let l = links(3);
        let p = plan(
            &layout(),
            &LayerMount {
                id: &id(),
                lowers: &l,
                read_only: false,
                mount_label: "",
            },
            &probes(false),
        )
        .unwrap();
        let MountPlan::Legacy { data, cwd, .. } = p else {
            panic!()
        };
        assert!(cwd.is_none());
        assert!(
            data.starts_with("index=off,lowerdir=/var/lib/docker/overlay2/l/"),
            "{data}"
        );
        assert!(data.ends_with(&format!("workdir=/var/lib/docker/overlay2/{}/work", id())));
    }

    #[test]
    fn plan_legacy_long_chain_switches_to_relative_paths_below_a_page() {
        let l = links(128);
        let p = plan(
            &layout(),
            &LayerMount {
                id: &id(),
                lowers: &l,
                read_only: true,
                mount_label: "",
            },
            &probes(false),
        )
        .unwrap();
        let MountPlan::Legacy {
            data, cwd, target, ..
        } = p
        else {
            panic!()
        };
        assert_eq!(cwd, Some(layout().home().to_owned()));
        assert!(data.len() < 4096);
        assert!(data.contains(&format!("lowerdir={}/diff:l/", id())));
        assert_eq!(target, PathBuf::from(format!("{}/merged", id())));
    }

    #[test]
    fn plan_legacy_page_limit_is_exact() {
        // Find the largest chain that fits and check the next one is refused at create time.
        let mut n = 1;
        while check_mountable(&layout(), &id(), &links(n + 1), &probes(false)).is_ok() {
            n += 1;
        }
        assert!(n >= 128, "legacy limit {n} is below Docker's 128");
        let e = check_mountable(&layout(), &id(), &links(n + 1), &probes(false)).unwrap_err();
        let PlanError::DataTooLong { len, page } = e else {
            panic!("{e:?}")
        };
        assert!(len > page);
    }
}
