//! The seam between the server and where it keeps its data: everything the server stores
//! goes through these traits, so one binary runs on SQLite in its data directory (the
//! default, [`crate::sqlite`]) or on a shared database.
//!
//! Every backend keeps the guarantees the server makes, and [`conformance`] checks each one
//! with the same tests:
//! * a code is redeemed at most once, even by two servers at the same moment
//!   ([`WriteTx::redeem_code`] says whether this transaction was the one);
//! * a [`WriterStore::transaction`] is all or nothing, and once it returned `Ok` its data
//!   survives the process being killed, so the writer acknowledges only after it;
//! * storage stays unlinkable (README, "What the server stores"): a redeemed code keeps only
//!   its hash and the hour it expires, keys get random ids and times rounded to the
//!   truncate window (an hour by default);
//! * a batch is leased by one batcher at a time, and a batcher that lost its lease can
//!   neither store padding nor finish the batch;
//! * the guessing budget is one for all servers ([`WriteTx::lock_budget`]);
//! * the daily figures ([`DayCounts`]) are counted in the transaction that does what they
//!   count, so they match what was stored, once.
//!
//! The traits are synchronous: the writer and the export passes run on their own threads.

use std::fmt;

use kith_core::DiagnosisKey;
use kith_core::checkin::{LocationIdHash, ProtectedReport};
use rand_core::{OsRng, RngCore};
use zeroize::Zeroizing;

use crate::calendar::Day;
use crate::clock::UnixSeconds;
use crate::codes::{CodeHash, CodeOrder, Diagnosis, Onset};
use crate::error::Result;
use crate::guessing::BudgetState;
use crate::upload::StoredKey;
use crate::window::{Window, Windowing};

#[cfg(test)]
pub mod conformance;

/// A database the server stores everything in.
pub trait Storage: Send + Sync + fmt::Debug {
    /// The store the writer thread owns: every publish and code issue goes through it.
    fn writer(&self) -> Result<Box<dyn WriterStore>>;
    /// A store for one export pass or one operator command.
    fn batcher(&self) -> Result<Box<dyn BatchStore>>;
    /// The case-worker accounts.
    fn accounts(&self) -> Result<Box<dyn AccountStore>>;
    /// The registered venues, and the check-ins counted for the dashboard.
    fn venues(&self) -> Result<Box<dyn VenueStore>>;
}

/// The writer thread's connection.
pub trait WriterStore: Send {
    /// The stored server-wide guessing budget, if one was stored.
    fn load_budget(&mut self) -> Result<Option<BudgetState>>;
    /// Runs `work` in one transaction: committed (durably, as the server's durability
    /// setting says) when `work` and the commit return `Ok`, rolled back otherwise.
    fn transaction(&mut self, work: &mut dyn FnMut(&mut dyn WriteTx) -> Result<()>) -> Result<()>;
}

/// What the writer does inside one group-commit transaction.
pub trait WriteTx {
    /// Looks up a code by its hash.
    fn find_code(&mut self, hash: &CodeHash) -> Result<CodeState>;
    /// Marks a code used, keeping only its hash and the hour it expires. False if another
    /// transaction (another server) used it after [`find_code`](Self::find_code) saw it.
    fn redeem_code(&mut self, code: &CodeRow) -> Result<bool>;
    /// Stores a new code; false if its hash exists already (a collision: draw another).
    fn insert_code(&mut self, hash: &CodeHash, order: &CodeOrder) -> Result<bool>;
    /// Stores new codes, each with the audit log's record that `who` issued it at `now`;
    /// says for each hash whether it was stored (a hash that exists already, a collision,
    /// or one given twice, is stored once: draw another).
    fn insert_codes(
        &mut self,
        hashes: &[CodeHash],
        order: &CodeOrder,
        who: &str,
        now: UnixSeconds,
    ) -> Result<Vec<bool>> {
        hashes
            .iter()
            .map(|hash| {
                let stored = self.insert_code(hash, order)?;
                if stored {
                    self.audit_issue(who, hash, now)?;
                }
                Ok(stored)
            })
            .collect()
    }
    /// Stores published keys, each under a random id, with their arrival rounded down and
    /// their embargo rounded up to a multiple of `truncate` seconds (`--truncate-window`,
    /// a divisor of a day).
    fn insert_keys(
        &mut self,
        keys: &[StoredKey],
        now: UnixSeconds,
        truncate: u64,
        rng: &mut dyn RngCore,
    ) -> Result<()>;
    /// Stores published check-ins (encrypted reports), each under a random id, released at
    /// the end of the `truncate` window they arrive in (as keys are).
    fn insert_check_ins(
        &mut self,
        reports: &[ProtectedReport],
        now: UnixSeconds,
        truncate: u64,
        rng: &mut dyn RngCore,
    ) -> Result<()>;
    /// Records in the audit log that `who` issued the code with `hash` at `now`.
    fn audit_issue(&mut self, who: &str, hash: &CodeHash, now: UnixSeconds) -> Result<()>;
    /// The answer stored for a sealed body (by the SHA-256 of its `enc`), if it was sent
    /// before.
    fn find_sealed_answer(&mut self, id: &[u8; 32]) -> Result<Option<Vec<u8>>>;
    /// Stores a sealed body's answer for replays until `expires_hour` (Unix hours); a body
    /// stored already (sent to two servers at once) keeps its first answer.
    fn store_sealed_answer(
        &mut self,
        id: &[u8; 32],
        answer: &[u8],
        expires_hour: u64,
    ) -> Result<()>;
    /// Deletes the sealed answers kept long enough (`expires_hour` before `hour`).
    fn prune_sealed_answers(&mut self, hour: u64) -> Result<()>;
    /// Stores the server-wide guessing budget.
    fn store_budget(&mut self, budget: BudgetState) -> Result<()>;
    /// The server-wide guessing budget as every server on this database left it (`own`, the
    /// writer's, if none is stored), held until the transaction ends so that servers
    /// spending it at once take turns: each one's failed redemptions are counted against
    /// what the others left. Taken before any code row (the writer's lock order: budget,
    /// codes by hash, day figures). A backend that only one process opens (SQLite, whose
    /// data directory is locked) has no other spender and returns `own`.
    fn lock_budget(&mut self, own: BudgetState) -> Result<BudgetState> {
        Ok(own)
    }
    /// Adds `counts` to those of `day`.
    fn add_day_counts(&mut self, day: Day, counts: &DayCounts) -> Result<()>;
}

/// What happened on one day.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DayCounts {
    /// Verification codes issued.
    pub codes_issued: u64,
    /// Codes used to publish keys.
    pub codes_redeemed: u64,
    /// Keys published (real ones, not chaff or padding).
    pub keys_published: u64,
    /// Export files written (key exports, not trace-warning packages).
    pub export_files: u64,
    /// Their bytes.
    pub export_bytes: u64,
}

impl DayCounts {
    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &Self) {
        self.codes_issued += other.codes_issued;
        self.codes_redeemed += other.codes_redeemed;
        self.keys_published += other.keys_published;
        self.export_files += other.export_files;
        self.export_bytes += other.export_bytes;
    }
}

/// A verification code that has not been used.
#[derive(Debug)]
pub struct CodeRow {
    /// The hash it is stored under.
    pub hash: CodeHash,
    /// Diagnosis for the keys.
    pub diagnosis: Diagnosis,
    /// Onset or test day.
    pub onset: Option<Onset>,
    /// When it stops working.
    pub expires_at: UnixSeconds,
}

/// What the database knows of a code.
#[derive(Debug)]
pub enum CodeState {
    /// Never issued (or deleted long after it expired).
    Unknown,
    /// Issued and not yet used.
    Unused(CodeRow),
    /// Used once already.
    Redeemed,
}

/// A batcher's hold on one batch: its window, and the fresh random token the batch
/// carries while held. A backend checks the token in the same transaction as each of the
/// batcher's writes, so a batcher that outlived its lease and was taken over changes
/// nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The batch's window.
    pub window: Window,
    token: [u8; 16],
}

impl Lease {
    /// A token for a new lease, drawn before the backend stores it with the batch.
    pub(crate) fn fresh_token() -> [u8; 16] {
        let mut token = [0; 16];
        OsRng.fill_bytes(&mut token);
        token
    }

    /// The lease a backend granted on `window` with `token`.
    pub(crate) fn new(window: Window, token: [u8; 16]) -> Self {
        Self { window, token }
    }

    /// The token the batch carries while this lease holds it.
    pub(crate) fn token(&self) -> &[u8; 16] {
        &self.token
    }
}

/// A file written for a batch: a key export, or its trace-warning package.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileRecord {
    /// Path relative to the data directory.
    pub name: String,
    /// Real keys (check-in reports, in a package) in it.
    pub real_keys: usize,
    /// Padding keys (reports) in it.
    pub padding_keys: usize,
    /// Its size.
    pub bytes: u64,
    /// SHA-256 of its bytes.
    pub sha256: [u8; 32],
}

/// What [`BatchStore::mix_staged`] moved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mixed {
    /// Diagnosis keys.
    pub keys: usize,
    /// Check-in reports.
    pub check_ins: usize,
}

/// What the first step of retention removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Expired {
    /// Files dropped from the index.
    pub files_dropped: usize,
    /// Diagnosis keys deleted.
    pub keys_deleted: usize,
    /// Check-in reports deleted.
    pub check_ins_deleted: usize,
    /// Verification codes (unused ones and the hashes kept of used ones) deleted.
    pub codes_deleted: usize,
}

/// A signing key as the database lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigningKeyRow {
    /// GAEN `SignatureInfo` key id.
    pub key_id: String,
    /// GAEN `SignatureInfo` key version.
    pub key_version: String,
    /// Where its private key is.
    pub private_key: PrivateKey,
    /// When it was added.
    pub created_at: UnixSeconds,
    /// After this time it signs no new file.
    pub not_after: Option<UnixSeconds>,
}

/// Where a signing key's private key is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PrivateKey {
    /// A PEM file in the data directory: the key made on first start (which every
    /// instance gets as a copy of the file), and keys rotated by older servers.
    File(String),
    /// In the database, so that every server on it signs with a key any of them added.
    Pem(PrivateKeyPem),
}

impl PrivateKey {
    /// From a row's `file` and `private_key` columns (a stored PEM wins).
    pub(crate) fn from_columns(file: String, pem: Option<String>) -> Self {
        match pem {
            Some(pem) => Self::Pem(PrivateKeyPem::new(pem)),
            None => Self::File(file),
        }
    }

    /// The row's `file` and `private_key` columns.
    pub(crate) fn columns(&self) -> (&str, Option<&str>) {
        match self {
            Self::File(file) => (file, None),
            Self::Pem(pem) => ("", Some(pem.expose_secret())),
        }
    }
}

/// A private key as PKCS#8 PEM text, zeroized when dropped and never in Debug output.
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateKeyPem(Zeroizing<String>);

impl PrivateKeyPem {
    /// Wraps PEM text.
    pub fn new(pem: String) -> Self {
        Self(Zeroizing::new(pem))
    }

    /// The PEM text.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PrivateKeyPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKeyPem(<redacted>)")
    }
}

/// What adding a signing key did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddedKey {
    /// The new key's id (that of the newest key before).
    pub key_id: String,
    /// The new key's version, `v<n>` with the first free `n` from 2.
    pub key_version: String,
    /// How many older keys now end at the given time.
    pub retiring: usize,
}

/// The export batches, their files, retention and the signing key list. Each method is one
/// transaction, safe to run in several processes at once.
///
/// ```text
///  (no row) ──cut──▶ open ──lease──▶ pending (lease_id, lease_expires) ──finish──▶ complete
///                                     └── lease expired: another batcher may lease it again
/// ```
pub trait BatchStore: Send {
    /// Inserts an open batch for every window that is old enough and not cut yet; the first
    /// window holds the oldest key's arrival. Returns how many were cut.
    fn cut_windows(&mut self, windowing: &Windowing, now: UnixSeconds) -> Result<usize>;
    /// Moves the keys and check-ins the writer staged into the tables exports are read
    /// from, a whole truncate window at a time once it ended, in random order; returns how
    /// many. Only a backend whose tables would show arrival order stages anything
    /// (PostgreSQL, see `postgres::staging`); SQLite keeps its tables in the order of their
    /// random ids.
    fn mix_staged(&mut self, _now: UnixSeconds) -> Result<Mixed> {
        Ok(Mixed::default())
    }
    /// Takes the oldest batch that is open, or pending with an expired lease, until
    /// `lease_seconds` after `now`, under a fresh token.
    fn lease(&mut self, now: UnixSeconds, lease_seconds: u64) -> Result<Option<Lease>>;
    /// The keys released in `window`, in the table's (random) order.
    fn released_keys(&mut self, window: Window) -> Result<Vec<DiagnosisKey>>;
    /// The padding stored for the batch starting at `start` (empty if none was stored).
    fn stored_padding(&mut self, start: UnixSeconds) -> Result<Vec<DiagnosisKey>>;
    /// Stores `padding` for the leased batch unless padding is stored already; returns the
    /// batch's padding (ours, or the one stored first), or `None` when the lease was lost.
    fn store_padding(
        &mut self,
        lease: &Lease,
        padding: Vec<DiagnosisKey>,
    ) -> Result<Option<Vec<DiagnosisKey>>>;
    /// The check-in reports released in `window`.
    fn released_reports(&mut self, window: Window) -> Result<Vec<ProtectedReport>>;
    /// The trace-warning padding stored for the batch starting at `start`.
    fn stored_report_padding(&mut self, start: UnixSeconds) -> Result<Vec<ProtectedReport>>;
    /// Stores trace-warning padding as [`store_padding`](Self::store_padding) stores keys.
    fn store_report_padding(
        &mut self,
        lease: &Lease,
        padding: Vec<ProtectedReport>,
    ) -> Result<Option<Vec<ProtectedReport>>>;
    /// If `lease` still holds its batch: runs `publish` (which puts the files in place),
    /// records the files, adds the key export files among them (those under `v1/exports/`)
    /// to the counts of the day of `now`
    /// and marks the batch complete, all in one transaction that holds
    /// the batch, so no other batcher can take it over or complete it in between; when
    /// `publish` fails nothing is recorded. Returns `false`, without running `publish`,
    /// when the lease was lost.
    fn finish(
        &mut self,
        lease: &Lease,
        files: &[FileRecord],
        now: UnixSeconds,
        publish: &mut dyn FnMut() -> Result<()>,
    ) -> Result<bool>;
    /// Runs `work` with the start times of the pending batches while holding the lock
    /// [`with_index`](Self::with_index) and [`lease`](Self::lease) take, so that no batch
    /// becomes pending and no index is written until `work` returns.
    fn with_pending(&mut self, work: &mut dyn FnMut(&[UnixSeconds]) -> Result<()>) -> Result<()>;
    /// Runs `write` with the names of the indexed files under `dir` (not expired, oldest
    /// window first) while holding the database's index lock, so that two batchers write
    /// their indexes one after the other and the last one written is current.
    fn with_index(
        &mut self,
        dir: &str,
        write: &mut dyn FnMut(&[String]) -> Result<()>,
    ) -> Result<()>;
    /// Retention's first step at `now`: drops files whose window ended before `cutoff`
    /// from the index, deletes exported keys and check-ins, codes and padding older than
    /// `cutoff`.
    fn expire(&mut self, now: UnixSeconds, cutoff: u64) -> Result<Expired>;
    /// The files dropped from the index at or before `before`, to delete.
    fn dropped_files(&mut self, before: u64) -> Result<Vec<String>>;
    /// Forgets a deleted file.
    fn forget_file(&mut self, name: &str) -> Result<()>;
    /// The counts of the days from `first` on, oldest first; days on which nothing was
    /// counted are left out.
    fn day_counts(&mut self, first: Day) -> Result<Vec<(Day, DayCounts)>>;
    /// The signing keys, oldest first; when none is listed, `first` is listed first.
    fn signing_keys(&mut self, first: &SigningKeyRow) -> Result<Vec<SigningKeyRow>>;
    /// Lists a new signing key (see [`AddedKey`]) with its private key; with `retire_at`,
    /// every older key without an end time gets that end.
    fn add_signing_key(
        &mut self,
        now: UnixSeconds,
        retire_at: Option<UnixSeconds>,
        private_key: &PrivateKeyPem,
    ) -> Result<AddedKey>;
}

/// A case worker's stored login state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseWorkerRow {
    /// Argon2id PHC string.
    pub password_hash: String,
    /// Failed logins in a row.
    pub failed_logins: u32,
    /// Unix seconds until which logins are refused.
    pub locked_until: u64,
}

/// Case-worker accounts (the audit log of issued codes is written with the codes, in
/// [`WriteTx::audit_issue`]).
pub trait AccountStore: Send {
    /// Creates an account; false if the name is taken.
    fn add_case_worker(&mut self, name: &str, password_hash: &str) -> Result<bool>;
    /// An account's login state.
    fn case_worker(&mut self, name: &str) -> Result<Option<CaseWorkerRow>>;
    /// Stores an account's failed-login count and lock.
    fn set_login_state(&mut self, name: &str, failed_logins: u32, locked_until: u64) -> Result<()>;
}

/// A venue the health authority registered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Venue {
    /// SHA-256 of its location id, as its reports carry it.
    pub hash: LocationIdHash,
    /// The text of its QR code.
    pub qr_text: String,
    /// What it is.
    pub description: String,
    /// Where it is.
    pub address: String,
}

/// The venues (and, for the dashboard, counts of the check-in reports stored).
pub trait VenueStore: Send {
    /// Stores a venue `who` registered at `now`.
    fn add_venue(&mut self, venue: &Venue, who: &str, now: UnixSeconds) -> Result<()>;
    /// Every registered venue, by description.
    fn venues(&mut self) -> Result<Vec<Venue>>;
    /// The venue registered under `hash`.
    fn venue(&mut self, hash: &LocationIdHash) -> Result<Option<Venue>>;
    /// How many check-in reports released after `after` arrived per location hash and
    /// day (the day of the truncate window a report arrived in, before its release).
    fn check_in_counts(&mut self, after: UnixSeconds) -> Result<Vec<(LocationIdHash, Day, u64)>>;
}

/// A location hash as stored (32 bytes), or a corrupt-data error.
pub(crate) fn location_hash(bytes: &[u8]) -> Result<LocationIdHash> {
    Ok(LocationIdHash::from_bytes(bytes.try_into().map_err(
        |_| crate::error::AppError::Corrupt("stored location id hash is not 32 bytes".into()),
    )?))
}
