//! Property test of the ring: random sequences of frame sizes through a small heap ring between
//! a producer thread and a consumer thread arrive intact, in order, with their sequence numbers.

use proptest::prelude::*;
use sf_processor::ring::{Next, heap_ring};
use std::thread;
use std::time::Duration;

/// Deterministic payload of `len` bytes for `seq`.
fn payload(seq: u64, len: usize) -> Vec<u8> {
    let mut state = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// A frame size: mostly small, sometimes up to the maximum of a 4 KiB ring (2032 bytes).
fn frame_size() -> impl Strategy<Value = usize> {
    prop_oneof![
        6 => 0usize..64,
        3 => 64usize..600,
        1 => 600usize..=2032,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 2 } else { 64 },
        ..ProptestConfig::default()
    })]

    #[test]
    fn ring_frames_arrive_intact_and_in_order(
        ops in prop::collection::vec((frame_size(), any::<bool>(), 0u64..3), 1..if cfg!(miri) { 20 } else { 400 }),
        capacity in prop_oneof![Just(4096usize), Just(8192usize)],
    ) {
        let (mut producer, mut consumer) = heap_ring(capacity, 1);
        let sent = ops.clone();
        let writer = thread::spawn(move || {
            let mut seq = 0u64;
            for (len, flush, seq_step) in sent {
                seq += seq_step;
                producer.push(seq, &payload(seq, len)).expect("push");
                if flush {
                    producer.flush();
                }
            }
            producer.close();
        });
        let mut seq = 0u64;
        for (index, &(len, _, seq_step)) in ops.iter().enumerate() {
            seq += seq_step;
            match consumer.next(Some(Duration::from_secs(30))).expect("next") {
                Next::Frame(frame) => {
                    prop_assert_eq!(frame.seq, seq, "seq of frame {}", index);
                    prop_assert_eq!(frame.payload.len(), len, "length of frame {}", index);
                    prop_assert!(frame.payload == payload(seq, len).as_slice(), "payload of frame {}", index);
                }
                other => prop_assert!(false, "frame {} missing: {:?}", index, other),
            }
        }
        prop_assert!(matches!(consumer.next(Some(Duration::from_secs(30))).expect("next"), Next::Closed));
        writer.join().expect("producer thread");
    }
}
