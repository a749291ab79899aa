//! Driver options (`--storage-opt` on dockerd, `Opts` in the plugin's Init) and per-layer storage
//! options, from raw `key=value` strings to validated values. An unknown key is an error that
//! names it. Pure: no syscalls.

use std::collections::BTreeMap;

use crate::error::Error;

/// Validated driver options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// `overlay2.override_kernel_check`: accept kernels the probes would refuse.
    pub override_kernel_check: bool,
    /// `overlay2.size`: default quota, in bytes, of every read-write layer.
    pub size: Option<u64>,
    /// `overlay2.inodes`: default inode limit of every read-write layer.
    pub inodes: Option<u64>,
    /// `strata.mount_api=legacy`: never use the new mount API, as on kernels before 6.8
    /// (strata's own option; for testing the legacy path and working around kernel bugs).
    pub force_legacy_mount: bool,
}

impl Options {
    /// Parses `key=value` strings. Keys are case-insensitive and may omit the `overlay2.` prefix.
    ///
    /// # Errors
    /// [`Error::InvalidOption`] naming the option that is unknown or malformed.
    pub fn parse<S: AsRef<str>>(raw: impl IntoIterator<Item = S>) -> Result<Options, Error> {
        let mut o = Options::default();
        for item in raw {
            let item = item.as_ref();
            let (key, val) = split_kv(item)?;
            let lower = key.to_ascii_lowercase();
            let bare = lower
                .strip_prefix("overlay2.")
                .or_else(|| lower.strip_prefix("strata."))
                .unwrap_or(&lower);
            match bare {
                "override_kernel_check" => {
                    o.override_kernel_check = parse_bool(val).map_err(|reason| bad(item, reason))?
                }
                "size" => o.size = nonzero(parse_size(val).map_err(|reason| bad(item, reason))?),
                "inodes" => {
                    o.inodes = nonzero(parse_count(val).map_err(|reason| bad(item, reason))?)
                }
                "mount_api" => {
                    o.force_legacy_mount = match val {
                        "auto" => false,
                        "legacy" => true,
                        _ => return Err(bad(item, "expected auto or legacy")),
                    }
                }
                _ => {
                    return Err(bad(
                        item,
                        format!(
                            "unknown option {key:?}; known: overlay2.size, overlay2.inodes, \
                             overlay2.override_kernel_check, strata.mount_api"
                        ),
                    ))
                }
            }
        }
        Ok(o)
    }
}

/// Validated per-layer storage options (`docker run --storage-opt size=10M`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StorageOpts {
    /// Quota in bytes.
    pub size: Option<u64>,
    /// Inode limit.
    pub inodes: Option<u64>,
}

impl StorageOpts {
    /// Parses a storage-option map (keys case-insensitive).
    ///
    /// # Errors
    /// [`Error::InvalidOption`] naming an unknown key or a malformed value.
    pub fn parse(raw: &BTreeMap<String, String>) -> Result<StorageOpts, Error> {
        let mut o = StorageOpts::default();
        for (key, val) in raw {
            let item = format!("{key}={val}");
            match key.to_ascii_lowercase().as_str() {
                "size" => o.size = nonzero(parse_size(val).map_err(|r| bad(&item, r))?),
                "inodes" => o.inodes = nonzero(parse_count(val).map_err(|r| bad(&item, r))?),
                _ => {
                    return Err(bad(
                        &item,
                        format!("unknown storage option {key:?}; known: size, inodes"),
                    ))
                }
            }
        }
        Ok(o)
    }

    /// True when no limit is asked for.
    pub fn is_empty(&self) -> bool {
        self.size.is_none() && self.inodes.is_none()
    }
}

fn nonzero(v: u64) -> Option<u64> {
    (v != 0).then_some(v)
}

fn bad(item: &str, reason: impl Into<String>) -> Error {
    Error::InvalidOption {
        option: item.to_owned(),
        reason: reason.into(),
    }
}

fn split_kv(item: &str) -> Result<(&str, &str), Error> {
    match item.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim(), v.trim())),
        _ => Err(bad(item, "expected key=value")),
    }
}

fn parse_bool(v: &str) -> Result<bool, String> {
    // The spellings Go's strconv.ParseBool accepts, which dockerd users write.
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(format!("{v:?} is not a boolean (use true or false)")),
    }
}

fn parse_count(v: &str) -> Result<u64, String> {
    v.parse::<u64>()
        .map_err(|_| format!("{v:?} is not a whole number"))
}

/// Parses a size as Docker's `units.RAMInBytes` does: a number with an optional binary suffix
/// `k`, `m`, `g`, `t`, `p` (optionally followed by `b` or `ib`), case-insensitive.
///
/// # Errors
/// A message saying what is wrong with `v`.
pub fn parse_size(v: &str) -> Result<u64, String> {
    let err = || format!("{v:?} is not a size (examples: 10G, 512M, 1048576)");
    let s = v.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    if num.is_empty() {
        return Err(err());
    }
    let suffix = suffix.trim().to_ascii_lowercase();
    let mult: u64 = match suffix.as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        "p" | "pb" | "pib" => 1 << 50,
        _ => return Err(err()),
    };
    if let Ok(n) = num.parse::<u64>() {
        return n.checked_mul(mult).ok_or_else(err);
    }
    let f: f64 = num.parse().map_err(|_| err())?;
    let bytes = f * mult as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(err());
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_accepts_prefixed_and_bare_keys() {
        let o = Options::parse(["overlay2.size=10M", "Override_Kernel_Check=true"]).unwrap();
        assert_eq!(o.size, Some(10 << 20));
        assert!(o.override_kernel_check);
    }

    #[test]
    fn options_parse_unknown_key_names_it() {
        let e = Options::parse(["overlay2.bogus=1"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("overlay2.bogus"), "{e}");
        let e = Options::parse(["size"]).unwrap_err().to_string();
        assert!(e.contains("expected key=value"), "{e}");
        let e = Options::parse(["size=lots"]).unwrap_err().to_string();
        assert!(e.contains("size=lots"), "{e}");
    }

    #[test]
    fn parse_size_follows_docker_units() {
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert_eq!(parse_size("10k").unwrap(), 10240);
        assert_eq!(parse_size("10MB").unwrap(), 10 << 20);
        assert_eq!(parse_size("1.5g").unwrap(), 3 << 29);
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        assert!(parse_size("-1").is_err());
        assert!(parse_size("10x").is_err());
        assert!(parse_size("99999999999p").is_err());
    }

    #[test]
    fn storage_opts_parse_rejects_unknown() {
        let mut m = BTreeMap::new();
        m.insert("size".to_string(), "10M".to_string());
        assert_eq!(StorageOpts::parse(&m).unwrap().size, Some(10 << 20));
        m.insert("colour".to_string(), "red".to_string());
        assert!(StorageOpts::parse(&m)
            .unwrap_err()
            .to_string()
            .contains("colour"));
    }
}
