//! How stored values are compressed, and how a value says so.
//!
//! Raw messages live in the `raw_encoded` table, every value starting with
//! a one-byte tag: [`PLAIN`] (the bytes follow as they are), [`ZSTD`] (a
//! 4-byte little-endian dictionary id, 0 for none, then a zstd frame
//! without its 4-byte magic number) or, in stores written by earlier
//! versions, [`DEFLATE`] (a 4-byte little-endian length of the original,
//! then a raw deflate stream). Older stores also keep untagged values in the
//! `raw` table, which is still read.
//!
//! JSON records need no tag of their own for the plain case: JSON never
//! starts with the bytes 0x01 or 0x02, so a record value that starts with
//! [`DEFLATE`] or [`ZSTD`] is compressed JSON and anything else is JSON.
//!
//! Why zstd with dictionaries (ARCHITECTURE.md, "Choices and why"): a help
//! desk's values are small and alike: mail of a few KB with the same header
//! fields, JSON records of a few hundred bytes with the same keys. Alone,
//! each compresses poorly (deflate kept 48 % of raw mail, 59 % of a ticket
//! record and nothing of an event); with a dictionary trained on the
//! store's own values of that kind, zstd keeps 31 %, 9 % and 25 %, and is
//! faster than deflate was. Every store trains its own dictionaries (see
//! `dictionaries.rs`): none is shipped, so none carries anybody's mail.
//!
//! Dictionaries are known by an id derived from their bytes, and decoding
//! looks them up in one registry for the process ([`register`]): every store
//! opened registers its dictionaries, and a value names the one it needs,
//! so the free functions [`decode_tagged`] and [`decode_record`] stay free.
//! Two different dictionaries with the same id are refused, never mixed up.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, PoisonError, RwLock};
use zstd::zstd_safe::{self, CCtx, CDict, CParameter, DCtx, DDict};

/// Tag of a value stored as it is.
pub const PLAIN: u8 = 0;
/// Tag of a deflate-compressed value (original length, then the stream):
/// written by earlier versions, still read.
pub const DEFLATE: u8 = 1;
/// Tag of a zstd-compressed value (dictionary id, then the frame).
pub const ZSTD: u8 = 2;

/// zstd level 1: in the store benchmark's write path it cost 260 ms per
/// 20,000 raw messages against level 3's 370 (and 154 against 225 ms for
/// their records), for a store 2 % larger (1.15× the raw mail against
/// 1.13×); level -1 was cheaper still but left 1.39×.
const LEVEL: i32 = 1;

/// Every zstd frame starts with these bytes; values store the frame without them.
const MAGIC: [u8; 4] = 0xFD2F_B528u32.to_le_bytes();

/// Values shorter than this are stored plain when no dictionary helps:
/// a few hundred bytes gain little on their own.
pub const MIN_COMPRESS: usize = 256;

/// With a dictionary even short records pay (an event of 140 bytes keeps
/// about 35).
pub const MIN_COMPRESS_WITH_DICTIONARY: usize = 48;

/// The most a decode allocates, whatever a damaged value claims: above any
/// message or record the store accepts (`smtp.max_message_size` is 25 MB
/// by default).
const MAX_DECODED: u64 = 1 << 30;

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
    #[error("zstd frame does not decompress to its recorded {expected} bytes")]
    Zstd { expected: u64 },
    #[error("value claims {0} bytes, more than any stored value may have")]
    TooLarge(u64),
    #[error("value needs dictionary {0:08x}, which this store does not have")]
    UnknownDictionary(u32),
}

/// The kinds of values that get a dictionary each: what is alike compresses
/// well together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Raw messages, inbound and outbound.
    Raw,
    /// Message records (`messages`).
    Message,
    /// Ticket records (`tickets`).
    Ticket,
    /// Ticket events (`events`).
    Event,
    /// Report summaries per ticket (`report_summaries`).
    Summary,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Raw,
        Kind::Message,
        Kind::Ticket,
        Kind::Event,
        Kind::Summary,
    ];

    /// The name in META (`dictionary:<name>`) and in logs.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Raw => "raw",
            Kind::Message => "message",
            Kind::Ticket => "ticket",
            Kind::Event => "event",
            Kind::Summary => "summary",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// Dictionary size: 64 KiB for raw mail (it kept 31 % against 34 % with
    /// 16 KiB), 16 KiB for records (larger ones did no better).
    pub fn dictionary_bytes(self) -> usize {
        match self {
            Kind::Raw => 64 * 1024,
            _ => 16 * 1024,
        }
    }
}

/// The id a dictionary is known by: the first four bytes of its SHA-256,
/// never 0 (which means "no dictionary").
pub fn dictionary_id(dictionary: &[u8]) -> u32 {
    let d = ring::digest::digest(&ring::digest::SHA256, dictionary);
    let mut id = [0u8; 4];
    id.copy_from_slice(&d.as_ref()[..4]);
    u32::from_le_bytes(id).max(1)
}

struct Known {
    digest: Vec<u8>,
    ddict: DDict<'static>,
}

/// Dictionaries for decoding, by id, for every store opened in this process.
static DICTIONARIES: LazyLock<RwLock<HashMap<u32, Arc<Known>>>> = LazyLock::new(Default::default);

/// Why a dictionary could not be registered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DictionaryError {
    #[error("dictionary {0:08x} is not a usable zstd dictionary")]
    Unusable(u32),
    #[error("dictionary id {0:08x} already names a different dictionary")]
    Clash(u32),
}

/// Makes `dictionary` known for decoding; returns its id. Registering the
/// same bytes again is a no-op.
pub fn register(dictionary: &[u8]) -> Result<u32, DictionaryError> {
    let id = dictionary_id(dictionary);
    let digest = ring::digest::digest(&ring::digest::SHA256, dictionary)
        .as_ref()
        .to_vec();
    let mut all = DICTIONARIES.write().unwrap_or_else(PoisonError::into_inner);
    if let Some(k) = all.get(&id) {
        return if k.digest == digest {
            Ok(id)
        } else {
            Err(DictionaryError::Clash(id))
        };
    }
    let ddict = DDict::try_create(dictionary).ok_or(DictionaryError::Unusable(id))?;
    all.insert(id, Arc::new(Known { digest, ddict }));
    Ok(id)
}

fn known(id: u32) -> Option<Arc<Known>> {
    DICTIONARIES
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&id)
        .cloned()
}

/// A dictionary ready for compressing.
pub struct Encoder {
    id: u32,
    cdict: CDict<'static>,
}

impl Encoder {
    /// Registers `dictionary` for decoding and prepares it for encoding.
    pub fn new(dictionary: &[u8]) -> Result<Encoder, DictionaryError> {
        let id = register(dictionary)?;
        let cdict = CDict::try_create(dictionary, LEVEL).ok_or(DictionaryError::Unusable(id))?;
        Ok(Encoder { id, cdict })
    }

    pub fn id(&self) -> u32 {
        self.id
    }
}

/// How a store writes new values: whether it compresses, with which
/// dictionary per kind, and how many values went without one (training is
/// due once enough did). Shared by the store's transactions; replaced, not
/// changed, when a dictionary is trained or compression switched.
pub struct Codec {
    compress: bool,
    encoders: [Option<Arc<Encoder>>; 5],
    undicted: [AtomicU64; 5],
}

impl Codec {
    pub fn new(compress: bool, encoders: [Option<Arc<Encoder>>; 5]) -> Codec {
        Codec {
            compress,
            encoders,
            undicted: Default::default(),
        }
    }

    pub fn compresses(&self) -> bool {
        self.compress
    }

    /// Takes over `old`'s counts of values written without a dictionary,
    /// except for `reset` kinds (their training was just tried).
    pub fn carry_counts(&self, old: &Codec, reset: &[Kind]) {
        for k in Kind::ALL {
            if !reset.contains(&k) {
                let n = old.undicted[k.index()].load(Ordering::Relaxed);
                self.undicted[k.index()].store(n, Ordering::Relaxed);
            }
        }
    }

    /// The dictionaries in use, by kind.
    pub fn encoders(&self) -> &[Option<Arc<Encoder>>; 5] {
        &self.encoders
    }

    /// The kinds without a dictionary that wrote at least `after` values
    /// through this codec.
    pub fn untrained(&self, after: u64) -> Vec<Kind> {
        if !self.compress {
            return Vec::new();
        }
        Kind::ALL
            .into_iter()
            .filter(|k| {
                self.encoders[k.index()].is_none()
                    && self.undicted[k.index()].load(Ordering::Relaxed) >= after
            })
            .collect()
    }

    /// A tagged value for `raw_encoded`: compressed when the store
    /// compresses and it pays, else plain.
    pub fn encode_tagged(&self, kind: Kind, bytes: &[u8]) -> Vec<u8> {
        if let Some(z) = self.compressed(kind, bytes) {
            return z;
        }
        let mut out = Vec::with_capacity(bytes.len() + 1);
        out.push(PLAIN);
        out.extend_from_slice(bytes);
        out
    }

    /// A JSON record as stored: compressed when the store compresses and it
    /// pays, else the JSON itself, as older stores have it.
    pub fn encode_record(&self, kind: Kind, json: Vec<u8>) -> Vec<u8> {
        self.compressed(kind, &json).unwrap_or(json)
    }

    fn compressed(&self, kind: Kind, bytes: &[u8]) -> Option<Vec<u8>> {
        if !self.compress {
            return None;
        }
        let encoder = self.encoders[kind.index()].as_deref();
        if encoder.is_none() {
            self.undicted[kind.index()].fetch_add(1, Ordering::Relaxed);
        }
        let min = if encoder.is_some() {
            MIN_COMPRESS_WITH_DICTIONARY
        } else {
            MIN_COMPRESS
        };
        if bytes.len() < min {
            return None;
        }
        let frame = zstd_frame(bytes, encoder)?;
        let body = frame.strip_prefix(&MAGIC)?;
        // Plain costs the bytes (and a tag for raw values); zstd five more
        // than the frame's body.
        if body.len() + 5 >= bytes.len() {
            return None;
        }
        let mut out = Vec::with_capacity(body.len() + 5);
        out.push(ZSTD);
        out.extend_from_slice(&encoder.map_or(0, |e| e.id).to_le_bytes());
        out.extend_from_slice(body);
        Some(out)
    }
}

thread_local! {
    /// One compression and one decompression context per thread: making
    /// them per value cost 10 µs, ten times the compression of a record.
    static CCTX: RefCell<Option<CCtx<'static>>> = const { RefCell::new(None) };
    static DCTX: RefCell<Option<DCtx<'static>>> = const { RefCell::new(None) };
}

fn zstd_frame(bytes: &[u8], encoder: Option<&Encoder>) -> Option<Vec<u8>> {
    CCTX.with(|cell| {
        let mut slot = cell.try_borrow_mut().ok()?;
        let cctx = match &mut *slot {
            Some(c) => c,
            None => {
                let mut c = CCtx::try_create()?;
                c.set_parameter(CParameter::CompressionLevel(LEVEL)).ok()?;
                c.set_parameter(CParameter::ContentSizeFlag(true)).ok()?;
                c.set_parameter(CParameter::ChecksumFlag(false)).ok()?;
                c.set_parameter(CParameter::DictIdFlag(false)).ok()?;
                slot.insert(c)
            }
        };
        let mut out = Vec::with_capacity(zstd_safe::compress_bound(bytes.len()));
        let result = match encoder {
            Some(e) => {
                cctx.ref_cdict(&e.cdict).ok()?;
                let r = cctx.compress2(&mut out, bytes);
                // The context must not keep a pointer to a dictionary that
                // may be dropped before its next use.
                let _ = cctx.disable_dictionary();
                r
            }
            None => cctx.compress2(&mut out, bytes),
        };
        result.ok().map(|_| out)
    })
}

fn unzstd(value: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let id = value
        .get(1..5)
        .and_then(|h| h.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or(DecodeError::Truncated)?;
    let mut frame = Vec::with_capacity(value.len() - 1);
    frame.extend_from_slice(&MAGIC);
    frame.extend_from_slice(&value[5..]);
    let expected = zstd_safe::get_frame_content_size(&frame)
        .ok()
        .flatten()
        .ok_or(DecodeError::Truncated)?;
    if expected > MAX_DECODED {
        return Err(DecodeError::TooLarge(expected));
    }
    let dictionary = match id {
        0 => None,
        id => Some(known(id).ok_or(DecodeError::UnknownDictionary(id))?),
    };
    let mut out: Vec<u8> = Vec::with_capacity(expected as usize);
    let done = DCTX.with(|cell| {
        let mut slot = cell.try_borrow_mut().ok()?;
        let dctx = match &mut *slot {
            Some(d) => d,
            None => slot.insert(DCtx::try_create()?),
        };
        match &dictionary {
            Some(k) => dctx.decompress_using_ddict(&mut out, &frame, &k.ddict),
            None => dctx.decompress(&mut out, &frame),
        }
        .ok()
    });
    match done {
        Some(n) if n as u64 == expected && out.len() as u64 == expected => Ok(out),
        _ => Err(DecodeError::Zstd { expected }),
    }
}

/// The original bytes of a `raw_encoded` value.
pub fn decode_tagged(value: &[u8]) -> Result<Vec<u8>, DecodeError> {
    match value.first() {
        None => Err(DecodeError::Empty),
        Some(&PLAIN) => Ok(value[1..].to_vec()),
        Some(&ZSTD) => unzstd(value),
        Some(&DEFLATE) => inflate(value),
        Some(&t) => Err(DecodeError::UnknownTag(t)),
    }
}

/// The JSON of a stored record: decompressed if it is tagged [`ZSTD`] or
/// [`DEFLATE`], borrowed as it is otherwise.
pub fn decode_record(value: &[u8]) -> Result<std::borrow::Cow<'_, [u8]>, DecodeError> {
    match value.first() {
        Some(&ZSTD) => unzstd(value).map(std::borrow::Cow::Owned),
        Some(&DEFLATE) => inflate(value).map(std::borrow::Cow::Owned),
        _ => Ok(std::borrow::Cow::Borrowed(value)),
    }
}

/// Which dictionary a stored value was compressed with: None for plain and
/// deflated values, Some(0) for zstd without one.
pub fn dictionary_of(value: &[u8]) -> Option<u32> {
    match value.first() {
        Some(&ZSTD) => value
            .get(1..5)
            .and_then(|h| h.try_into().ok())
            .map(u32::from_le_bytes),
        _ => None,
    }
}

/// A dictionary for `kind` trained on `samples` (values as stored, decoded),
/// or None when zstd finds too little to learn from. Mail addresses are cut
/// out of the samples first, so a dictionary never holds one (it would
/// outlive its owner's erasure; see `dictionaries.rs`).
pub fn train(kind: Kind, samples: &[Vec<u8>]) -> Option<Vec<u8>> {
    let masked: Vec<Vec<u8>> = samples.iter().map(|s| without_addresses(s)).collect();
    // zstd wants many times the dictionary's size in samples; a small
    // store (or a `compact` of one) gets a smaller dictionary.
    let total: usize = masked.iter().map(Vec::len).sum();
    let size = kind.dictionary_bytes().min(total / 8);
    if size < 1024 {
        return None;
    }
    zstd::dict::from_samples(&masked, size).ok()
}

/// `bytes` with every `local@domain` cut down to `@`.
pub fn without_addresses(bytes: &[u8]) -> Vec<u8> {
    let local = |b: u8| b.is_ascii_alphanumeric() || b".!#$%&'*+/=?^_`{|}~-".contains(&b);
    let domain = |b: u8| b.is_ascii_alphanumeric() || b == b'.' || b == b'-';
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'@' {
            while out.last().is_some_and(|&b| local(b)) {
                out.pop();
            }
            out.push(b'@');
            i += 1;
            let start = i;
            while i < bytes.len() && domain(bytes[i]) {
                i += 1;
            }
            // A sentence's full stop after an address is not its domain's.
            while i > start && bytes[i - 1] == b'.' {
                i -= 1;
            }
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
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

    fn on() -> Codec {
        Codec::new(true, Default::default())
    }

    /// What earlier versions wrote: tag, length, raw deflate.
    fn deflated(bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![DEFLATE];
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(&miniz_oxide::deflate::compress_to_vec(bytes, 1));
        out
    }

    fn events(n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| {
                format!(
                    r#"{{"at":{},"kind":"{}","actor":"agent{}@example.test","detail":"status {} to open","message":{}}}"#,
                    1_790_000_000 + i * 37,
                    ["created", "replied", "status", "assigned"][i % 4],
                    i % 7,
                    ["new", "pending"][i % 2],
                    i * 3
                )
                .into_bytes()
            })
            .collect()
    }

    #[test]
    fn tagged_values_round_trip_compressed_or_plain() {
        let m = mail();
        let z = on().encode_tagged(Kind::Raw, &m);
        assert_eq!(z[0], ZSTD);
        assert_eq!(dictionary_of(&z), Some(0));
        assert!(z.len() < m.len() / 2, "{} of {}", z.len(), m.len());
        assert_eq!(decode_tagged(&z).unwrap(), m);
        let p = Codec::new(false, Default::default()).encode_tagged(Kind::Raw, &m);
        assert_eq!(p[0], PLAIN);
        assert_eq!(decode_tagged(&p).unwrap(), m);
        // Short values and incompressible ones stay plain.
        assert_eq!(on().encode_tagged(Kind::Raw, b"x\r\n"), b"\0x\r\n");
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        assert_eq!(on().encode_tagged(Kind::Raw, &noise)[0], PLAIN);
        assert_eq!(
            decode_tagged(&on().encode_tagged(Kind::Raw, b"")).unwrap(),
            b""
        );
        // What earlier versions wrote still reads.
        assert_eq!(decode_tagged(&deflated(&m)).unwrap(), m);
    }

    #[test]
    fn records_stay_json_unless_compressed() {
        let json =
            serde_json::to_vec(&serde_json::json!({"text": String::from_utf8(mail()).unwrap()}))
                .unwrap();
        let z = on().encode_record(Kind::Message, json.clone());
        assert_eq!(z[0], ZSTD);
        assert_eq!(&*decode_record(&z).unwrap(), json.as_slice());
        // Old records (and small ones) are JSON as they always were.
        assert_eq!(on().encode_record(Kind::Message, b"{}".to_vec()), b"{}");
        assert_eq!(&*decode_record(&json).unwrap(), json.as_slice());
        assert_eq!(&*decode_record(&deflated(&json)).unwrap(), json.as_slice());
    }

    #[test]
    fn a_trained_dictionary_shrinks_small_records_and_is_needed_to_read_them() {
        let samples = events(1000);
        let dictionary = train(Kind::Event, &samples).expect("trained");
        let with = Codec::new(
            true,
            [
                None,
                None,
                None,
                Some(Arc::new(Encoder::new(&dictionary).unwrap())),
                None,
            ],
        );
        let event = &events(1003)[1001];
        // Without a dictionary an event is too small to compress at all.
        assert_eq!(on().encode_record(Kind::Event, event.clone()), *event);
        let z = with.encode_record(Kind::Event, event.clone());
        assert_eq!(z[0], ZSTD);
        assert_eq!(dictionary_of(&z), Some(dictionary_id(&dictionary)));
        assert!(z.len() * 2 < event.len(), "{} of {}", z.len(), event.len());
        assert_eq!(&*decode_record(&z).unwrap(), event.as_slice());
        // Other kinds do not use it.
        assert_eq!(
            dictionary_of(&with.encode_tagged(Kind::Raw, &mail())),
            Some(0)
        );
        // A value naming a dictionary nobody registered is an error.
        let mut orphan = z.clone();
        orphan[1..5].copy_from_slice(&0x0bad_cafeu32.to_le_bytes());
        assert_eq!(
            decode_record(&orphan),
            Err(DecodeError::UnknownDictionary(0x0bad_cafe))
        );
        // Counting: a kind without a dictionary is due after enough values.
        let fresh = on();
        for e in events(5) {
            fresh.encode_record(Kind::Ticket, e);
        }
        assert_eq!(fresh.untrained(5), vec![Kind::Ticket]);
        assert!(fresh.untrained(6).is_empty());
        assert!(with.untrained(0).iter().all(|k| *k != Kind::Event));
    }

    #[test]
    fn dictionaries_hold_no_mail_addresses() {
        assert_eq!(
            without_addresses(b"From: Ann <ann.lee+x@mail.example.org>, bob@b.test."),
            b"From: Ann <@>, @."
        );
        let samples: Vec<Vec<u8>> = events(1000)
            .into_iter()
            .map(|mut e| {
                e.extend_from_slice(b" regards, frequent.customer@example.org");
                e
            })
            .collect();
        let d = train(Kind::Event, &samples).unwrap();
        let text = String::from_utf8_lossy(&d);
        assert!(!text.contains("frequent.customer"), "{text}");
        assert!(!text.contains("agent1@"), "{text}");
    }

    #[test]
    fn damage_is_an_error_not_a_panic_or_a_huge_allocation() {
        let z = on().encode_tagged(Kind::Raw, &mail());
        assert_eq!(decode_tagged(&[]), Err(DecodeError::Empty));
        assert_eq!(decode_tagged(&[7, 1, 2]), Err(DecodeError::UnknownTag(7)));
        assert_eq!(decode_tagged(&z[..3]), Err(DecodeError::Truncated));
        assert!(matches!(
            decode_tagged(&z[..z.len() - 10]),
            Err(DecodeError::Zstd { .. })
        ));
        // A frame header claiming a huge size: refused before allocating.
        let mut huge = vec![ZSTD, 0, 0, 0, 0];
        // Frame header: single segment, 8-byte content size.
        huge.push(0b1110_0000);
        huge.extend_from_slice(&(1u64 << 40).to_le_bytes());
        huge.extend_from_slice(&[1, 0, 0]);
        assert_eq!(decode_tagged(&huge), Err(DecodeError::TooLarge(1 << 40)));
        let d = deflated(&mail());
        assert_eq!(decode_tagged(&d[..3]), Err(DecodeError::Truncated));
        let mut lying = d.clone();
        lying[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_tagged(&lying).is_err());
        let mut short = d;
        short[1..5].copy_from_slice(&10u32.to_le_bytes());
        assert!(decode_tagged(&short).is_err());
    }
}

#[cfg(test)]
mod store_tests {
    use super::super::*;
    use super::{PLAIN, ZSTD};

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
        assert_eq!(stored(RAW_ENCODED, 2).unwrap()[0], ZSTD);
        assert_eq!(stored(MESSAGES, 2).unwrap()[0], ZSTD);
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
