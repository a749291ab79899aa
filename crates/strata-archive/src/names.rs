//! Host user and group names for tar headers, read once from `/etc/passwd` and `/etc/group`
//! as Go's `archive/tar` does through `os/user`. Never consults NSS or the network.

use std::collections::HashMap;

fn load(path: &str) -> HashMap<u32, Vec<u8>> {
    let mut m = HashMap::new();
    if let Ok(text) = std::fs::read(path) {
        for line in text.split(|&b| b == b'\n') {
            let mut f = line.split(|&b| b == b':');
            let (Some(name), Some(_), Some(id)) = (f.next(), f.next(), f.next()) else {
                continue;
            };
            if let Some(id) = std::str::from_utf8(id)
                .ok()
                .and_then(|s| s.parse::<u32>().ok())
            {
                m.entry(id).or_insert_with(|| name.to_vec());
            }
        }
    }
    m
}

/// Id → name tables of the host.
#[derive(Debug, Default)]
pub(crate) struct Names {
    users: Option<HashMap<u32, Vec<u8>>>,
    groups: Option<HashMap<u32, Vec<u8>>>,
}

impl Names {
    pub(crate) fn user(&mut self, uid: u32) -> &[u8] {
        self.users
            .get_or_insert_with(|| load("/etc/passwd"))
            .get(&uid)
            .map_or(&[], Vec::as_slice)
    }
    pub(crate) fn group(&mut self, gid: u32) -> &[u8] {
        self.groups
            .get_or_insert_with(|| load("/etc/group"))
            .get(&gid)
            .map_or(&[], Vec::as_slice)
    }
}
