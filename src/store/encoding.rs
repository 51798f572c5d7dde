//! How large stored values are compressed, and how a value says so.
//!
//! Raw messages live in the `raw_encoded` table, every value starting with
//! a one-byte tag: [`PLAIN`] (the bytes follow as they are) or [`DEFLATE`]
//! (a 4-byte little-endian length of the original, then a raw deflate
//! stream). Older stores keep their untagged values in the `raw` table,
//! which is still read, so an upgraded store holds both kinds.
//!
//! JSON records need no tag of their own for the plain case: JSON never
//! starts with the byte 0x01, so a record value that starts with
//! [`DEFLATE`] is compressed JSON and anything else is JSON as before.
//!
//! Deflate at level 1 was chosen by measurement (ARCHITECTURE.md, "Choices
//! and why"): on real mail it keeps 39 % of the bytes against zstd-1's 38 %
//! and lz4's 51 %, at about 36 µs per message, and miniz_oxide is pure Rust
//! and already in the dependency tree.

/// Tag of a value stored as it is.
pub const PLAIN: u8 = 0;
/// Tag of a deflate-compressed value (original length, then the stream).
pub const DEFLATE: u8 = 1;

/// Deflate level: 1 is the fastest; higher levels gained under 3 % more on
/// mail at three to five times the CPU.
const LEVEL: u8 = 1;

/// Values shorter than this are stored plain: a few hundred bytes gain
/// little and every read would pay for the inflate.
pub const MIN_COMPRESS: usize = 256;

/// Why a stored value could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("empty value")]
    Empty,
    #[error("unknown encoding tag {0}")]
    UnknownTag(u8),
    #[error("compressed value shorter than its header")]
    Truncated,
    #[error("deflate stream does not inflate to its recorded {expected} bytes")]
    Inflate { expected: usize },
}

/// A tagged value for `raw_encoded`: deflated when `compress` is on, the
/// value is long enough and deflate makes it smaller; otherwise plain.
pub fn encode_tagged(bytes: &[u8], compress: bool) -> Vec<u8> {
    if compress
        && bytes.len() >= MIN_COMPRESS
        && let Some(z) = deflated(bytes)
    {
        return z;
    }
    let mut out = Vec::with_capacity(bytes.len() + 1);
    out.push(PLAIN);
    out.extend_from_slice(bytes);
    out
}

/// The original bytes of a `raw_encoded` value.
pub fn decode_tagged(value: &[u8]) -> Result<Vec<u8>, DecodeError> {
    match value.first() {
        None => Err(DecodeError::Empty),
        Some(&PLAIN) => Ok(value[1..].to_vec()),
        Some(&DEFLATE) => inflate(value),
        Some(&t) => Err(DecodeError::UnknownTag(t)),
    }
}

/// A JSON record as stored: compressed (tagged [`DEFLATE`]) when `compress`
/// is on and it pays, else the JSON itself, as older stores have it.
pub fn encode_record(json: Vec<u8>, compress: bool) -> Vec<u8> {
    if compress
        && json.len() >= MIN_COMPRESS
        && let Some(z) = deflated(&json)
    {
        return z;
    }
    json
}

/// The JSON of a stored record: inflated if it is tagged [`DEFLATE`],
/// borrowed as it is otherwise.
pub fn decode_record(value: &[u8]) -> Result<std::borrow::Cow<'_, [u8]>, DecodeError> {
    match value.first() {
        Some(&DEFLATE) => inflate(value).map(std::borrow::Cow::Owned),
        _ => Ok(std::borrow::Cow::Borrowed(value)),
    }
}

/// `DEFLATE`, length, stream; None when that is not smaller than the input
/// plus a plain tag.
fn deflated(bytes: &[u8]) -> Option<Vec<u8>> {
    let len = u32::try_from(bytes.len()).ok()?;
    let z = miniz_oxide::deflate::compress_to_vec(bytes, LEVEL);
    // Tagged plain costs one byte over the input; deflated costs five over the stream.
    if z.len() + 5 > bytes.len() {
        return None;
    }
    let mut out = Vec::with_capacity(z.len() + 5);
    out.push(DEFLATE);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&z);
    Some(out)
}

fn inflate(value: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let header: [u8; 4] = value
        .get(1..5)
        .and_then(|h| h.try_into().ok())
        .ok_or(DecodeError::Truncated)?;
    let expected = u32::from_le_bytes(header) as usize;
    // The limit is the recorded length: a damaged value cannot make the
    // reader allocate more than the message it claims to be.
    match miniz_oxide::inflate::decompress_to_vec_with_limit(&value[5..], expected) {
        Ok(out) if out.len() == expected => Ok(out),
        _ => Err(DecodeError::Inflate { expected }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail() -> Vec<u8> {
        let mut m = b"From: ann@example.org\r\nSubject: printer\r\n\r\n".to_vec();
        for i in 0..100 {
            m.extend_from_slice(format!("line {i} of a message about the printer\r\n").as_bytes());
        }
        m
    }

    #[test]
    fn tagged_values_round_trip_compressed_or_plain() {
        let m = mail();
        let z = encode_tagged(&m, true);
        assert_eq!(z[0], DEFLATE);
        assert!(z.len() < m.len() / 2, "{} of {}", z.len(), m.len());
        assert_eq!(decode_tagged(&z).unwrap(), m);
        let p = encode_tagged(&m, false);
        assert_eq!(p[0], PLAIN);
        assert_eq!(decode_tagged(&p).unwrap(), m);
        // Short values and incompressible ones stay plain.
        assert_eq!(encode_tagged(b"x\r\n", true), b"\0x\r\n");
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        assert_eq!(encode_tagged(&noise, true)[0], PLAIN);
        assert_eq!(decode_tagged(&encode_tagged(b"", true)).unwrap(), b"");
    }

    #[test]
    fn records_stay_json_unless_compressed() {
        let json =
            serde_json::to_vec(&serde_json::json!({"text": String::from_utf8(mail()).unwrap()}))
                .unwrap();
        let z = encode_record(json.clone(), true);
        assert_eq!(z[0], DEFLATE);
        assert_eq!(&*decode_record(&z).unwrap(), json.as_slice());
        // Old records (and small ones) are JSON as they always were.
        assert_eq!(encode_record(b"{}".to_vec(), true), b"{}");
        assert_eq!(&*decode_record(&json).unwrap(), json.as_slice());
    }

    #[test]
    fn damage_is_an_error_not_a_panic_or_a_huge_allocation() {
        let z = encode_tagged(&mail(), true);
        assert_eq!(decode_tagged(&[]), Err(DecodeError::Empty));
        assert_eq!(decode_tagged(&[7, 1, 2]), Err(DecodeError::UnknownTag(7)));
        assert_eq!(decode_tagged(&z[..3]), Err(DecodeError::Truncated));
        assert!(matches!(
            decode_tagged(&z[..z.len() - 10]),
            Err(DecodeError::Inflate { .. })
        ));
        let mut lying = z.clone();
        lying[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_tagged(&lying).is_err());
        let mut short = z;
        short[1..5].copy_from_slice(&10u32.to_le_bytes());
        assert!(decode_tagged(&short).is_err());
    }
}

#[cfg(test)]
mod store_tests {
    use super::super::*;
    use super::{DEFLATE, PLAIN};

    #[test]
    fn an_upgraded_store_reads_old_plain_values_next_to_compressed_ones() {
        let dir = std::env::temp_dir().join(format!(
            "postdesk-encoding-{}-{}",
            std::process::id(),
            crate::clock::Clock::system().now()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        let mail = b"Subject: old\r\n\r\n".repeat(100);
        let record = MessageRecord {
            seq: 1,
            ticket: None,
            message_id: "old@example.org".into(),
            direction: Direction::Inbound,
            kind: MessageKind::Customer,
            from: "ann@example.org".into(),
            to: vec![],
            subject: "old".into(),
            date: 0,
            text: "words ".repeat(200),
            stranger: None,
        };
        // As an older version wrote them: untagged raw bytes, plain JSON.
        store
            .write(|tx| {
                tx.txn.open_table(RAW)?.insert(1, mail.as_slice())?;
                tx.txn
                    .open_table(MESSAGES)?
                    .insert(1, enc(&record).as_slice())?;
                Ok(())
            })
            .unwrap();
        // And new ones, compressed.
        let new = MessageRecord {
            seq: 2,
            ..record.clone()
        };
        store
            .write(|tx| {
                tx.put_raw(2, &mail)?;
                tx.put_message_unlisted(&new)
            })
            .unwrap();
        let stored = |table: TableDefinition<u64, &[u8]>, seq| {
            let r = store.db().unwrap().0.begin_read().unwrap();
            let t = r.open_table(table).unwrap();
            t.get(seq).unwrap().map(|v| v.value().to_vec())
        };
        assert_eq!(stored(RAW_ENCODED, 2).unwrap()[0], DEFLATE);
        assert_eq!(stored(MESSAGES, 2).unwrap()[0], DEFLATE);
        assert_eq!(stored(MESSAGES, 1).unwrap()[0], b'{');
        for seq in [1, 2] {
            assert_eq!(store.raw(seq).unwrap().unwrap(), mail);
            assert_eq!(store.message(seq).unwrap().unwrap().text, record.text);
        }
        // Rewriting an old message replaces its untagged copy.
        store.write(|tx| tx.put_raw(1, b"new\r\n")).unwrap();
        assert_eq!(store.raw(1).unwrap().unwrap(), b"new\r\n");
        assert!(stored(RAW, 1).is_none());
        // With compression off, new values are plain (tagged) and still read.
        store.set_compression(false);
        store.write(|tx| tx.put_raw(3, &mail)).unwrap();
        assert_eq!(stored(RAW_ENCODED, 3).unwrap()[0], PLAIN);
        assert_eq!(store.raw(3).unwrap().unwrap(), mail);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
