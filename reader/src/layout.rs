//! The writer layouts the SysFlow collector has used: the schemas a live stream may be in.
//!
//! A trace file carries its writer schema; the collector's socket does not (one bare Avro
//! datum per message), and the header's `version` does not name the layout: `1000` covers
//! three. So the socket driver decides per connection among these layouts (see
//! [`crate::socket`]). Each schema is copied, byte for byte, from the header of a real trace
//! (`resources/schemas/`, named after the layout):
//!
//! | layout | header `version` | as in | what sets it apart |
//! |---|---|---|---|
//! | `v5` | 5 | `tcp-client-server-v5.sf` | `Process.cwd`, `Process.env` |
//! | `v4` | 4 | `k8s_small.sf` | `Pod`, `K8sEvent`, `Container.podId` |
//! | `v3` | 3 | `1621959914` | `SFHeader.filename` |
//! | `v2` | 2 | `httpd.sf` | `SFHeader.ip`, `Process.entry`, `ProcessFlow` |
//! | `v1000-2018-07` | 1000 | `tcp.sf`, `mon.*` | no `ip`, no `entry`; events and flows as today |
//! | `v1000-2018-12` | 1000 | `tcp-procflow-v1000.sf` | process events as `sysflow.flow.ProcessFlow`; no `FileFlow.openFlags`, no `NetworkFlow.fd` |
//! | `v1000-2019-01` | 1000 | `play-mon.1548965896` | `Process.type` (ActionType), no `tty`; events as `ProcessFlow` with `type` (EventType); no `Container.privileged`; no files or flows |
//!
//! (`files-v1000.sf` and its siblings declare 6 container types where `tcp.sf` declares 10;
//! their datums are those of `v1000-2018-07`.)

/// One writer layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Its name, for `--socket-layout` and the log.
    pub name: &'static str,
    /// The `version` its header datum carries.
    pub version: i64,
    /// Where it comes from, for the log.
    pub description: &'static str,
    /// The writer schema's JSON text.
    pub schema: &'static str,
}

/// Every layout, newest first: the order in which the socket driver prefers them when the
/// first datums of a connection do not tell them apart.
pub const LAYOUTS: &[Layout] = &[
    Layout {
        name: "v5",
        version: 5,
        description: "schema 5 (tcp-client-server-v5.sf)",
        schema: include_str!("../../resources/schemas/sysflow-v5.avsc"),
    },
    Layout {
        name: "v4",
        version: 4,
        description: "schema 4 (k8s_small.sf)",
        schema: include_str!("../../resources/schemas/sysflow-v4.avsc"),
    },
    Layout {
        name: "v3",
        version: 3,
        description: "schema 3 (1621959914)",
        schema: include_str!("../../resources/schemas/sysflow-v3.avsc"),
    },
    Layout {
        name: "v2",
        version: 2,
        description: "schema 2 (httpd.sf)",
        schema: include_str!("../../resources/schemas/sysflow-v2.avsc"),
    },
    Layout {
        name: "v1000-2018-07",
        version: 1000,
        description: "version 1000 of mid 2018 (tcp.sf, mon.1531776682.sf)",
        schema: include_str!("../../resources/schemas/sysflow-v1000-2018-07.avsc"),
    },
    Layout {
        name: "v1000-2018-12",
        version: 1000,
        description: "version 1000 of December 2018 (tcp-procflow-v1000.sf)",
        schema: include_str!("../../resources/schemas/sysflow-v1000-2018-12.avsc"),
    },
    Layout {
        name: "v1000-2019-01",
        version: 1000,
        description: "version 1000 of January 2019 (play-mon.1548965896)",
        schema: include_str!("../../resources/schemas/sysflow-v1000-2019-01.avsc"),
    },
];

/// The layout called `name`.
///
/// # Errors
/// A message listing the names when `name` is none of them.
pub fn find(name: &str) -> Result<&'static Layout, String> {
    LAYOUTS.iter().find(|l| l.name == name).ok_or_else(|| {
        let names: Vec<&str> = LAYOUTS.iter().map(|l| l.name).collect();
        format!(
            "unknown SysFlow layout {name:?} (known: {})",
            names.join(", ")
        )
    })
}

/// The layouts whose header carries `version` (1001 is taken as 1000, the other early
/// version), newest first; empty for a version no layout has.
pub fn for_version(version: i64) -> Vec<&'static Layout> {
    let version = if version == 1001 { 1000 } else { version };
    LAYOUTS.iter().filter(|l| l.version == version).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fast::SysFlowDecoder;

    #[test]
    fn every_layout_resolves_without_an_unresolved_field() {
        for layout in LAYOUTS {
            let decoder = SysFlowDecoder::from_schema_json(layout.schema)
                .unwrap_or_else(|e| panic!("{}: {e}", layout.name));
            assert!(decoder.unresolved().is_empty(), "{}", layout.name);
            assert!(
                decoder
                    .branches()
                    .branches()
                    .iter()
                    .all(|b| b.kind.is_some()),
                "{}",
                layout.name
            );
        }
        assert_eq!(for_version(1000).len(), 3);
        assert_eq!(for_version(1001).len(), 3);
        assert_eq!(for_version(5).len(), 1);
        assert!(for_version(6).is_empty());
        assert_eq!(
            find("v6").expect_err("unknown"),
            "unknown SysFlow layout \"v6\" (known: v5, v4, v3, v2, v1000-2018-07, v1000-2018-12, v1000-2019-01)"
        );
    }
}
