//! Pure cleaning of names found in tar entries into relative paths beneath the target root.
//! Never touches the filesystem; the result is a byte string of `/`-separated components with no
//! `.`/`..`/empty components and no leading slash (the root itself is the empty string).

use crate::error::{lossy, Error, Result};

/// Longest component the kernel accepts (`NAME_MAX`).
pub const NAME_MAX: usize = 255;
/// Longest cleaned relative path accepted (`PATH_MAX` minus room for the terminating NUL).
pub const PATH_MAX: usize = 4095;

/// Cleans a tar name as Go's `filepath.Clean` followed by Docker's breakout check would.
///
/// As moby `archive.Unpack`: a rooted name is taken relative to the target (`/etc/x` is
/// `etc/x`, and `..` at the root of a rooted name stays at the root); a relative name whose
/// `..` climbs above the target is an escape.
///
/// # Errors
/// [`Error::Escape`] for a climbing relative name, [`Error::InvalidName`] for a NUL byte or an
/// over-long component or path.
pub fn clean(name: &[u8]) -> Result<Vec<u8>> {
    if name.contains(&0) {
        return Err(Error::InvalidName {
            name: lossy(name),
            reason: "contains a NUL byte",
        });
    }
    let rooted = name.first() == Some(&b'/');
    let mut out: Vec<u8> = Vec::with_capacity(name.len());
    for comp in name.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => {
                if out.is_empty() {
                    if rooted {
                        continue;
                    }
                    return Err(Error::Escape { name: lossy(name) });
                }
                let cut = out.iter().rposition(|&b| b == b'/').unwrap_or(0);
                out.truncate(cut);
            }
            c => {
                if c.len() > NAME_MAX {
                    return Err(Error::InvalidName {
                        name: lossy(name),
                        reason: "a component is longer than 255 bytes",
                    });
                }
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(c);
            }
        }
    }
    if out.len() > PATH_MAX {
        return Err(Error::InvalidName {
            name: lossy(name),
            reason: "longer than 4095 bytes",
        });
    }
    Ok(out)
}

/// Splits a cleaned path into (parent, base); the parent of a single component is empty.
pub fn split_last(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (&[], path),
    }
}

/// Components of a cleaned path (none for the root).
pub fn components(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    path.split(|&b| b == b'/').filter(|c| !c.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_plain_names_normalizes() {
        assert_eq!(clean(b"./a//b/./c/").unwrap(), b"a/b/c");
        assert_eq!(clean(b"a/b/../c").unwrap(), b"a/c");
        assert_eq!(clean(b"./").unwrap(), b"");
        assert_eq!(clean(b"/etc/passwd").unwrap(), b"etc/passwd");
        assert_eq!(clean(b"/../../etc").unwrap(), b"etc");
    }

    #[test]
    fn clean_climbing_relative_name_is_escape() {
        assert!(clean(b"..").unwrap_err().is_escape());
        assert!(clean(b"a/../../b").unwrap_err().is_escape());
        assert!(clean(b"../x").unwrap_err().is_escape());
    }

    #[test]
    fn clean_nul_or_long_component_is_invalid() {
        assert!(matches!(clean(b"a\0b"), Err(Error::InvalidName { .. })));
        let long = vec![b'x'; 256];
        assert!(matches!(clean(&long), Err(Error::InvalidName { .. })));
        let ok = vec![b'x'; 255];
        assert_eq!(clean(&ok).unwrap(), ok);
    }

    #[test]
    fn clean_path_of_path_max_bytes_is_accepted_one_more_is_not() {
        // 16 components of 255 bytes and the slashes between them: 4095 bytes.
        let comp = "c".repeat(255);
        let max = vec![comp.as_str(); 16].join("/");
        assert_eq!(max.len(), PATH_MAX);
        assert_eq!(clean(max.as_bytes()).unwrap().len(), PATH_MAX);
        let mut comps = vec![comp.as_str(); 15];
        let (d, e) = ("d".repeat(200), "e".repeat(55));
        comps.extend([d.as_str(), e.as_str()]);
        let over = comps.join("/");
        assert_eq!(over.len(), PATH_MAX + 1);
        assert!(matches!(
            clean(over.as_bytes()),
            Err(Error::InvalidName { reason, .. }) if reason.contains("4095")
        ));
        // The limit is on the cleaned path: dots and slashes that cleaning drops do not count.
        let padded = format!("./{}/", max.replace('/', "//./"));
        assert_eq!(clean(padded.as_bytes()).unwrap().len(), PATH_MAX);
    }

    #[test]
    fn split_last_parent_and_base() {
        assert_eq!(split_last(b"a/b/c"), (&b"a/b"[..], &b"c"[..]));
        assert_eq!(split_last(b"c"), (&b""[..], &b"c"[..]));
    }

    proptest::proptest! {
        #[test]
        fn clean_never_yields_dotdot_or_absolute(
            comps in proptest::collection::vec(
                proptest::prop_oneof!["\\.\\.", "\\.", "", "[a-c]{1,3}"], 0..12),
            rooted in proptest::bool::ANY,
        ) {
            let mut name = if rooted { String::from("/") } else { String::new() };
            name.push_str(&comps.join("/"));
            if let Ok(p) = clean(name.as_bytes()) {
                proptest::prop_assert!(!p.starts_with(b"/"));
                for c in p.split(|&b| b == b'/') {
                    proptest::prop_assert!(c != b".." && c != b".");
                    proptest::prop_assert!(!c.is_empty() || p.is_empty());
                }
            } else {
                proptest::prop_assert!(!rooted);
            }
        }
    }
}
