//! `Plugin.Activate`: the plugin implements the GraphDriver subsystem.

use crate::reply::Reply;
use crate::wire::ActivateResponse;

/// `{"Implements":["GraphDriver"]}`.
pub(crate) fn handle() -> Reply {
    Reply::json(&ActivateResponse::graph_driver())
}
