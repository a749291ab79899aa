//! Reads an image's metadata into a plan: for each image, its layers from the base up, each with
//! the archive file holding its blob and the diff id it must hash to. Understands `docker save`
//! (`manifest.json` + config) and OCI (`oci-layout`, `index.json`, nested indexes, manifests,
//! configs). Reads only small JSON documents; never opens a layer blob.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::source::Source;

/// Largest JSON document read (manifest, index, config).
const MAX_DOC: u64 = 32 * 1024 * 1024;
/// Deepest nesting of OCI indexes followed.
const MAX_INDEX_DEPTH: usize = 4;

/// One image of an archive: its names and its layers from the base up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImagePlan {
    /// Names the archive gives it (`RepoTags`, or OCI `ref.name` annotations).
    pub tags: Vec<String>,
    /// Layers, base first.
    pub layers: Vec<LayerPlan>,
}

/// One layer to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerPlan {
    /// The archive file holding the blob (`<id>/layer.tar`, `blobs/sha256/<hex>`).
    pub blob: String,
    /// sha256 of the uncompressed tar, from the image config.
    pub diff_id: Digest,
    /// sha256 of the blob as stored, when the metadata names it (OCI descriptors, and Docker
    /// 25+ archives whose layers are `blobs/sha256/<hex>`).
    pub digest: Option<Digest>,
}

/// Reads the plan of every image in `src`.
pub(crate) fn plan(src: &Source) -> Result<Vec<ImagePlan>> {
    if src.has("manifest.json") {
        docker_plan(src)
    } else if src.has("index.json") {
        oci_plan(src)
    } else {
        Err(Error::NotAnImage {
            path: src.path().to_owned(),
            reason: "it holds neither manifest.json (docker save) nor index.json (OCI)".into(),
        })
    }
}

fn bad(src: &Source, doc: &str, reason: impl Into<String>) -> Error {
    Error::BadMetadata {
        archive: src.path().to_owned(),
        doc: doc.to_owned(),
        reason: reason.into(),
    }
}

fn parse_json<T: for<'de> Deserialize<'de>>(
    src: &Source,
    name: &str,
    what: &'static str,
) -> Result<(T, Vec<u8>)> {
    let bytes = src.read_small(name, what, MAX_DOC)?;
    let v = serde_json::from_slice(&bytes).map_err(|e| bad(src, name, e.to_string()))?;
    Ok((v, bytes))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

#[derive(Deserialize)]
struct ImageConfig {
    rootfs: RootFs,
}

#[derive(Deserialize)]
struct RootFs {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    diff_ids: Vec<String>,
}

fn diff_ids(src: &Source, name: &str) -> Result<Vec<Digest>> {
    let (config, _): (ImageConfig, _) = parse_json(src, name, "image config")?;
    if config.rootfs.kind != "layers" {
        return Err(bad(
            src,
            name,
            format!("rootfs type {:?}, expected \"layers\"", config.rootfs.kind),
        ));
    }
    config.rootfs.diff_ids.iter().map(|d| d.parse()).collect()
}

/// `blobs/sha256/<hex>` names its own digest.
fn digest_from_blob_name(name: &str) -> Option<Digest> {
    let hex = name
        .trim_start_matches("./")
        .strip_prefix("blobs/sha256/")?;
    format!("sha256:{hex}").parse().ok()
}

fn docker_plan(src: &Source) -> Result<Vec<ImagePlan>> {
    let (entries, _): (Vec<DockerEntry>, _) = parse_json(src, "manifest.json", "manifest")?;
    if entries.is_empty() {
        return Err(bad(src, "manifest.json", "it lists no image"));
    }
    entries
        .into_iter()
        .map(|e| {
            let ids = diff_ids(src, &e.config)?;
            if ids.len() != e.layers.len() {
                return Err(bad(
                    src,
                    "manifest.json",
                    format!(
                        "{} lists {} layers but its config {} has {} diff ids",
                        e.repo_tags.as_deref().unwrap_or_default().join(","),
                        e.layers.len(),
                        e.config,
                        ids.len()
                    ),
                ));
            }
            let layers = e
                .layers
                .into_iter()
                .zip(ids)
                .map(|(blob, diff_id)| LayerPlan {
                    digest: digest_from_blob_name(&blob),
                    blob,
                    diff_id,
                })
                .collect();
            Ok(ImagePlan {
                tags: e.repo_tags.unwrap_or_default(),
                layers,
            })
        })
        .collect()
}

#[derive(Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    #[serde(default)]
    media_type: Option<String>,
    digest: String,
    #[serde(default)]
    platform: Option<Platform>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Deserialize, Clone)]
struct Platform {
    architecture: String,
    os: String,
}

#[derive(Deserialize)]
struct Index {
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct Manifest {
    config: Descriptor,
    layers: Vec<Descriptor>,
}

/// The OCI architecture name of this host.
fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

fn platform_matches(p: &Option<Platform>) -> bool {
    p.as_ref()
        .is_none_or(|p| p.os == "linux" && p.architecture == host_arch())
}

fn is_index(media_type: &str) -> bool {
    media_type.ends_with("image.index.v1+json") || media_type.ends_with("manifest.list.v2+json")
}

fn is_manifest(media_type: &str) -> bool {
    media_type.ends_with("image.manifest.v1+json")
        || media_type.ends_with("distribution.manifest.v2+json")
}

/// Reads a blob named by `desc` and checks it hashes to the descriptor's digest.
fn read_blob(src: &Source, desc: &Descriptor, what: &'static str) -> Result<Vec<u8>> {
    let digest: Digest = desc.digest.parse()?;
    let name = format!("blobs/sha256/{}", digest.hex());
    let bytes = src.read_small(&name, what, MAX_DOC)?;
    let actual = Digest::of(&bytes);
    if actual != digest {
        return Err(bad(src, &name, format!("content hashes to {actual}")));
    }
    Ok(bytes)
}

fn oci_plan(src: &Source) -> Result<Vec<ImagePlan>> {
    if !src.has("oci-layout") {
        return Err(Error::NotAnImage {
            path: src.path().to_owned(),
            reason: "it has index.json but no oci-layout file".into(),
        });
    }
    let (index, _): (Index, _) = parse_json(src, "index.json", "index")?;
    let mut manifests = Vec::new();
    collect_manifests(src, &index.manifests, 0, &mut manifests)?;
    if manifests.is_empty() {
        return Err(bad(
            src,
            "index.json",
            format!("no image manifest for linux/{}", host_arch()),
        ));
    }
    manifests
        .into_iter()
        .map(|(desc, tags)| oci_image(src, &desc, tags))
        .collect()
}

fn tags_of(desc: &Descriptor) -> Vec<String> {
    [
        "io.containerd.image.name",
        "org.opencontainers.image.ref.name",
    ]
    .iter()
    .find_map(|k| desc.annotations.get(*k).cloned())
    .into_iter()
    .collect()
}

/// Collects the image manifests an index names for this host. At the top level every image is
/// taken (an archive may hold several); inside a nested index, the first one for this platform.
fn collect_manifests(
    src: &Source,
    list: &[Descriptor],
    depth: usize,
    out: &mut Vec<(Descriptor, Vec<String>)>,
) -> Result<()> {
    if depth > MAX_INDEX_DEPTH {
        return Err(bad(src, "index.json", "indexes nest too deep"));
    }
    for desc in list {
        if !platform_matches(&desc.platform)
            || desc
                .annotations
                .get("vnd.docker.reference.type")
                .map(String::as_str)
                == Some("attestation-manifest")
        {
            continue;
        }
        let media_type = desc.media_type.clone().unwrap_or_default();
        if is_manifest(&media_type) {
            out.push((desc.clone(), tags_of(desc)));
        } else if is_index(&media_type) {
            let bytes = read_blob(src, desc, "image index")?;
            let nested: Index = serde_json::from_slice(&bytes)
                .map_err(|e| bad(src, &desc.digest, e.to_string()))?;
            let mut found = Vec::new();
            collect_manifests(src, &nested.manifests, depth + 1, &mut found)?;
            if let Some((m, inner_tags)) = found.into_iter().next() {
                let tags = if inner_tags.is_empty() {
                    tags_of(desc)
                } else {
                    inner_tags
                };
                out.push((m, tags));
            }
        } else {
            tracing::debug!(media_type, digest = desc.digest, "skipping index entry");
        }
    }
    Ok(())
}

fn oci_image(src: &Source, desc: &Descriptor, tags: Vec<String>) -> Result<ImagePlan> {
    let bytes = read_blob(src, desc, "image manifest")?;
    let manifest: Manifest =
        serde_json::from_slice(&bytes).map_err(|e| bad(src, &desc.digest, e.to_string()))?;
    let config_digest: Digest = manifest.config.digest.parse()?;
    read_blob(src, &manifest.config, "image config")?;
    let ids = diff_ids(src, &format!("blobs/sha256/{}", config_digest.hex()))?;
    if ids.len() != manifest.layers.len() {
        return Err(bad(
            src,
            &desc.digest,
            format!(
                "the manifest lists {} layers but the config has {} diff ids",
                manifest.layers.len(),
                ids.len()
            ),
        ));
    }
    let layers = manifest
        .layers
        .iter()
        .zip(ids)
        .map(|(l, diff_id)| {
            let digest: Digest = l.digest.parse()?;
            Ok(LayerPlan {
                blob: format!("blobs/sha256/{}", digest.hex()),
                digest: Some(digest),
                diff_id,
            })
        })
        .collect::<Result<_>>()?;
    Ok(ImagePlan { tags, layers })
}
