//! The storage conformance suite: the same tests for every backend. A backend's test module
//! runs them all with `suite!(open)`, where `open` returns a fresh, empty [`Fixture`], or
//! `None` after [`kith_test_support::skip`] when the backend's server is not there.

use std::path::Path;
use std::sync::{Arc, Barrier};

use kith_core::{DiagnosisKey, IntervalNumber, KeyValidity, RollingPeriod, TemporaryExposureKey};
use rand_core::OsRng;

use super::{
    BatchStore, CodeRow, CodeState, DayCounts, FileRecord, Lease, PrivateKey, PrivateKeyPem,
    SigningKeyRow, Storage, WriteTx, WriterStore,
};
use crate::calendar::Day;
use crate::clock::UnixSeconds;
use crate::codes::{CodeHash, CodeOrder, Diagnosis, Onset, OnsetKind};
use crate::config::Config;
use crate::error::{AppError, Result};
use crate::guessing::BudgetState;
use crate::upload::StoredKey;
use crate::window::{Window, Windowing};

/// A backend under test, with whatever it needs kept alive.
#[derive(Debug)]
pub struct Fixture {
    /// The storage, empty.
    pub storage: Arc<dyn Storage>,
    /// Its data directory.
    pub dir: tempfile::TempDir,
}

/// A server configuration on `dir`.
pub fn config(dir: &Path) -> Config {
    Config::with_data_dir(dir)
}

/// Runs every conformance test on the fixtures `open` returns.
macro_rules! suite {
    ($open:path) => {
        $crate::storage::conformance::suite!(
            $open;
            codes_are_single_use,
            concurrent_redemptions_redeem_once,
            a_failed_transaction_stores_nothing,
            the_guessing_budget_is_kept,
            sealed_answers_are_kept_and_pruned,
            keys_are_released_by_their_rounded_embargo_in_no_arrival_order,
            mixing_moves_each_staged_key_once_and_only_ended_windows,
            one_batcher_holds_a_batch_and_a_lost_lease_cannot_finish,
            padding_is_stored_once,
            retention_deletes_what_is_exported_and_old,
            signing_keys_are_listed_and_added,
            accounts_keep_their_login_state,
            daily_counts_are_added_with_what_they_count,
        );
    };
    ($open:path; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let Some(fixture) = $open() else { return };
                $crate::storage::conformance::$name(&*fixture.storage);
            }
        )*
    };
}
pub(crate) use suite;

const T0: u64 = 1_800_000_000;

fn order() -> CodeOrder {
    CodeOrder {
        diagnosis: Diagnosis::ClinicalDiagnosis,
        onset: Some(Onset {
            day: Day::new(20_830),
            kind: OnsetKind::Test,
        }),
        count: 1,
        expires_at: UnixSeconds::new(T0 + 86_400),
    }
}

fn in_tx<T>(
    writer: &mut dyn WriterStore,
    mut work: impl FnMut(&mut dyn WriteTx) -> Result<T>,
) -> Result<T> {
    let mut out = None;
    writer.transaction(&mut |tx| {
        out = Some(work(tx)?);
        Ok(())
    })?;
    Ok(out.expect("the transaction ran"))
}

fn issue(storage: &dyn Storage) -> CodeHash {
    let hash = CodeHash::random(&mut OsRng);
    let mut writer = storage.writer().unwrap();
    assert!(in_tx(&mut *writer, |tx| tx.insert_code(&hash, &order())).unwrap());
    hash
}

fn unused(state: CodeState) -> CodeRow {
    match state {
        CodeState::Unused(row) => row,
        other => panic!("expected an unused code, found {other:?}"),
    }
}

/// A code is found with what it was issued with, redeemed once, and its hash never issued
/// again.
pub fn codes_are_single_use(storage: &dyn Storage) {
    let hash = issue(storage);
    let mut writer = storage.writer().unwrap();
    let w = &mut *writer;
    assert!(!in_tx(w, |tx| tx.insert_code(&hash, &order())).unwrap());
    let row = unused(in_tx(w, |tx| tx.find_code(&hash)).unwrap());
    assert_eq!(row.hash.as_bytes(), hash.as_bytes());
    assert_eq!(row.diagnosis, order().diagnosis);
    assert_eq!(row.onset, order().onset);
    assert_eq!(row.expires_at, order().expires_at);
    assert!(in_tx(w, |tx| tx.redeem_code(&row)).unwrap());
    assert!(matches!(
        in_tx(w, |tx| tx.find_code(&hash)).unwrap(),
        CodeState::Redeemed
    ));
    assert!(!in_tx(w, |tx| tx.redeem_code(&row)).unwrap());
    assert!(!in_tx(w, |tx| tx.insert_code(&hash, &order())).unwrap());
    let unknown = CodeHash::random(&mut OsRng);
    assert!(matches!(
        in_tx(w, |tx| tx.find_code(&unknown)).unwrap(),
        CodeState::Unknown
    ));
}

/// Writers on separate connections (as two servers have) race to redeem one code: exactly
/// one succeeds.
pub fn concurrent_redemptions_redeem_once(storage: &dyn Storage) {
    const RACERS: usize = 6;
    let hash = issue(storage);
    let writers: Vec<_> = (0..RACERS).map(|_| storage.writer().unwrap()).collect();
    let start = Barrier::new(RACERS);
    let wins = std::thread::scope(|scope| {
        let racers: Vec<_> = writers
            .into_iter()
            .map(|mut writer| {
                let start = &start;
                scope.spawn(move || {
                    start.wait();
                    in_tx(&mut *writer, |tx| match tx.find_code(&hash)? {
                        CodeState::Unused(row) => tx.redeem_code(&row),
                        _ => Ok(false),
                    })
                    .unwrap()
                })
            })
            .collect();
        racers
            .into_iter()
            .map(|racer| racer.join().unwrap())
            .filter(|won| *won)
            .count()
    });
    assert_eq!(wins, 1);
}

/// Work that fails is rolled back whole; committed work is seen by every other connection.
pub fn a_failed_transaction_stores_nothing(storage: &dyn Storage) {
    let hash = CodeHash::random(&mut OsRng);
    let mut writer = storage.writer().unwrap();
    let failed = writer.transaction(&mut |tx| {
        tx.insert_code(&hash, &order())?;
        Err(AppError::Unavailable)
    });
    assert!(matches!(failed, Err(AppError::Unavailable)));
    let mut other = storage.writer().unwrap();
    assert!(matches!(
        in_tx(&mut *other, |tx| tx.find_code(&hash)).unwrap(),
        CodeState::Unknown
    ));
    assert!(in_tx(&mut *writer, |tx| tx.insert_code(&hash, &order())).unwrap());
    unused(in_tx(&mut *other, |tx| tx.find_code(&hash)).unwrap());
}

/// The server-wide budget survives a restart.
pub fn the_guessing_budget_is_kept(storage: &dyn Storage) {
    let mut writer = storage.writer().unwrap();
    assert_eq!(writer.load_budget().unwrap(), None);
    for tokens in [12.5, 3.25] {
        let budget = BudgetState {
            tokens,
            at: UnixSeconds::new(T0),
        };
        in_tx(&mut *writer, |tx| tx.store_budget(budget)).unwrap();
        assert_eq!(
            storage.writer().unwrap().load_budget().unwrap(),
            Some(budget)
        );
    }
}

/// A sealed answer is found by its id, keeps its first value, and goes once pruned.
pub fn sealed_answers_are_kept_and_pruned(storage: &dyn Storage) {
    let mut writer = storage.writer().unwrap();
    let w = &mut *writer;
    let (a, b) = ([1; 32], [2; 32]);
    in_tx(w, |tx| tx.store_sealed_answer(&a, b"first", 10)).unwrap();
    in_tx(w, |tx| tx.store_sealed_answer(&a, b"second", 10)).unwrap();
    in_tx(w, |tx| tx.store_sealed_answer(&b, b"other", 20)).unwrap();
    assert_eq!(
        in_tx(w, |tx| tx.find_sealed_answer(&a)).unwrap().as_deref(),
        Some(&b"first"[..])
    );
    in_tx(w, |tx| tx.prune_sealed_answers(11)).unwrap();
    assert_eq!(in_tx(w, |tx| tx.find_sealed_answer(&a)).unwrap(), None);
    assert!(in_tx(w, |tx| tx.find_sealed_answer(&b)).unwrap().is_some());
}

fn key(bytes: [u8; 16], start: u32) -> DiagnosisKey {
    let validity =
        KeyValidity::new(IntervalNumber::new(start), RollingPeriod::new(144).unwrap()).unwrap();
    DiagnosisKey::new(TemporaryExposureKey::from_slice(&bytes, validity).unwrap())
}

fn publish(storage: &dyn Storage, keys: &[[u8; 16]], now: u64, embargo: u64) {
    let stored: Vec<StoredKey> = keys
        .iter()
        .map(|bytes| StoredKey {
            key: key(*bytes, 2_990_000),
            embargo_until: UnixSeconds::new(embargo),
        })
        .collect();
    let mut writer = storage.writer().unwrap();
    in_tx(&mut *writer, |tx| {
        tx.insert_keys(&stored, UnixSeconds::new(now), 3600, &mut OsRng)
    })
    .unwrap();
}

fn window(start: u64, end: u64) -> Window {
    Window {
        start: UnixSeconds::new(start),
        end: UnixSeconds::new(end),
    }
}

fn bytes(keys: &[DiagnosisKey]) -> Vec<[u8; 16]> {
    keys.iter().map(|k| *k.tek.expose_secret()).collect()
}

/// Keys come out of the window their embargo, rounded up to the hour, falls in, and not in
/// the order they arrived (their ids are random, so the table's order says nothing).
pub fn keys_are_released_by_their_rounded_embargo_in_no_arrival_order(storage: &dyn Storage) {
    let keys: Vec<[u8; 16]> = (0..64u8).map(|i| [i; 16]).collect();
    for key in &keys {
        publish(storage, &[*key], T0 + 17, T0 + 1);
    }
    let mut batcher = storage.batcher().unwrap();
    assert!(
        batcher
            .released_keys(window(T0, T0 + 3600))
            .unwrap()
            .is_empty()
    );
    let mut staged = bytes(&batcher.released_keys(window(T0 + 3600, T0 + 7200)).unwrap());
    staged.sort();
    assert_eq!(staged, keys, "every key, mixed or not");
    // Once the window was mixed (if this backend stages keys at all).
    batcher.mix_staged(UnixSeconds::new(T0 + 7200)).unwrap();
    let released = bytes(&batcher.released_keys(window(T0 + 3600, T0 + 7200)).unwrap());
    let mut sorted = released.clone();
    sorted.sort();
    assert_eq!(sorted, keys);
    assert_ne!(released, keys, "keys come back in arrival order");
}

/// Two batchers mixing at once move every staged key exactly once, and only those of
/// windows that ended a while ago; whether mixed or not, every key is released once.
pub fn mixing_moves_each_staged_key_once_and_only_ended_windows(storage: &dyn Storage) {
    let early: Vec<[u8; 16]> = (0..100u8).map(|i| [i; 16]).collect();
    let late: Vec<[u8; 16]> = (100..110u8).map(|i| [i; 16]).collect();
    for uploads in early.chunks(5) {
        publish(storage, uploads, T0 + 17, T0 + 1);
    }
    publish(storage, &late, T0 + 3600 + 17, T0 + 1);
    let released = |batcher: &mut dyn BatchStore| {
        let mut keys = bytes(&batcher.released_keys(window(T0 + 3600, T0 + 7200)).unwrap());
        keys.sort();
        keys
    };
    let all: Vec<[u8; 16]> = early.iter().chain(&late).copied().collect();
    assert_eq!(released(&mut *storage.batcher().unwrap()), all);

    // Just after the first window ended, nothing; a few minutes later, its keys, each by
    // one of the two batchers.
    let mut batcher = storage.batcher().unwrap();
    assert_eq!(
        batcher
            .mix_staged(UnixSeconds::new(T0 + 3600))
            .unwrap()
            .keys,
        0
    );
    let barrier = Barrier::new(2);
    let mixed: Vec<usize> = std::thread::scope(|scope| {
        let mixers: Vec<_> = (0..2)
            .map(|_| {
                let mut batcher = storage.batcher().unwrap();
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    let now = UnixSeconds::new(T0 + 3600 + 300);
                    batcher.mix_staged(now).unwrap().keys
                })
            })
            .collect();
        mixers.into_iter().map(|m| m.join().unwrap()).collect()
    });
    let total: usize = mixed.iter().sum();
    assert!(
        total == 0 || total == early.len(),
        "mixed {mixed:?} of {}",
        early.len()
    );
    assert_eq!(released(&mut *batcher), all, "nothing lost or doubled");
    let later = batcher
        .mix_staged(UnixSeconds::new(T0 + 7200 + 300))
        .unwrap();
    assert_eq!(later.keys, if total == 0 { 0 } else { late.len() });
    assert_eq!(released(&mut *batcher), all);
}

fn file(name: &str) -> FileRecord {
    FileRecord {
        name: name.into(),
        real_keys: 3,
        padding_keys: 1,
        bytes: 100,
        sha256: [7; 32],
    }
}

fn cut_hours(batcher: &mut dyn BatchStore, hours: u64) -> usize {
    let windowing = Windowing::new(3600, 0).unwrap();
    batcher
        .cut_windows(&windowing, UnixSeconds::new(T0 + hours * 3600))
        .unwrap()
}

fn finish(batcher: &mut dyn BatchStore, lease: &Lease, name: &str, now: UnixSeconds) -> bool {
    let mut published = false;
    let finished = batcher
        .finish(lease, &[file(name)], now, &mut || {
            published = true;
            Ok(())
        })
        .unwrap();
    assert_eq!(
        published, finished,
        "{name}: published exactly when finished"
    );
    finished
}

fn pending(batcher: &mut dyn BatchStore) -> Vec<UnixSeconds> {
    let mut starts = Vec::new();
    batcher
        .with_pending(&mut |pending| {
            starts = pending.to_vec();
            Ok(())
        })
        .unwrap();
    starts.sort();
    starts
}

/// Two batchers get different batches; one whose lease ran out loses the batch to the next
/// (even when that is itself, under a fresh token), and can then neither store padding nor
/// publish and finish it.
pub fn one_batcher_holds_a_batch_and_a_lost_lease_cannot_finish(storage: &dyn Storage) {
    publish(storage, &[[1; 16]], T0, T0);
    let (mut a, mut b) = (storage.batcher().unwrap(), storage.batcher().unwrap());
    let now = UnixSeconds::new(T0 + 3 * 3600);
    assert_eq!(cut_hours(&mut *a, 3), 3);
    assert_eq!(cut_hours(&mut *b, 3), 0, "windows are cut once");
    let first = a.lease(now, 60).unwrap().unwrap();
    let second = b.lease(now, 60).unwrap().unwrap();
    assert!(first.window < second.window);
    assert_eq!(pending(&mut *a), [first.window.start, second.window.start]);
    // The first lease expires; the same batcher leases again, then a third takes over.
    let later = now.plus(60);
    let again = a.lease(later, 60).unwrap().unwrap();
    assert_eq!(again.window, first.window);
    assert!(!finish(&mut *a, &first, "v1/exports/stale.zip", later));
    let taken = b.lease(later.plus(60), 60).unwrap().unwrap();
    assert_eq!(taken.window, first.window);
    assert_eq!(
        a.store_padding(&again, vec![key([9; 16], 1)]).unwrap(),
        None
    );
    assert!(!finish(&mut *a, &again, "v1/exports/lost.zip", later));
    // A publish that fails records nothing: the batch stays pending for a retry.
    let failed = b.finish(&taken, &[file("v1/exports/failed.zip")], later, &mut || {
        Err(AppError::Corrupt("disk full".into()))
    });
    assert!(failed.is_err());
    assert_eq!(pending(&mut *b), [first.window.start, second.window.start]);
    assert!(finish(&mut *b, &taken, "v1/exports/a.zip", later));
    assert!(
        !finish(&mut *b, &taken, "v1/exports/again.zip", later),
        "a complete batch is not finished twice"
    );
    assert!(finish(&mut *b, &second, "v1/exports/b.zip", later));
    assert!(pending(&mut *a).is_empty());
    let mut index = Vec::new();
    a.with_index("v1/exports", &mut |names| {
        index = names.to_vec();
        Ok(())
    })
    .unwrap();
    assert_eq!(index, ["v1/exports/a.zip", "v1/exports/b.zip"]);
    let third = a.lease(later, 60).unwrap().unwrap();
    assert!(third.window > second.window);
    assert_eq!(a.lease(later, 60).unwrap(), None);
}

/// The first padding stored for a batch is the batch's padding.
pub fn padding_is_stored_once(storage: &dyn Storage) {
    publish(storage, &[[1; 16]], T0, T0);
    let mut batcher = storage.batcher().unwrap();
    cut_hours(&mut *batcher, 1);
    let now = UnixSeconds::new(T0 + 3600);
    let batch = batcher.lease(now, 60).unwrap().unwrap();
    let start = batch.window.start;
    assert!(batcher.stored_padding(start).unwrap().is_empty());
    let first = vec![key([5; 16], 7), key([6; 16], 8)];
    let stored = batcher
        .store_padding(&batch, first.clone())
        .unwrap()
        .unwrap();
    assert_eq!(bytes(&stored), bytes(&first));
    let again = batcher
        .store_padding(&batch, vec![key([8; 16], 9)])
        .unwrap()
        .unwrap();
    assert_eq!(bytes(&again), bytes(&first));
    let mut kept = bytes(&batcher.stored_padding(start).unwrap());
    kept.sort();
    assert_eq!(kept, bytes(&first));
}

/// Retention drops old files from the index, deletes exported old keys and old codes, and
/// leaves keys whose batch is not exported yet.
pub fn retention_deletes_what_is_exported_and_old(storage: &dyn Storage) {
    publish(storage, &[[1; 16]], T0, T0);
    publish(storage, &[[2; 16]], T0 + 3600, T0 + 3600);
    let check_ins = [T0, T0 + 3600].map(|at| {
        let report = kith_core::checkin::ProtectedReport::padding(&mut OsRng);
        let mut writer = storage.writer().unwrap();
        in_tx(&mut *writer, |tx| {
            tx.insert_check_ins(
                std::slice::from_ref(&report),
                UnixSeconds::new(at),
                3600,
                &mut OsRng,
            )
        })
        .unwrap();
        report
    });
    issue(storage);
    let mut batcher = storage.batcher().unwrap();
    cut_hours(&mut *batcher, 2);
    let now = UnixSeconds::new(T0 + 2 * 3600);
    let first = batcher.lease(now, 60).unwrap().unwrap();
    assert!(finish(&mut *batcher, &first, "v1/exports/old.zip", now));
    // Everything is "old", but only the first window is exported.
    let later = UnixSeconds::new(T0 + 10 * 86_400);
    let expired = batcher.expire(later, later.get()).unwrap();
    assert_eq!(expired.files_dropped, 1);
    assert_eq!(expired.keys_deleted, 1);
    assert_eq!(expired.codes_deleted, 1);
    assert_eq!(
        expired.check_ins_deleted, 1,
        "the exported window's check-in"
    );
    assert!(batcher.released_keys(first.window).unwrap().is_empty());
    assert!(batcher.released_reports(first.window).unwrap().is_empty());
    assert_eq!(
        batcher
            .released_reports(window(T0 + 3600, T0 + 7200))
            .unwrap(),
        [check_ins[1].clone()]
    );
    assert_eq!(
        bytes(&batcher.released_keys(window(T0 + 3600, T0 + 7200)).unwrap()),
        [[2; 16]]
    );
    let mut index = vec!["not rewritten".to_owned()];
    batcher
        .with_index("v1/exports", &mut |names| {
            index = names.to_vec();
            Ok(())
        })
        .unwrap();
    assert!(index.is_empty());
    assert!(batcher.dropped_files(later.get() - 1).unwrap().is_empty());
    assert_eq!(
        batcher.dropped_files(later.get()).unwrap(),
        ["v1/exports/old.zip"]
    );
    batcher.forget_file("v1/exports/old.zip").unwrap();
    assert!(batcher.dropped_files(later.get()).unwrap().is_empty());
}

/// The first key is listed once; added keys get the next free version, retire the older
/// ones and keep their private key in the database.
pub fn signing_keys_are_listed_and_added(storage: &dyn Storage) {
    let mut batcher = storage.batcher().unwrap();
    let first = SigningKeyRow {
        key_id: "310".into(),
        key_version: "v1".into(),
        private_key: PrivateKey::File("first.pem".into()),
        created_at: UnixSeconds::new(T0),
        not_after: None,
    };
    assert_eq!(
        batcher.signing_keys(&first).unwrap(),
        std::slice::from_ref(&first)
    );
    let other = SigningKeyRow {
        key_version: "ignored".into(),
        ..first.clone()
    };
    assert_eq!(
        batcher.signing_keys(&other).unwrap(),
        std::slice::from_ref(&first)
    );
    let end = UnixSeconds::new(T0 + 86_400);
    let pem = PrivateKeyPem::new("-----BEGIN PRIVATE KEY-----\nv2\n".into());
    let added = batcher
        .add_signing_key(UnixSeconds::new(T0 + 60), Some(end), &pem)
        .unwrap();
    assert_eq!(
        (
            added.key_id.as_str(),
            added.key_version.as_str(),
            added.retiring
        ),
        ("310", "v2", 1)
    );
    // Another batcher (another server on the database) lists it with its private key.
    let keys = storage.batcher().unwrap().signing_keys(&first).unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0].not_after, Some(end));
    assert_eq!(keys[1].key_version, "v2");
    assert_eq!(keys[1].private_key, PrivateKey::Pem(pem.clone()));
    assert!(
        !format!("{:?}", keys[1]).contains("v2\n"),
        "no PEM in Debug"
    );
    let third = batcher
        .add_signing_key(UnixSeconds::new(T0 + 120), None, &pem)
        .unwrap();
    assert_eq!((third.key_version.as_str(), third.retiring), ("v3", 0));
}

/// Accounts are created once and keep their login state.
pub fn accounts_keep_their_login_state(storage: &dyn Storage) {
    let mut accounts = storage.accounts().unwrap();
    assert!(accounts.add_case_worker("ana", "$argon2id$hash").unwrap());
    assert!(!accounts.add_case_worker("ana", "$argon2id$other").unwrap());
    assert_eq!(accounts.case_worker("bo").unwrap(), None);
    accounts.set_login_state("ana", 3, T0 + 900).unwrap();
    let row = accounts.case_worker("ana").unwrap().unwrap();
    assert_eq!(
        (
            row.password_hash.as_str(),
            row.failed_logins,
            row.locked_until
        ),
        ("$argon2id$hash", 3, T0 + 900)
    );
}

/// Daily counts add up per day, vanish with a failed transaction, and a finished batch adds
/// its key export files (not trace-warning packages, not when its lease was lost).
pub fn daily_counts_are_added_with_what_they_count(storage: &dyn Storage) {
    let day = Day::of(UnixSeconds::new(T0));
    let issued = DayCounts {
        codes_issued: 2,
        ..DayCounts::default()
    };
    let published = DayCounts {
        codes_redeemed: 1,
        keys_published: 14,
        ..DayCounts::default()
    };
    let mut writer = storage.writer().unwrap();
    in_tx(&mut *writer, |tx| tx.add_day_counts(day, &issued)).unwrap();
    in_tx(&mut *writer, |tx| tx.add_day_counts(day, &published)).unwrap();
    let failed = writer.transaction(&mut |tx| {
        tx.add_day_counts(day, &issued)?;
        Err(AppError::Unavailable)
    });
    assert!(failed.is_err());
    in_tx(&mut *writer, |tx| tx.add_day_counts(day.plus(1), &issued)).unwrap();

    publish(storage, &[[1; 16]], T0, T0);
    let mut batcher = storage.batcher().unwrap();
    let now = UnixSeconds::new(T0 + 2 * 86_400);
    cut_hours(&mut *batcher, 3);
    let lease = batcher.lease(now, 60).unwrap().unwrap();
    let files = [
        file("v1/exports/a-00001.zip"),
        file("v1/exports/a-00002.zip"),
        file("v1/trace-warnings/a.zip"),
    ];
    assert!(batcher.finish(&lease, &files, now, &mut || Ok(())).unwrap());
    let lost = batcher.lease(now, 0).unwrap().unwrap();
    let _taken = storage
        .batcher()
        .unwrap()
        .lease(now.plus(1), 60)
        .unwrap()
        .unwrap();
    assert!(
        !batcher
            .finish(&lost, &[file("v1/exports/b.zip")], now, &mut || Ok(()))
            .unwrap()
    );

    let mut both = issued;
    both.add(&published);
    let exported = DayCounts {
        export_files: 2,
        export_bytes: 200,
        ..DayCounts::default()
    };
    assert_eq!(
        batcher.day_counts(day).unwrap(),
        [(day, both), (day.plus(1), issued), (Day::of(now), exported)]
    );
    assert_eq!(
        batcher.day_counts(day.plus(2)).unwrap(),
        [(Day::of(now), exported)]
    );
}
