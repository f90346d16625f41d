//! Random, truncated and mutated export files give errors, never panics.

mod export_support;

use std::fs;

use export_support::{random_keys, real_exports, signed_export, signer, zip_entry, zip_of};
use kith_core::{EXPORT_HEADER, ExportFile, ExportLimits, TrustedKeys};
use proptest::prelude::*;

/// Everything a device would do with untrusted bytes: parse, verify, read all keys.
/// Returns whether the bytes were accepted as an export.
fn ingest(bytes: &[u8]) -> bool {
    let limits = ExportLimits {
        max_keys: 10_000,
        ..ExportLimits::default()
    };
    let Ok(file) = ExportFile::parse(bytes, &limits) else {
        return false;
    };
    let trusted = TrustedKeys::new().with("310", "v1", signer(31).verifying_key());
    let _ = file.header().signature_infos().len();
    let unverified = ExportFile::parse(bytes, &limits)
        .unwrap()
        .insecure_skip_verification();
    let count = unverified.keys().len();
    assert_eq!(unverified.keys().count(), count);
    let _ = unverified.revised_keys().collect::<Vec<_>>();
    if let Ok(export) = file.verify(&trusted) {
        let _ = export.keys().collect::<Vec<_>>();
    }
    true
}

fn valid_export() -> Vec<u8> {
    signed_export(&random_keys(32, 8), &signer(31))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        ingest(&bytes);
    }

    #[test]
    fn random_bytes_after_the_header(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        ingest(&[EXPORT_HEADER.as_slice(), &bytes].concat());
    }

    #[test]
    fn random_bytes_after_a_zip_signature(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        ingest(&[b"PK\x03\x04".as_slice(), &bytes].concat());
    }

    /// Mutations of a valid export.bin exercise the protobuf walk and the key records.
    #[test]
    fn mutated_export_bin(mutations in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let zip = valid_export();
        let mut bin = zip_entry(&zip, "export.bin");
        for (index, byte) in mutations {
            let index = index.index(bin.len() - EXPORT_HEADER.len()) + EXPORT_HEADER.len();
            bin[index] = byte;
        }
        ingest(&bin);
        ingest(&zip_of(&bin, &zip_entry(&zip, "export.sig")));
    }

    /// Mutations of export.sig exercise the signature list and DER parsing.
    #[test]
    fn mutated_export_sig(mutations in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let zip = valid_export();
        let mut sig = zip_entry(&zip, "export.sig");
        for (index, byte) in mutations {
            let index = index.index(sig.len());
            sig[index] = byte;
        }
        ingest(&zip_of(&zip_entry(&zip, "export.bin"), &sig));
    }

    /// Mutations of the zip container itself.
    #[test]
    fn mutated_zip(mutations in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let mut zip = valid_export();
        for (index, byte) in mutations {
            let index = index.index(zip.len());
            zip[index] = byte;
        }
        ingest(&zip);
    }
}

#[test]
fn every_truncation_is_an_error_or_a_shorter_export() {
    let mut files = vec![valid_export()];
    if let Some(dir) = real_exports() {
        for path in [
            "google_exposure-notifications-server/testExport-2-records-1-of-1.zip",
            "google_exposure-notifications-internals/app_src_main_res_raw_sample_diagnosis_key_file.zip",
            "lombax85_immuniprotobuf/export.bin",
        ] {
            files.push(fs::read(dir.join(path)).unwrap());
        }
    }
    for file in files {
        assert!(ingest(&file));
        for len in 0..file.len() {
            // A zip cut anywhere loses its central directory.
            let accepted = ingest(&file[..len]);
            assert!(
                !accepted || file.starts_with(EXPORT_HEADER),
                "accepted a zip cut at {len}"
            );
        }
    }
}
