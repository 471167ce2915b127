//! The wire codec: how a [`Record`] is serialized into a ring frame's payload.
//!
//! One module so the serializer can be swapped by measurement (see `DESIGN.md`, Transport).
//! Today it is [`postcard`] (serde, maintained, compact varint encoding); bincode is not an
//! option (3.0.0 does not compile, 2.0.1 is unmaintained). `benches/codec.rs` measures it
//! against bitcode and wincode: README, Performance, says why postcard stays.
//!
//! A ring carries [`WIRE_VERSION`] in its header; a consumer built against another version
//! refuses to attach, naming both versions, instead of misreading frames.
//!
//! A frame's payload is one record, followed, on the rings between chained handlers, by the
//! [`Policy`] list the record was annotated with (nothing when it has none, as on the
//! reader's rings): [`encode`] and [`decode`] handle the record, [`decode_frame`] and
//! [`encode_policies`] the whole payload.

use crate::chain::Policy;
use crate::model::Record;

/// Version of the frame payload encoding. Bump it whenever [`Record`] or any type it contains
/// changes shape, or the payload layout changes: the `golden_bytes` test below fails to remind
/// you. Version 2: the record may be followed by its policies.
pub const WIRE_VERSION: u32 = 2;

/// A payload that does not decode as a [`Record`] of this [`WIRE_VERSION`].
#[derive(Debug, thiserror::Error)]
#[error(
    "frame payload of {len} bytes is not a SysFlow record of wire version {WIRE_VERSION}: {error}"
)]
pub struct CodecError {
    /// Payload length in bytes.
    pub len: usize,
    /// The serializer's description.
    pub error: postcard::Error,
}

/// Serializes `record` into `buf`, replacing its content (the allocation is reused).
///
/// # Errors
/// Only if the serializer fails, which for the model's types does not happen in practice.
pub fn encode(record: &Record, buf: &mut Vec<u8>) -> Result<(), CodecError> {
    buf.clear();
    let out = std::mem::take(buf);
    *buf = postcard::to_extend(record, out).map_err(|error| CodecError { len: 0, error })?;
    Ok(())
}

/// Deserializes one record from a frame payload.
///
/// # Errors
/// [`CodecError`] when `bytes` is not a complete record of this wire version.
pub fn decode(bytes: &[u8]) -> Result<Record, CodecError> {
    postcard::from_bytes(bytes).map_err(|error| CodecError {
        len: bytes.len(),
        error,
    })
}

/// One frame payload decoded: the record, its policies, and how many leading bytes of the
/// payload are the record (the part an upstream handler forwards as it is).
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedFrame {
    /// The record.
    pub record: Record,
    /// The policies it was annotated with upstream (empty from the reader).
    pub policies: Vec<Policy>,
    /// Length in bytes of the record's encoding at the start of the payload.
    pub record_len: usize,
}

/// Deserializes a whole frame payload: the record and the policies that may follow it.
///
/// # Errors
/// [`CodecError`] when `bytes` does not start with a record of this wire version, or what
/// follows it is not a list of policies.
pub fn decode_frame(bytes: &[u8]) -> Result<DecodedFrame, CodecError> {
    let err = |error| CodecError {
        len: bytes.len(),
        error,
    };
    let (record, rest) = postcard::take_from_bytes::<Record>(bytes).map_err(err)?;
    let record_len = bytes.len() - rest.len();
    let policies = if rest.is_empty() {
        Vec::new()
    } else {
        match postcard::take_from_bytes::<Vec<Policy>>(rest).map_err(err)? {
            (p, []) => p,
            (_, _) => return Err(err(postcard::Error::DeserializeBadEncoding)),
        }
    };
    Ok(DecodedFrame {
        record,
        policies,
        record_len,
    })
}

/// Appends `policies` to `buf` (which holds an encoded record) as a frame payload carries
/// them; appends nothing when the list is empty.
///
/// # Errors
/// Only if the serializer fails, which for these types does not happen in practice.
pub fn encode_policies(policies: &[Policy], buf: &mut Vec<u8>) -> Result<(), CodecError> {
    if policies.is_empty() {
        return Ok(());
    }
    let out = std::mem::take(buf);
    *buf = postcard::to_extend(policies, out).map_err(|error| CodecError { len: 0, error })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;

    fn sample() -> Record {
        Record::FileEvent(FileEvent {
            proc_oid: Oid {
                create_ts: 1_531_776_682_000_000_123,
                hpid: 4242,
            },
            ts: 1_531_776_682_100_000_000,
            tid: 4243,
            op_flags: op_flags::RENAME,
            file_oid: Foid([7; 20]),
            ret: 0,
            new_file_oid: Some(Foid([9; 20])),
        })
    }

    #[test]
    fn round_trip() {
        let mut buf = Vec::new();
        encode(&sample(), &mut buf).unwrap();
        assert_eq!(decode(&buf).unwrap(), sample());
    }

    /// Pins the encoding: if this fails, the wire format changed, so bump [`WIRE_VERSION`]
    /// and update the bytes.
    #[test]
    fn golden_bytes() {
        let mut buf = Vec::new();
        encode(&sample(), &mut buf).unwrap();
        let mut want = vec![
            8, 246, 145, 177, 221, 217, 177, 251, 193, 42, 164, 66, 128, 148, 224, 188, 218, 177,
        ];
        want.extend([251, 193, 42, 166, 66, 128, 128, 128, 1]);
        want.extend([7; 20]);
        want.extend([0, 1]);
        want.extend([9; 20]);
        assert_eq!(buf, want);
    }

    #[test]
    fn a_frame_is_the_record_then_its_policies_if_any() {
        let mut buf = Vec::new();
        encode(&sample(), &mut buf).unwrap();
        let plain = decode_frame(&buf).unwrap();
        assert_eq!(
            (plain.record, plain.policies, plain.record_len),
            (sample(), vec![], buf.len())
        );
        let record_len = buf.len();
        let mut policy = Policy::new("rule", "what it detects", 2);
        policy.tags.push("mitre:T1059".into());
        encode_policies(std::slice::from_ref(&policy), &mut buf).unwrap();
        assert!(buf.len() > record_len);
        let annotated = decode_frame(&buf).unwrap();
        assert_eq!(annotated.policies, [policy]);
        assert_eq!(annotated.record_len, record_len);
        // `decode` reads the record alone, whatever follows.
        assert_eq!(decode(&buf).unwrap(), sample());
        buf.push(0);
        assert!(decode_frame(&buf).is_err(), "trailing garbage");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let err = decode(&[200, 1, 2]).unwrap_err();
        assert!(
            err.to_string().starts_with("frame payload of 3 bytes"),
            "{err}"
        );
    }
}
