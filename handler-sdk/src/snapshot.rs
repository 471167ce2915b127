//! Helpers for [`Handler::snapshot`](crate::Handler::snapshot) and
//! [`Handler::restore`](crate::Handler::restore): a handler's state as bytes, through
//! `serde` (the compact [`postcard`](https://docs.rs/postcard) format, the one the pipeline's
//! rings use).
//!
//! ```
//! use handler_sdk::prelude::*;
//!
//! #[derive(Default, serde::Serialize, serde::Deserialize)]
//! struct Execs {
//!     count: u64,
//! }
//!
//! impl Handler for Execs {
//!     fn handle_process_event(&mut self, _: &Context<'_>, _: &ProcessEvent) -> HandlerResult {
//!         self.count += 1;
//!         Ok(())
//!     }
//!     fn snapshot(&mut self) -> SnapshotResult {
//!         handler_sdk::snapshot::encode(self).map(Some)
//!     }
//!     fn restore(&mut self, snapshot: &[u8]) -> HandlerResult {
//!         *self = handler_sdk::snapshot::decode(snapshot)?;
//!         Ok(())
//!     }
//! }
//!
//! let mut a = Execs { count: 41 };
//! let bytes = a.snapshot().unwrap().unwrap();
//! let mut b = Execs::default();
//! b.restore(&bytes).unwrap();
//! assert_eq!(b.count, 41);
//! ```
//!
//! The format has no field names: a snapshot restores only into the type that made it. A
//! build whose state type changed fails to restore the previous build's snapshot (after
//! `sf-launch ctl restart` of a rebuilt handler), and the run reports the state as lost.

use std::error::Error;

/// The error of [`encode`] and [`decode`]: fits `?` in a handler method.
pub type SnapshotCodecError = Box<dyn Error + Send + Sync>;

/// `state` as snapshot bytes.
///
/// # Errors
/// When `state` cannot be serialized (a type postcard does not support, such as a sequence
/// of unknown length).
pub fn encode<T: serde::Serialize + ?Sized>(state: &T) -> Result<Vec<u8>, SnapshotCodecError> {
    postcard::to_allocvec(state).map_err(|e| format!("cannot encode the snapshot: {e}").into())
}

/// The state [`encode`] made `bytes` from.
///
/// # Errors
/// When `bytes` are not a whole encoding of a `T` (the snapshot of another state type, or of
/// another build of it).
pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, SnapshotCodecError> {
    let (state, rest) = postcard::take_from_bytes(bytes)
        .map_err(|e| format!("cannot decode the snapshot ({} bytes): {e}", bytes.len()))?;
    if !rest.is_empty() {
        return Err(format!(
            "cannot decode the snapshot: {} bytes left over after the state ({} bytes): it was made by another state type",
            rest.len(),
            bytes.len()
        )
        .into());
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_of_another_type_is_refused() {
        let bytes = encode(&(7u64, String::from("stats"), vec![1u32, 2, 3])).unwrap();
        let back: (u64, String, Vec<u32>) = decode(&bytes).unwrap();
        assert_eq!(back, (7, "stats".into(), vec![1, 2, 3]));
        let err = decode::<u64>(&bytes).unwrap_err().to_string();
        assert!(err.contains("left over"), "{err}");
        let err = decode::<(u64, String, Vec<u32>)>(&bytes[..4])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("cannot decode the snapshot (4 bytes)"),
            "{err}"
        );
    }
}
