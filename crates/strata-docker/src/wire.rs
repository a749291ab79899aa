//! The JSON bodies of Docker's graphdriver plugin protocol, as dockerd 20.10 sends and reads them
//! (moby `daemon/graphdriver/proxy.go` and `pkg/plugins`). Field names are Go's, so every type
//! renames its fields; what dockerd omits (`omitempty`) defaults here. This module only describes
//! bytes: it never touches the store or a socket.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The media type dockerd sends in `Accept` and that replies carry.
pub const PLUGIN_MEDIA_TYPE: &str = "application/vnd.docker.plugins.v1.2+json";

/// A call of the plugin protocol: the path of `POST /<Method>`, parsed once per request. The
/// spelling of every method lives here and nowhere else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// `Plugin.Activate`: which subsystems the plugin implements.
    Activate,
    /// `GraphDriver.Init`: the home and options; opens the store.
    Init,
    /// `GraphDriver.Capabilities`.
    Capabilities,
    /// `GraphDriver.Status`: pairs for `docker info`.
    Status,
    /// `GraphDriver.Create`: an image layer.
    Create,
    /// `GraphDriver.CreateReadWrite`: a container layer.
    CreateReadWrite,
    /// `GraphDriver.Remove`.
    Remove,
    /// `GraphDriver.Get`: mount, answer the root directory.
    Get,
    /// `GraphDriver.Put`: release one `Get`.
    Put,
    /// `GraphDriver.Exists`.
    Exists,
    /// `GraphDriver.GetMetadata`.
    GetMetadata,
    /// `GraphDriver.Cleanup`: dockerd is stopping.
    Cleanup,
    /// `GraphDriver.ApplyDiff`: the layer tar is the body, the ids are in the query.
    ApplyDiff,
    /// `GraphDriver.Diff`: the layer tar is the reply.
    Diff,
    /// `GraphDriver.Changes`.
    Changes,
    /// `GraphDriver.DiffSize`.
    DiffSize,
}

impl Method {
    /// Every method, in the order of the protocol's documentation.
    pub const ALL: [Method; 16] = [
        Method::Activate,
        Method::Init,
        Method::Capabilities,
        Method::Status,
        Method::Create,
        Method::CreateReadWrite,
        Method::Remove,
        Method::Get,
        Method::Put,
        Method::Exists,
        Method::GetMetadata,
        Method::Cleanup,
        Method::ApplyDiff,
        Method::Diff,
        Method::Changes,
        Method::DiffSize,
    ];

    /// The name on the wire, e.g. `GraphDriver.Get` (the request path without its `/`).
    pub fn name(self) -> &'static str {
        match self {
            Method::Activate => "Plugin.Activate",
            Method::Init => "GraphDriver.Init",
            Method::Capabilities => "GraphDriver.Capabilities",
            Method::Status => "GraphDriver.Status",
            Method::Create => "GraphDriver.Create",
            Method::CreateReadWrite => "GraphDriver.CreateReadWrite",
            Method::Remove => "GraphDriver.Remove",
            Method::Get => "GraphDriver.Get",
            Method::Put => "GraphDriver.Put",
            Method::Exists => "GraphDriver.Exists",
            Method::GetMetadata => "GraphDriver.GetMetadata",
            Method::Cleanup => "GraphDriver.Cleanup",
            Method::ApplyDiff => "GraphDriver.ApplyDiff",
            Method::Diff => "GraphDriver.Diff",
            Method::Changes => "GraphDriver.Changes",
            Method::DiffSize => "GraphDriver.DiffSize",
        }
    }

    /// The method a request path names (`/GraphDriver.Get`; the leading `/` is optional).
    /// `None` for anything else, e.g. another plugin subsystem's `VolumeDriver.Create`.
    pub fn from_path(path: &str) -> Option<Method> {
        let name = path.strip_prefix('/').unwrap_or(path);
        Method::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Whether a successful reply is a tar stream rather than JSON (`Diff`); such a method
    /// answers a failure with an error status, since dockerd reads any 200 body as the tar.
    pub fn replies_with_tar(self) -> bool {
        self == Method::Diff
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Reply to `Plugin.Activate`: the subsystems this plugin implements.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivateResponse {
    /// Always `["GraphDriver"]`.
    #[serde(rename = "Implements")]
    pub implements: Vec<String>,
}

impl ActivateResponse {
    /// The reply of a graph driver plugin.
    pub fn graph_driver() -> ActivateResponse {
        ActivateResponse {
            implements: vec!["GraphDriver".to_owned()],
        }
    }
}

/// One id mapping range of `GraphDriver.Init` (moby `idtools.IDMap`, whose JSON keys are
/// snake case; the Go field names are accepted too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMap {
    /// First id inside the container.
    #[serde(rename = "container_id", alias = "ContainerID")]
    pub container_id: i64,
    /// First id on the host.
    #[serde(rename = "host_id", alias = "HostID")]
    pub host_id: i64,
    /// Number of ids in the range.
    #[serde(rename = "size", alias = "Size")]
    pub size: i64,
}

/// Body of `GraphDriver.Init`. dockerd sends `null` for empty lists.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitRequest {
    /// The driver home: `<data-root>/<plugin name>`.
    #[serde(rename = "Home", default)]
    pub home: String,
    /// Driver options (`--storage-opt` of dockerd), `key=value` each.
    #[serde(rename = "Opts", default)]
    pub opts: Option<Vec<String>>,
    /// Uid maps (user namespace remapping).
    #[serde(rename = "UIDMaps", default)]
    pub uid_maps: Option<Vec<IdMap>>,
    /// Gid maps.
    #[serde(rename = "GIDMaps", default)]
    pub gid_maps: Option<Vec<IdMap>>,
}

/// Body of every per-layer call (`Create`, `CreateReadWrite`, `Remove`, `Get`, `Put`, `Exists`,
/// `GetMetadata`, `Diff`, `Changes`, `DiffSize`); each sends the fields it needs and omits the
/// empty ones.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRequest {
    /// The layer id.
    #[serde(rename = "ID", default)]
    pub id: String,
    /// The parent layer id; empty or absent for none.
    #[serde(rename = "Parent", default)]
    pub parent: String,
    /// SELinux mount label (`Create*`, `Get`).
    #[serde(rename = "MountLabel", default)]
    pub mount_label: String,
    /// Per-layer storage options (`Create*`), e.g. `{"size": "10M"}`.
    #[serde(rename = "StorageOpt", default)]
    pub storage_opt: Option<BTreeMap<String, String>>,
}

/// An empty success reply: `{}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmptyResponse {}

/// A failed call: `{"Err": "..."}`, the whole error chain in one line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// The message.
    #[serde(rename = "Err")]
    pub err: String,
}

/// Reply to `GraphDriver.Capabilities`. dockerd reads it wrapped in `Capabilities`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapabilitiesResponse {
    /// The capabilities.
    #[serde(rename = "Capabilities")]
    pub capabilities: Capabilities,
}

/// The driver's capabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// false: dockerd rebuilds layer tars from its own tar-split data instead of asking `Diff`
    /// for byte-identical ones (strata's export is not the original tar).
    #[serde(rename = "ReproducesExactDiffs")]
    pub reproduces_exact_diffs: bool,
}

/// Reply to `GraphDriver.Status`: label/value pairs for `docker info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusResponse {
    /// The pairs, each a two-element array.
    #[serde(rename = "Status")]
    pub status: Vec<[String; 2]>,
}

/// Reply to `GraphDriver.Get`: the directory to use as the layer's root filesystem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetResponse {
    /// Absolute path.
    #[serde(rename = "Dir")]
    pub dir: String,
}

/// Reply to `GraphDriver.Exists`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExistsResponse {
    /// Whether the layer exists.
    #[serde(rename = "Exists")]
    pub exists: bool,
}

/// Reply to `GraphDriver.GetMetadata` (shown by `docker inspect` as `.GraphDriver.Data`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataResponse {
    /// `LowerDir`, `MergedDir`, `UpperDir`, `WorkDir`.
    #[serde(rename = "Metadata")]
    pub metadata: BTreeMap<String, String>,
}

/// Reply to `GraphDriver.ApplyDiff` and `GraphDriver.DiffSize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SizeResponse {
    /// Bytes.
    #[serde(rename = "Size")]
    pub size: u64,
}

/// One entry of `GraphDriver.Changes` (moby `archive.Change`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// Absolute path inside the layer, e.g. `/etc/hosts`.
    #[serde(rename = "Path")]
    pub path: String,
    /// 0 modify, 1 add, 2 delete (moby `archive.ChangeType`).
    #[serde(rename = "Kind")]
    pub kind: u8,
}

/// Docker's number for a modified path.
pub const CHANGE_MODIFY: u8 = 0;
/// Docker's number for an added path.
pub const CHANGE_ADD: u8 = 1;
/// Docker's number for a deleted path.
pub const CHANGE_DELETE: u8 = 2;

/// Reply to `GraphDriver.Changes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangesResponse {
    /// The changes; dockerd sorts them itself.
    #[serde(rename = "Changes")]
    pub changes: Vec<Change>,
}

/// Parses a JSON request body. dockerd sends `null` (a nil Go value) or nothing for calls
/// without arguments; both mean the default.
///
/// # Errors
/// The body is not JSON of the expected shape.
pub fn parse_body<T: serde::de::DeserializeOwned + Default>(
    body: &[u8],
) -> Result<T, serde_json::Error> {
    let trimmed = body.trim_ascii();
    if trimmed.is_empty() || trimmed == b"null" {
        return Ok(T::default());
    }
    serde_json::from_slice(trimmed)
}

/// The query of `POST /GraphDriver.ApplyDiff?id=ID&parent=PARENT`: the layer id and its parent
/// (`parent=` is present and empty for a base layer).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyDiffQuery {
    /// `id`, percent-decoded.
    pub id: String,
    /// `parent`, percent-decoded; empty for none.
    pub parent: String,
}

impl ApplyDiffQuery {
    /// Parses a URL query string (without the `?`). Unknown keys are ignored, as Go's
    /// `url.Values` would; a missing `id` is left empty for the id validation to refuse.
    pub fn parse(query: &str) -> ApplyDiffQuery {
        let mut q = ApplyDiffQuery::default();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "id" => q.id = value.into_owned(),
                "parent" => q.parent = value.into_owned(),
                _ => {}
            }
        }
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json<T: Serialize>(v: &T) -> String {
        serde_json::to_string(v).unwrap()
    }

    #[test]
    fn method_names_round_trip_through_from_path() {
        for m in Method::ALL {
            assert_eq!(Method::from_path(&format!("/{}", m.name())), Some(m));
            assert_eq!(Method::from_path(m.name()), Some(m));
            assert_eq!(m.to_string(), m.name());
        }
        assert_eq!(Method::from_path("/GraphDriver.Get"), Some(Method::Get));
        assert_eq!(Method::from_path("/VolumeDriver.Create"), None);
        assert_eq!(Method::from_path("/graphdriver.get"), None);
        assert_eq!(Method::from_path("/GraphDriver.Get/x"), None);
        assert_eq!(Method::from_path(""), None);
    }

    #[test]
    fn method_only_diff_replies_with_a_tar() {
        for m in Method::ALL {
            assert_eq!(m.replies_with_tar(), m == Method::Diff, "{m}");
        }
    }

    #[test]
    fn activate_response_serialises_implements_graph_driver() {
        assert_eq!(
            json(&ActivateResponse::graph_driver()),
            r#"{"Implements":["GraphDriver"]}"#
        );
    }

    #[test]
    fn capabilities_response_is_wrapped_in_capabilities() {
        let c = CapabilitiesResponse {
            capabilities: Capabilities {
                reproduces_exact_diffs: false,
            },
        };
        assert_eq!(
            json(&c),
            r#"{"Capabilities":{"ReproducesExactDiffs":false}}"#
        );
    }

    #[test]
    fn init_request_dockerd_body_parses_home_opts_and_maps() {
        let body = br#"{"Home":"/var/lib/docker/strata","Opts":["overlay2.size=1G"],
            "UIDMaps":[{"container_id":0,"host_id":100000,"size":65536}],"GIDMaps":null}"#;
        let r: InitRequest = parse_body(body).unwrap();
        assert_eq!(r.home, "/var/lib/docker/strata");
        assert_eq!(
            r.opts.as_deref(),
            Some(&["overlay2.size=1G".to_owned()][..])
        );
        assert_eq!(
            r.uid_maps.unwrap(),
            vec![IdMap {
                container_id: 0,
                host_id: 100000,
                size: 65536
            }]
        );
        assert_eq!(r.gid_maps, None);
    }

    #[test]
    fn init_request_null_opts_parses_as_none() {
        let r: InitRequest =
            parse_body(br#"{"Home":"/h","Opts":null,"UIDMaps":null,"GIDMaps":null}"#).unwrap();
        assert_eq!(r.home, "/h");
        assert_eq!(r.opts, None);
    }

    #[test]
    fn id_map_go_field_names_are_accepted() {
        let m: IdMap = serde_json::from_str(r#"{"ContainerID":1,"HostID":2,"Size":3}"#).unwrap();
        assert_eq!(
            m,
            IdMap {
                container_id: 1,
                host_id: 2,
                size: 3
            }
        );
    }

    #[test]
    fn layer_request_create_read_write_parses_storage_opt() {
        let r: LayerRequest =
            parse_body(br#"{"ID":"abc-init","Parent":"def","StorageOpt":{"size":"10M"}}"#).unwrap();
        assert_eq!(r.id, "abc-init");
        assert_eq!(r.parent, "def");
        assert_eq!(r.mount_label, "");
        assert_eq!(
            r.storage_opt.unwrap().get("size").map(String::as_str),
            Some("10M")
        );
    }

    #[test]
    fn layer_request_omitted_parent_is_empty() {
        let r: LayerRequest = parse_body(br#"{"ID":"abc"}"#).unwrap();
        assert_eq!(r.parent, "");
        assert_eq!(r.storage_opt, None);
    }

    #[test]
    fn parse_body_null_and_empty_give_default() {
        let a: LayerRequest = parse_body(b"null").unwrap();
        let b: LayerRequest = parse_body(b"  ").unwrap();
        let c: EmptyResponse = parse_body(b"{}").unwrap();
        assert_eq!(a, LayerRequest::default());
        assert_eq!(b, LayerRequest::default());
        assert_eq!(c, EmptyResponse {});
    }

    #[test]
    fn parse_body_malformed_json_is_an_error() {
        assert!(parse_body::<LayerRequest>(br#"{"ID":"#).is_err());
        assert!(parse_body::<LayerRequest>(br#"{"ID":7}"#).is_err());
    }

    #[test]
    fn status_response_serialises_pairs_as_arrays() {
        let s = StatusResponse {
            status: vec![
                ["Backing Filesystem".into(), "extfs".into()],
                ["Supports d_type".into(), "true".into()],
            ],
        };
        assert_eq!(
            json(&s),
            r#"{"Status":[["Backing Filesystem","extfs"],["Supports d_type","true"]]}"#
        );
    }

    #[test]
    fn small_responses_serialise_with_go_field_names() {
        assert_eq!(json(&EmptyResponse {}), "{}");
        assert_eq!(
            json(&ErrorResponse {
                err: "layer x does not exist".into()
            }),
            r#"{"Err":"layer x does not exist"}"#
        );
        assert_eq!(json(&GetResponse { dir: "/m".into() }), r#"{"Dir":"/m"}"#);
        assert_eq!(
            json(&ExistsResponse { exists: false }),
            r#"{"Exists":false}"#
        );
        assert_eq!(json(&SizeResponse { size: 42 }), r#"{"Size":42}"#);
    }

    #[test]
    fn metadata_response_serialises_sorted_keys() {
        let mut m = BTreeMap::new();
        m.insert("WorkDir".to_owned(), "/h/x/work".to_owned());
        m.insert("MergedDir".to_owned(), "/h/x/merged".to_owned());
        assert_eq!(
            json(&MetadataResponse { metadata: m }),
            r#"{"Metadata":{"MergedDir":"/h/x/merged","WorkDir":"/h/x/work"}}"#
        );
    }

    #[test]
    fn changes_response_serialises_path_and_kind_numbers() {
        let c = ChangesResponse {
            changes: vec![
                Change {
                    path: "/etc".into(),
                    kind: CHANGE_MODIFY,
                },
                Change {
                    path: "/etc/new".into(),
                    kind: CHANGE_ADD,
                },
                Change {
                    path: "/gone".into(),
                    kind: CHANGE_DELETE,
                },
            ],
        };
        assert_eq!(
            json(&c),
            r#"{"Changes":[{"Path":"/etc","Kind":0},{"Path":"/etc/new","Kind":1},{"Path":"/gone","Kind":2}]}"#
        );
    }

    #[test]
    fn apply_diff_query_empty_parent_is_empty() {
        let q = ApplyDiffQuery::parse("id=abc&parent=");
        assert_eq!(q.id, "abc");
        assert_eq!(q.parent, "");
    }

    #[test]
    fn apply_diff_query_percent_encoding_is_decoded() {
        let q = ApplyDiffQuery::parse("parent=p%2Dq&id=a%2Db&other=1");
        assert_eq!(q.id, "a-b");
        assert_eq!(q.parent, "p-q");
    }

    #[test]
    fn apply_diff_query_missing_id_is_empty() {
        assert_eq!(ApplyDiffQuery::parse(""), ApplyDiffQuery::default());
    }
}
