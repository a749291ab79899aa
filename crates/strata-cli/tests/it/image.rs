//! Builders for layer tars and image archives (docker save, OCI) used by the tests.

use std::io::Write;
use std::path::Path;

use strata_image::Digest;

/// An entry of a layer tar.
pub enum E<'a> {
    File(&'a str, &'a str),
    Dir(&'a str),
    /// A whiteout of the named path (`dir/.wh.name`).
    Whiteout(&'a str),
}

pub fn layer_tar(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        match e {
            E::File(name, data) => {
                h.set_size(data.len() as u64);
                h.set_mode(0o644);
                h.set_entry_type(tar::EntryType::Regular);
                h.set_cksum();
                b.append_data(&mut h, name, data.as_bytes()).unwrap();
            }
            E::Dir(name) => {
                h.set_size(0);
                h.set_mode(0o755);
                h.set_entry_type(tar::EntryType::Directory);
                h.set_cksum();
                b.append_data(&mut h, name, &[][..]).unwrap();
            }
            E::Whiteout(path) => {
                let (dir, base) = path.rsplit_once('/').map_or(("", *path), |(d, b)| (d, b));
                let name = if dir.is_empty() {
                    format!(".wh.{base}")
                } else {
                    format!("{dir}/.wh.{base}")
                };
                h.set_size(0);
                h.set_mode(0o600);
                h.set_entry_type(tar::EntryType::Regular);
                h.set_cksum();
                b.append_data(&mut h, name, &[][..]).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(data, 3).unwrap()
}

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

fn config(diff_ids: &[Digest]) -> Vec<u8> {
    let ids: Vec<String> = diff_ids.iter().map(|d| d.to_string()).collect();
    serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": ids}
    }))
    .unwrap()
}

/// A `docker save` archive (layers first, manifest.json last, as Docker writes it).
pub fn docker_save(path: &Path, layers: &[Vec<u8>], diff_ids: &[Digest]) {
    let cfg = config(diff_ids);
    let cfg_name = format!("{}.json", Digest::of(&cfg).hex());
    let mut files = vec![];
    let mut names = vec![];
    for (i, l) in layers.iter().enumerate() {
        let n = format!(
            "{}/layer.tar",
            Digest::of(format!("v1 {i}").as_bytes()).hex()
        );
        files.push((n.clone(), l.clone()));
        names.push(n);
    }
    files.push((cfg_name.clone(), cfg));
    let manifest =
        serde_json::json!([{"Config": cfg_name, "RepoTags": ["test:1"], "Layers": names}]);
    files.push((
        "manifest.json".into(),
        serde_json::to_vec(&manifest).unwrap(),
    ));
    write_tar(path, &files);
}

/// An OCI image archive: `blobs` as stored (maybe compressed), `diff_ids` of their tars.
pub fn oci_archive(path: &Path, blobs: &[Vec<u8>], diff_ids: &[Digest]) {
    let mut files = vec![(
        "oci-layout".to_string(),
        br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
    )];
    let mut add = |data: Vec<u8>| {
        let d = Digest::of(&data);
        let size = data.len();
        files.push((format!("blobs/sha256/{}", d.hex()), data));
        (d, size)
    };
    let (cd, cs) = add(config(diff_ids));
    let layers: Vec<_> = blobs
        .iter()
        .map(|b| {
            let (d, s) = add(b.clone());
            serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d.to_string(), "size": s})
        })
        .collect();
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd.to_string(), "size": cs},
        "layers": layers});
    let (md, ms) = add(serde_json::to_vec(&manifest).unwrap());
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md.to_string(), "size": ms,
         "annotations": {"org.opencontainers.image.ref.name": "test:oci"}}]});
    files.push(("index.json".into(), serde_json::to_vec(&index).unwrap()));
    write_tar(path, &files);
}
