//! The store's [`MountPlan`] rendered as containerd mount descriptions, which containerd (or
//! any client of the snapshot API) performs itself with legacy `mount(2)`:
//!
//! - a layer without parents ([`MountPlan::Direct`]): a `bind` of its `diff`, `rw,rbind` when
//!   active, `ro,rbind` for a view;
//! - otherwise `overlay` with the plan's options (`index=off`, and `userxattr` in a user
//!   namespace), `lowerdir=` nearest first through the short `l/<link>` paths, and
//!   `upperdir=`/`workdir=` when active.
//!
//! Pure: the plan comes from [`strata::Driver::mount_plan`]; this module
//! never mounts. It also knows how far containerd can mount: [`fits_containerd`] mirrors what
//! containerd does with a long option string (below), so a snapshot whose mount containerd
//! could not perform is refused when it is prepared rather than failing at mount time.
//!
//! containerd passes options to `mount(2)` as one string, and the kernel copies at most one
//! page of it. When the options reach page size − 512 bytes, containerd chdirs (in a helper)
//! into the longest common directory of the lower directories and passes them relative to it;
//! upperdir and workdir stay absolute. strata's lowers all live in `<home>/l/`, so each
//! costs 27 bytes then (26-character link and a colon): about 128 layers on a 4 KiB page with
//! a short home path, which is where containerd's own overlayfs snapshotter stops too.

use strata::mount::plan::MountPlan;

use crate::proto::types::Mount;

/// Renders `plan` as containerd mounts. `read_only` marks a bind as `ro`.
pub fn render(plan: &MountPlan, read_only: bool) -> Vec<Mount> {
    match plan {
        MountPlan::Direct(dir) => vec![Mount {
            r#type: "bind".into(),
            source: dir.display().to_string(),
            target: String::new(),
            options: vec![if read_only { "ro" } else { "rw" }.into(), "rbind".into()],
        }],
        MountPlan::NewApi { config, .. } => {
            let mut options: Vec<String> = config
                .options
                .iter()
                .map(|(k, v)| match v {
                    Some(v) => format!("{k}={v}"),
                    None => k.clone(),
                })
                .collect();
            if let Some((upper, work)) = &config.upper_work {
                options.push(format!("workdir={}", work.display()));
                options.push(format!("upperdir={}", upper.display()));
            }
            let lowers: Vec<String> = config
                .lowers
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            options.push(format!("lowerdir={}", lowers.join(":")));
            vec![Mount {
                r#type: "overlay".into(),
                source: "overlay".into(),
                target: String::new(),
                options,
            }]
        }
        // The store never returns these from `mount_plan`; render them as what they mount.
        MountPlan::Legacy { data, .. } => vec![Mount {
            r#type: "overlay".into(),
            source: "overlay".into(),
            target: String::new(),
            options: data.split(',').map(str::to_owned).collect(),
        }],
    }
}

/// Options containerd turns into mount flags rather than passing in the data string.
const FLAG_OPTIONS: &[&str] = &[
    "async",
    "atime",
    "bind",
    "defaults",
    "dev",
    "diratime",
    "dirsync",
    "exec",
    "mand",
    "noatime",
    "nodev",
    "nodiratime",
    "noexec",
    "nomand",
    "norelatime",
    "nostrictatime",
    "nosuid",
    "rbind",
    "relatime",
    "remount",
    "ro",
    "rw",
    "strictatime",
    "suid",
    "sync",
];

/// The `mount(2)` data string containerd builds from `options` (flags taken out), and the
/// directory it chdirs into first, if any — what containerd 1.6/1.7/2.x do on Linux.
pub fn containerd_data(options: &[String], page_size: usize) -> (String, Option<String>) {
    let data: Vec<&str> = options
        .iter()
        .map(String::as_str)
        .filter(|o| !FLAG_OPTIONS.contains(o))
        .collect();
    let joined = data.join(",");
    if joined.len() < page_size.saturating_sub(512) {
        return (joined, None);
    }
    let Some(idx) = data.iter().position(|o| o.starts_with("lowerdir=")) else {
        return (joined, None);
    };
    let dirs: Vec<&str> = data[idx]["lowerdir=".len()..].split(':').collect();
    if dirs.len() < 2 {
        return (joined, None);
    }
    let prefix = common_prefix(&dirs);
    // The common directory: the prefix up to its last slash (as path.Dir would give it).
    let Some(cut) = prefix.rfind('/') else {
        return (joined, None);
    };
    let dir = &prefix[..cut];
    if dir.is_empty() {
        return (joined, None);
    }
    let common = format!("{dir}/");
    if dirs.iter().any(|d| d.len() <= common.len()) {
        return (joined, None);
    }
    let rel: Vec<&str> = dirs.iter().map(|d| &d[common.len()..]).collect();
    let mut out: Vec<String> = data.iter().map(|s| (*s).to_owned()).collect();
    out.remove(idx);
    out.push(format!("lowerdir={}", rel.join(":")));
    (out.join(","), Some(dir.to_owned()))
}

fn common_prefix<'a>(dirs: &[&'a str]) -> &'a str {
    let first = dirs[0];
    let mut len = first.len();
    for d in &dirs[1..] {
        len = first
            .bytes()
            .zip(d.bytes())
            .take(len)
            .take_while(|(a, b)| a == b)
            .count();
    }
    &first[..len]
}

/// Whether containerd can perform `mounts` on a host with `page_size`: the data string it
/// would pass (after its chdir trick) fits in a page with its terminating NUL.
pub fn fits_containerd(mounts: &[Mount], page_size: usize) -> Result<(), String> {
    for m in mounts {
        let (data, _) = containerd_data(&m.options, page_size);
        if data.len() >= page_size {
            return Err(format!(
                "containerd would pass {} bytes of {} mount options even relative to the \
                 common lower directory, more than a page ({page_size}) holds",
                data.len() + 1,
                m.r#type
            ));
        }
    }
    Ok(())
}

/// The page size of this host.
pub fn page_size() -> usize {
    rustix::param::page_size()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use strata::mount::plan::OverlayConfigPlan;

    use super::*;

    fn overlay(n: usize, upper: bool) -> MountPlan {
        MountPlan::NewApi {
            config: OverlayConfigPlan {
                lowers: (0..n)
                    .map(|i| PathBuf::from(format!("/var/lib/strata-ctrd/l/{i:026}")))
                    .collect(),
                upper_work: upper.then(|| {
                    (
                        PathBuf::from("/var/lib/strata-ctrd/snap-9/diff"),
                        PathBuf::from("/var/lib/strata-ctrd/snap-9/work"),
                    )
                }),
                options: vec![("index".into(), Some("off".into()))],
            },
            target: PathBuf::from("/unused"),
        }
    }

    #[test]
    fn render_direct_is_bind_rw_or_ro() {
        let p = MountPlan::Direct(PathBuf::from("/h/snap-1/diff"));
        let m = render(&p, false);
        assert_eq!(m[0].r#type, "bind");
        assert_eq!(m[0].source, "/h/snap-1/diff");
        assert_eq!(m[0].options, ["rw", "rbind"]);
        assert_eq!(render(&p, true)[0].options, ["ro", "rbind"]);
    }

    #[test]
    fn render_overlay_active_has_upper_work_and_lowers_nearest_first() {
        let m = render(&overlay(2, true), false);
        assert_eq!(m[0].r#type, "overlay");
        assert_eq!(
            m[0].options,
            [
                "index=off",
                "workdir=/var/lib/strata-ctrd/snap-9/work",
                "upperdir=/var/lib/strata-ctrd/snap-9/diff",
                &format!(
                    "lowerdir=/var/lib/strata-ctrd/l/{:026}:/var/lib/strata-ctrd/l/{:026}",
                    0, 1
                ),
            ]
        );
        let v = render(&overlay(2, false), true);
        assert!(!v[0].options.iter().any(|o| o.starts_with("upperdir")));
    }

    #[test]
    fn containerd_data_short_options_stay_absolute() {
        let m = render(&overlay(3, true), false);
        let (data, dir) = containerd_data(&m[0].options, 4096);
        assert!(dir.is_none());
        assert!(data.contains("lowerdir=/var/lib/"));
    }

    #[test]
    fn containerd_data_long_options_chdir_to_the_link_dir() {
        let m = render(&overlay(128, true), false);
        let (data, dir) = containerd_data(&m[0].options, 4096);
        assert_eq!(dir.as_deref(), Some("/var/lib/strata-ctrd/l"));
        assert!(data.ends_with(&format!("{:026}", 127)), "{data}");
        assert!(data.contains(&format!("lowerdir={:026}:", 0)));
        assert!(fits_containerd(&m, 4096).is_ok());
    }

    #[test]
    fn fits_containerd_limit_on_a_4k_page() {
        let mut n = 2;
        while fits_containerd(&render(&overlay(n + 1, true), false), 4096).is_ok() {
            n += 1;
        }
        // 27 bytes per lower after the chdir: about 148 lowers with this home.
        assert!(n >= 128, "{n}");
        assert!(n < 160, "{n}");
    }
}
