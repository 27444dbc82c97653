//! The bounds on a contacts file: every one is named, has a default here, and is named again by the error that hits it.

/// The largest campaign file `load_campaign` reads: 1 MiB (a campaign file is usually a few kilobytes).
pub const MAX_CAMPAIGN_FILE_BYTES: u64 = 1024 * 1024;

/// Default of [`ContactLimits::max_file_bytes`]: 512 MiB, room for about 10 million contacts.
pub const MAX_CONTACTS_FILE_BYTES: u64 = 512 * 1024 * 1024;

/// Default of [`ContactLimits::max_record_bytes`]: 64 KiB for one CSV record (all its fields, quoted line breaks
/// included).
pub const MAX_RECORD_BYTES: usize = 64 * 1024;

/// Default of [`ContactLimits::max_fields`]: 256 fields in one CSV record.
pub const MAX_FIELDS: usize = 256;

/// How large a contacts file, a record and a row may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContactLimits {
    /// The largest contacts file, in bytes: checked before it is opened and again while it is read.
    pub max_file_bytes: u64,
    /// The longest CSV record, in bytes. A longer record is a bad row; the reader keeps at most this much of it.
    pub max_record_bytes: usize,
    /// The most fields in one CSV record (the header included). A record with more is a bad row.
    pub max_fields: usize,
}

impl Default for ContactLimits {
    fn default() -> Self {
        Self {
            max_file_bytes: MAX_CONTACTS_FILE_BYTES,
            max_record_bytes: MAX_RECORD_BYTES,
            max_fields: MAX_FIELDS,
        }
    }
}
