//! Builders for what tests feed the store: layer tars (written by the `tar` crate, GNU headers,
//! so they differ from what strata's own writer produces) and image archives in the two
//! layouts `strata load` reads — `docker save` and OCI (archive or layout directory).

use std::io::Write;
use std::path::Path;

use sha2::{Digest as _, Sha256};

/// An entry of a layer tar.
#[derive(Debug, Clone, Copy)]
pub enum Entry<'a> {
    /// A regular file (0644) with its content.
    File(&'a str, &'a str),
    /// A directory (0755).
    Dir(&'a str),
    /// An AUFS whiteout of the named path (`dir/.wh.name`).
    Whiteout(&'a str),
}

/// A layer tar of `entries`, owned by root, mtime fixed.
pub fn layer_tar(entries: &[Entry]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        let (name, data, mode, kind) = match *e {
            Entry::File(name, data) => (name.to_owned(), data, 0o644, tar::EntryType::Regular),
            Entry::Dir(name) => (name.to_owned(), "", 0o755, tar::EntryType::Directory),
            Entry::Whiteout(path) => {
                let name = match path.rsplit_once('/') {
                    Some((dir, base)) => format!("{dir}/.wh.{base}"),
                    None => format!(".wh.{path}"),
                };
                (name, "", 0o600, tar::EntryType::Regular)
            }
        };
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_entry_type(kind);
        h.set_cksum();
        b.append_data(&mut h, name, data.as_bytes()).unwrap();
    }
    b.into_inner().unwrap()
}

/// A layer tar of regular files, each `(name, content)`.
pub fn files_tar(files: &[(&str, &str)]) -> Vec<u8> {
    let entries: Vec<Entry> = files.iter().map(|(n, d)| Entry::File(n, d)).collect();
    layer_tar(&entries)
}

/// `data` gzip-compressed.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// `data` zstd-compressed.
pub fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(data, 3).unwrap()
}

/// `sha256:<hex>` of `data`.
pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex(data))
}

fn hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A tar file at `path` holding `files` as `(name, content)`, in that order.
pub fn write_tar(path: &Path, files: &[(String, Vec<u8>)]) {
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, &data[..]).unwrap();
    }
    b.finish().unwrap();
}

/// An image config naming `diff_ids` (`sha256:<hex>` of each uncompressed layer tar).
pub fn image_config(diff_ids: &[impl ToString]) -> Vec<u8> {
    let ids: Vec<String> = diff_ids.iter().map(ToString::to_string).collect();
    serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": ids}
    }))
    .unwrap()
}

/// The files of a `docker save` archive tagged `tag`: layers first, `manifest.json` last, as
/// Docker writes them.
pub fn docker_save_files(
    layers: &[Vec<u8>],
    diff_ids: &[impl ToString],
    tag: &str,
) -> Vec<(String, Vec<u8>)> {
    let cfg = image_config(diff_ids);
    let cfg_name = format!("{}.json", hex(&cfg));
    let mut files = vec![];
    let mut names = vec![];
    for (i, l) in layers.iter().enumerate() {
        let n = format!("{}/layer.tar", hex(format!("v1 {i}").as_bytes()));
        files.push((n.clone(), l.clone()));
        names.push(n);
    }
    files.push((cfg_name.clone(), cfg));
    let manifest = serde_json::json!([{"Config": cfg_name, "RepoTags": [tag], "Layers": names}]);
    files.push((
        "manifest.json".into(),
        serde_json::to_vec(&manifest).unwrap(),
    ));
    files
}

/// A `docker save` archive at `path` tagged `tag`.
pub fn docker_save(path: &Path, layers: &[Vec<u8>], diff_ids: &[impl ToString], tag: &str) {
    write_tar(path, &docker_save_files(layers, diff_ids, tag));
}

/// How an OCI image is written.
#[derive(Debug, Clone)]
pub struct Oci<'a> {
    /// The `org.opencontainers.image.ref.name` of the image.
    pub tag: &'a str,
    /// The layers' media type (e.g. `application/vnd.oci.image.layer.v1.tar+gzip`).
    pub layer_media_type: &'a str,
    /// Put a manifest for a foreign platform first in the index (a loader must skip it).
    pub foreign_platform_first: bool,
}

impl Default for Oci<'_> {
    fn default() -> Self {
        Oci {
            tag: "test:oci",
            layer_media_type: "application/vnd.oci.image.layer.v1.tar",
            foreign_platform_first: false,
        }
    }
}

/// The files of an OCI image layout: `blobs` as stored (maybe compressed), `diff_ids` of their
/// uncompressed tars.
pub fn oci_files(
    blobs: &[Vec<u8>],
    diff_ids: &[impl ToString],
    how: &Oci,
) -> Vec<(String, Vec<u8>)> {
    let mut files = vec![(
        "oci-layout".to_string(),
        br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
    )];
    let mut add = |data: Vec<u8>| {
        let d = sha256(&data);
        let size = data.len();
        files.push((format!("blobs/sha256/{}", &d["sha256:".len()..]), data));
        (d, size)
    };
    let (cd, cs) = add(image_config(diff_ids));
    let layers: Vec<_> = blobs
        .iter()
        .map(|b| {
            let (d, s) = add(b.clone());
            serde_json::json!({"mediaType": how.layer_media_type, "digest": d, "size": s})
        })
        .collect();
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
        "layers": layers});
    let (md, ms) = add(serde_json::to_vec(&manifest).unwrap());
    let mut manifests = vec![];
    if how.foreign_platform_first {
        manifests.push(serde_json::json!(
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms,
             "platform": {"architecture": "s390x-not-this-host", "os": "linux"}}));
    }
    manifests.push(serde_json::json!(
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms,
         "annotations": {"org.opencontainers.image.ref.name": how.tag}}));
    let index = serde_json::json!({"schemaVersion": 2, "manifests": manifests});
    files.push(("index.json".into(), serde_json::to_vec(&index).unwrap()));
    files
}

/// An OCI image archive at `path`.
pub fn oci_archive(path: &Path, blobs: &[Vec<u8>], diff_ids: &[impl ToString], how: &Oci) {
    write_tar(path, &oci_files(blobs, diff_ids, how));
}
