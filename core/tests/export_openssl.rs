//! Interoperability with the `openssl` command line: it verifies the files we sign,
//! and the keys it generates load, sign and verify here.

mod export_support;

use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use export_support::{random_keys, signed_export, signer};
use kith_core::{ExportFile, ExportLimits, ExportSigner, SigningKey, TrustedKeys, VerifyingKey};

/// Runs `openssl` with `args` in `dir`.
fn openssl(dir: &Path, args: &[&str]) -> Output {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("the openssl binary is needed (.ci/run installs it)")
}

fn stdout(output: Output) -> String {
    assert!(
        output.status.success(),
        "openssl failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Writes `export.bin`, its first signature and the public key, as `openssl dgst` reads them.
fn write_for_openssl(dir: &Path, zip: &[u8], public_key: &VerifyingKey) {
    let file = ExportFile::parse(zip, &ExportLimits::default()).unwrap();
    fs::write(dir.join("export.bin"), file.export_bin()).unwrap();
    fs::write(dir.join("signature.der"), file.signatures()[0].der()).unwrap();
    fs::write(dir.join("public.pem"), public_key.to_public_key_pem()).unwrap();
}

const DGST_VERIFY: [&str; 7] = [
    "dgst",
    "-sha256",
    "-verify",
    "public.pem",
    "-signature",
    "signature.der",
    "export.bin",
];

#[test]
fn openssl_verifies_the_exports_we_sign() {
    let dir = tempfile::tempdir().unwrap();
    let signer = signer(21);
    let zip = signed_export(&random_keys(22, 50), &signer);
    write_for_openssl(dir.path(), &zip, &signer.verifying_key());
    assert_eq!(stdout(openssl(dir.path(), &DGST_VERIFY)), "Verified OK\n");

    // openssl also notices a changed byte.
    let mut bin = fs::read(dir.path().join("export.bin")).unwrap();
    bin[40] ^= 0x01;
    fs::write(dir.path().join("export.bin"), bin).unwrap();
    let output = openssl(dir.path(), &DGST_VERIFY);
    assert!(!output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "Verification failure\n"
    );
}

#[test]
fn keys_generated_by_openssl_load_sign_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let generated = Command::new("sh")
        .arg("-c")
        .arg("openssl ecparam -genkey -name prime256v1 | openssl pkcs8 -topk8 -nocrypt")
        .output()
        .expect("sh and openssl are needed");
    let pem = stdout(generated);
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    fs::write(dir.path().join("key.pem"), &pem).unwrap();

    // The key loads, and its public half is the one openssl derives, byte for byte.
    let key = SigningKey::from_pkcs8_pem(&pem).unwrap();
    let openssl_public = stdout(openssl(dir.path(), &["pkey", "-in", "key.pem", "-pubout"]));
    assert_eq!(key.verifying_key().to_public_key_pem(), openssl_public);
    let public = VerifyingKey::from_public_key_pem(&openssl_public).unwrap();

    // Files signed with it verify here and with openssl.
    let signer = ExportSigner::new("310", "v1", key);
    let zip = signed_export(&random_keys(23, 10), &signer);
    let trusted = TrustedKeys::new().with("310", "v1", public);
    ExportFile::parse(&zip, &ExportLimits::default())
        .unwrap()
        .verify(&trusted)
        .unwrap();
    write_for_openssl(dir.path(), &zip, &public);
    assert_eq!(stdout(openssl(dir.path(), &DGST_VERIFY)), "Verified OK\n");

    // openssl's own (randomized) signatures verify here.
    let signature = openssl(
        dir.path(),
        &[
            "dgst",
            "-sha256",
            "-sign",
            "key.pem",
            "-out",
            "openssl.der",
            "export.bin",
        ],
    );
    stdout(signature);
    let bin = fs::read(dir.path().join("export.bin")).unwrap();
    let der = fs::read(dir.path().join("openssl.der")).unwrap();
    public.verify(&bin, &der).unwrap();
    assert!(public.verify(&bin[1..], &der).is_err());
}

#[test]
fn openssl_reads_the_keys_we_save() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate(&mut kith_core::OsRng);
    fs::write(dir.path().join("ours.pem"), key.to_pkcs8_pem().as_bytes()).unwrap();
    let text = stdout(openssl(
        dir.path(),
        &["pkey", "-in", "ours.pem", "-noout", "-text"],
    ));
    assert!(text.contains("prime256v1"), "{text}");
    let public = stdout(openssl(dir.path(), &["pkey", "-in", "ours.pem", "-pubout"]));
    assert_eq!(public, key.verifying_key().to_public_key_pem());
}
