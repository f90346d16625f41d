//! Files we write read back to the same keys, sorted, verified, and byte-identical
//! when written again.

mod export_support;

use export_support::random_keys;
use kith_core::{
    DiagnosisKey, ExportBatch, ExportFile, ExportLimits, ExportSigner, Result, SigningKey,
    TrustedKeys, write_export,
};
use rand::SeedableRng;
use rand::rngs::StdRng;

fn signer(seed: u64, key_id: &str) -> ExportSigner {
    ExportSigner::new(
        key_id,
        "v1",
        SigningKey::generate(&mut StdRng::seed_from_u64(seed)),
    )
}

fn sorted(mut keys: Vec<DiagnosisKey>) -> Vec<DiagnosisKey> {
    keys.sort_by(|a, b| a.tek.expose_secret().cmp(b.tek.expose_secret()));
    keys
}

#[test]
fn written_exports_read_back_sorted_and_verified() {
    let keys = random_keys(1, 300);
    let revised = random_keys(2, 5);
    let (first, second) = (signer(3, "310"), signer(4, "311"));
    let batch = ExportBatch {
        region: "US",
        start_timestamp: 1_600_000_000,
        end_timestamp: 1_600_003_600,
        keys: &keys,
        revised_keys: &revised,
    };
    let zip = write_export(&batch, &[&first, &second]).unwrap();

    let file = ExportFile::parse(&zip, &ExportLimits::default()).unwrap();
    assert_eq!(file.signatures().len(), 2);
    assert_eq!(
        file.header().signature_infos(),
        [first.info().clone(), second.info().clone()]
    );
    // Either signature alone is enough.
    let trusted = TrustedKeys::new().with("311", "v1", second.verifying_key());
    let export = file.verify(&trusted).unwrap();
    assert_eq!(export.signer(), second.info());
    let header = export.header();
    assert_eq!(
        (
            header.region(),
            header.start_timestamp(),
            header.end_timestamp()
        ),
        ("US", 1_600_000_000, 1_600_003_600)
    );
    assert_eq!((header.batch_num(), header.batch_size()), (1, 1));
    assert_eq!((header.key_count(), header.revised_key_count()), (300, 5));

    let read: Vec<DiagnosisKey> = export.keys().collect::<Result<_>>().unwrap();
    assert_eq!(read, sorted(keys));
    let read_revised: Vec<DiagnosisKey> = export.revised_keys().collect::<Result<_>>().unwrap();
    assert_eq!(read_revised, sorted(revised));
}

#[test]
fn output_is_deterministic_whatever_the_key_order() {
    let mut keys = random_keys(5, 100);
    let signer = signer(6, "310");
    let write = |keys: &[DiagnosisKey]| {
        let batch = ExportBatch {
            region: "222",
            keys,
            ..ExportBatch::default()
        };
        write_export(&batch, &[&signer]).unwrap()
    };
    let first = write(&keys);
    assert_eq!(write(&keys), first);
    keys.reverse();
    assert_eq!(write(&keys), first);
    keys.pop();
    assert_ne!(write(&keys), first);
}
