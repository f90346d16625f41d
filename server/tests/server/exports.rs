//! Export files as devices and operators meet them: the batcher's files through
//! `/v1/exports/…` and in the store, verified with `/v1/config`'s keys by kith-core's
//! reader, by `openssl` and by a core-based device; caching headers; rotation; retention on
//! a manual clock; and, with the real binary, two batchers at once and SIGKILL mid-batch.
//! The tests of what devices and operators meet run on both deployment shapes
//! (`every_backend!`): `…::sqlite` with the files in the data directory, `…::postgres_s3` on
//! PostgreSQL with them in a bucket (`--export-store`, on the S3 server scripts/test starts);
//! the tests of the data directory's own temporary files on both databases.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;
use axum::http::Method;
use base64::Engine;
use kith_core::store::MemoryStore;
use kith_core::{
    BluetoothMetadata, ExportFile, ExportLimits, ExposureEngine, IntervalNumber, Sighting,
    TemporaryExposureKey, TrustedKeys, VerifiedExport, VerifyingKey,
};
use kith_server::export::store::ExportStore;
use kith_server::export::{self, ExportSettings, StagedBatch, files};
use kith_server::signing_keys::SigningKeys;
use kith_server::storage::BatchStore;
use kith_server::{AppError, UnixSeconds};
use serde_json::Value;

const DAY: u64 = 86_400;

every_backend! {
async fn published_keys_come_out_once_signed_padded_and_cacheable() {
    published_keys_come_out_once_signed_padded_and_cacheable().await
}
async fn zips_are_immutable_with_etags_ranges_and_head() {
    zips_are_immutable_with_etags_ranges_and_head().await
}
async fn curl_unzip_and_openssl_fetch_and_verify_every_file_with_the_key_from_v1_config() {
    curl_unzip_and_openssl_fetch_and_verify_every_file_with_the_key_from_v1_config().await
}
async fn a_rotated_key_signs_beside_the_old_one_until_the_old_one_retires() {
    a_rotated_key_signs_beside_the_old_one_until_the_old_one_retires().await
}
async fn retention_drops_files_from_the_index_before_deleting_them() {
    retention_drops_files_from_the_index_before_deleting_them().await
}
async fn a_file_is_created_once_and_a_racer_with_other_bytes_is_refused() {
    a_file_is_created_once_and_a_racer_with_other_bytes_is_refused().await
}
}

async fn a_file_is_created_once_and_a_racer_with_other_bytes_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Backend::current().export_store(dir.path());
    let url = store.url().map(|url| url.parse().unwrap());
    let exports = ExportStore::open(url.as_ref(), None, dir.path()).unwrap();
    let name = "v1/exports/1800000000-1800003600-00001.zip";
    // Eight racers, half with one content and half with another, all at once.
    let contents = [vec![1u8; 5000], vec![2u8; 5000]];
    let outcomes: Vec<(usize, kith_server::Result<()>)> = std::thread::scope(|scope| {
        let racers: Vec<_> = (0..8)
            .map(|i| {
                let (exports, bytes) = (&exports, contents[i % 2].clone());
                scope.spawn(move || (i % 2, exports.put_create(name, bytes)))
            })
            .collect();
        racers.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let stored = store.read(dir.path(), name).await.unwrap();
    let winner = contents
        .iter()
        .position(|bytes| *bytes == stored)
        .expect("one racer's content, whole");
    for (content, outcome) in outcomes {
        if content == winner {
            outcome.expect("the same bytes as the file there are success");
        } else {
            let error = outcome.expect_err("other bytes are refused");
            assert!(matches!(error, AppError::ExportConflict { .. }), "{error}");
            assert!(error.to_string().contains("never overwritten"), "{error}");
        }
    }
    // Later writers meet the same: the file stays as it was.
    assert!(
        exports
            .put_create(name, contents[1 - winner].clone())
            .is_err()
    );
    exports.put_create(name, contents[winner].clone()).unwrap();
    assert_eq!(store.read(dir.path(), name).await.unwrap(), stored);
    // An index, unlike a file, is replaced.
    let index = "v1/exports/index.txt";
    exports.replace(index, b"a\n".to_vec()).unwrap();
    exports.replace(index, b"a\nb\n".to_vec()).unwrap();
    assert_eq!(store.read(dir.path(), index).await.unwrap(), b"a\nb\n");
    exports.delete(name).unwrap();
    exports.delete(name).unwrap();
    assert_eq!(store.read(dir.path(), name).await, None);
}

/// A server that pads to 50 + random(0..=10) keys.
fn padded_server() -> TestServer {
    TestServer::with_config(|config| {
        config.export.min_keys = 50;
        config.export.padding_range = 10;
    })
}

/// [`padded_server`] with its clock an hour back during the day's last hour: then past
/// days' keys (released at the end of the hour) and today's (released at the end of the
/// day) would share one window, and a test that counts a batch of each would fail from
/// 23:00 to midnight UTC.
fn padded_server_outside_the_last_hour() -> TestServer {
    let server = padded_server();
    let now = server.now().get();
    if now % DAY >= DAY - 3600 {
        server.clock.set(UnixSeconds::new(now - 3600));
    }
    server
}

/// Publishes `uploads` uploads of `keys` keys each (today's first); returns the key bytes.
async fn publish(server: &TestServer, uploads: usize, keys: usize) -> Vec<[u8; 16]> {
    let mut all = Vec::new();
    for code in issue_many(server, &server.admin_key, uploads as u32).await {
        let batch: Vec<[u8; 16]> = (0..keys).map(|_| random_key()).collect();
        let (status, body, _) = publish_json(server, &publish_doc(server, &code, &batch)).await;
        assert_eq!(status, 200, "{body}");
        all.extend(batch);
    }
    all
}

async fn index(server: &TestServer) -> Vec<String> {
    let reply = server.send(get("/v1/exports/index.txt")).await;
    assert_eq!(reply.status, 200);
    reply.text().lines().map(str::to_owned).collect()
}

async fn download(server: &TestServer, name: &str) -> Vec<u8> {
    let reply = server.send(get(&format!("/{name}"))).await;
    assert_eq!(reply.status, 200, "{name}");
    reply.body
}

fn verified(zip: &[u8], trusted: &TrustedKeys) -> VerifiedExport {
    ExportFile::parse(zip, &ExportLimits::default())
        .unwrap()
        .verify(trusted)
        .unwrap()
}

async fn published_keys_come_out_once_signed_padded_and_cacheable() {
    let server = padded_server_outside_the_last_hour();
    let store = &server.exports;
    let published = publish(&server, 3, 5).await;
    assert!(index(&server).await.is_empty(), "nothing exported yet");
    // Today's keys are released at the end of the day: two days on, every window is ready.
    server.clock.advance(2 * DAY);
    let pass = server.server.export_pass().unwrap();
    assert_eq!(pass.export.lost, 0);

    let names = index(&server).await;
    assert_eq!(
        names.len(),
        2,
        "one batch of past days' keys, one of today's"
    );
    assert!(
        names.windows(2).all(|pair| pair[0] < pair[1]),
        "oldest first"
    );
    let (trusted, _) = trusted(&server).await;
    let mut real = Vec::new();
    for name in &names {
        let zip = download(&server, name).await;
        assert_eq!(
            store.read(server.dir.path(), name).await.unwrap(),
            zip,
            "the store holds the file at the path of its URL"
        );
        let export = verified(&zip, &trusted);
        let keys: Vec<[u8; 16]> = export
            .keys()
            .map(|k| *k.unwrap().tek.expose_secret())
            .collect();
        assert!((50..=60).contains(&keys.len()), "padded: {}", keys.len());
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted, "sorted by key bytes");
        real.extend(keys.into_iter().filter(|k| published.contains(k)));
    }
    real.sort();
    let mut expected = published.clone();
    expected.sort();
    assert_eq!(real, expected, "every published key exactly once");

    // Another pass changes nothing.
    let again = server.server.export_pass().unwrap();
    assert!(again.export.files.is_empty());
    assert_eq!(index(&server).await, names);
}

every_backend! {
async fn a_key_is_exported_once_the_truncate_window_it_is_released_in_has_ended() {
    // Keys' times are stored rounded to --truncate-window, so with the hour (the default)
    // nothing uploaded now could be exported before the hour ends, whatever the export
    // period: minute windows need a minute truncate window.
    for (truncate, exported_after) in [(3600, 3600), (60, 60)] {
        let server = TestServer::with_minute_windows(truncate, |_| {});
        let code = issue_many(&server, &server.admin_key, 1).await.remove(0);
        // Yesterday's key only: no embargo past its arrival.
        let yesterday = today_start(&server) - 144;
        let key = random_key();
        let doc = publish_doc_at(yesterday, &code, &[key]);
        let (status, body, _) = publish_json(&server, &doc).await;
        assert_eq!(status, 200, "{body}");
        server.clock.advance(exported_after - 10 + 4);
        let early = server.server.export_pass().unwrap();
        assert!(
            early.export.files.is_empty(),
            "truncate {truncate}: too early"
        );
        server.clock.advance(60 + 5);
        let pass = server.server.export_pass().unwrap();
        assert_eq!(pass.export.files.len(), 1, "truncate {truncate}");
        assert_eq!(pass.export.files[0].real_keys, 1);
    }
}
}

every_backend! {
async fn a_split_batch_says_which_file_of_how_many_each_is() {
    let server = TestServer::with_config(|config| {
        config.export.min_keys = 50;
        config.export.padding_range = 10;
        config.export.max_keys_per_file = 20;
    });
    publish(&server, 1, 3).await;
    server.clock.advance(2 * DAY);
    server.server.export_pass().unwrap();
    let mut batches: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for name in index(&server).await {
        let window = name.rsplit_once('-').unwrap().0.to_owned();
        batches.entry(window).or_default().push(name);
    }
    assert!(!batches.is_empty());
    let (trusted, _) = trusted(&server).await;
    for names in batches.values() {
        assert_eq!(names.len(), 3, "50 to 60 keys, 20 a file: {names:?}");
        for (i, name) in names.iter().enumerate() {
            let zip = download(&server, name).await;
            let header = verified(&zip, &trusted).header().clone();
            assert_eq!(
                (header.batch_num(), header.batch_size()),
                (i as i32 + 1, 3),
                "{name}"
            );
        }
    }
}
}

async fn zips_are_immutable_with_etags_ranges_and_head() {
    let server = padded_server();
    publish(&server, 1, 3).await;
    server.clock.advance(2 * DAY);
    server.server.export_pass().unwrap();
    let name = index(&server).await.remove(0);
    let path = format!("/{name}");

    let full = server.send(get(&path)).await;
    let etag = full.headers["etag"].to_str().unwrap().to_owned();
    assert!(
        etag.starts_with('"') && etag.len() > 10,
        "strong ETag {etag}"
    );
    assert_eq!(full.headers["content-type"], "application/zip");
    assert_eq!(
        full.headers["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(full.headers["accept-ranges"], "bytes");

    let mut conditional = get(&path);
    conditional
        .headers_mut()
        .insert("if-none-match", etag.parse().unwrap());
    let not_modified = server.send(conditional).await;
    assert_eq!(not_modified.status, 304);
    assert!(not_modified.body.is_empty());
    assert_eq!(not_modified.headers["etag"].to_str().unwrap(), etag);

    let head = server
        .send(request(Method::HEAD, &path, None, Vec::new()))
        .await;
    assert_eq!(head.status, 200);
    assert_eq!(
        head.headers["content-length"].to_str().unwrap(),
        full.body.len().to_string()
    );

    let ranged = |range: &str| {
        let mut request = get(&path);
        request
            .headers_mut()
            .insert("range", range.parse().unwrap());
        request
    };
    let part = server.send(ranged("bytes=10-29")).await;
    assert_eq!(part.status, 206);
    assert_eq!(part.body, full.body[10..30]);
    assert_eq!(
        part.headers["content-range"].to_str().unwrap(),
        format!("bytes 10-29/{}", full.body.len())
    );
    let tail = server.send(ranged("bytes=-7")).await;
    assert_eq!(tail.body, full.body[full.body.len() - 7..]);
    let past = server.send(ranged("bytes=99999999-")).await;
    assert_eq!(past.status, 416);

    let index_reply = server.send(get("/v1/exports/index.txt")).await;
    assert_eq!(index_reply.headers["cache-control"], "public, max-age=60");
    assert!(
        index_reply.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    for missing in [
        "/v1/exports/1-2-00001.zip",
        "/v1/exports/..%2Fkith.sqlite3",
        "/v1/exports/export-signing-key.pem",
    ] {
        assert_eq!(server.send(get(missing)).await.status, 404, "{missing}");
    }
}

/// Runs `program` with `args` in `dir`; its stdout, or a panic with its stderr.
fn run(dir: &Path, program: &str, args: &[&str]) -> Vec<u8> {
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

async fn curl_unzip_and_openssl_fetch_and_verify_every_file_with_the_key_from_v1_config() {
    let missing: Vec<&str> = ["curl", "unzip", "openssl"]
        .into_iter()
        .filter(|tool| which(tool).is_none())
        .collect();
    if !missing.is_empty() {
        return kith_test_support::skip(format!(
            "{} not found (apt-get install {})",
            missing.join(", "),
            missing.join(" ")
        ));
    }
    let server = padded_server();
    let published = publish(&server, 2, 3).await;
    server.clock.advance(2 * DAY);
    server.server.export_pass().unwrap();
    // The real binary serves the store, as an operator would run it.
    let TestServer {
        dir: data_dir,
        server: in_process,
        ..
    } = server;
    drop(in_process);
    // On the test's backend: the same database and store as the in-process server's.
    let process = ServerProcess::start(data_dir.path(), &[], &[]);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let curl = |path: &str, out: &str| {
        run(dir, "curl", &["-sSf", "-o", out, &process.url(path)]);
    };

    curl("/v1/config", "config.json");
    let config: Value =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    let pem = config["exportVerificationKeys"][0]["publicKeyPem"]
        .as_str()
        .unwrap();
    std::fs::write(dir.join("key.pem"), pem).unwrap();
    let (trusted, _) = trusted_from(&config);
    curl("/v1/exports/index.txt", "index.txt");
    let index = std::fs::read_to_string(dir.join("index.txt")).unwrap();
    let mut real = HashSet::new();
    for (i, name) in index.lines().enumerate() {
        let zip = format!("{i}.zip");
        curl(&format!("/{name}"), &zip);
        let tested = String::from_utf8(run(dir, "unzip", &["-t", &zip])).unwrap();
        assert!(tested.contains("No errors detected"), "{tested}");
        let unpacked = format!("{i}");
        run(dir, "unzip", &["-q", &zip, "-d", &unpacked]);
        let bin = format!("{unpacked}/export.bin");
        // export.sig is a protobuf list of signatures: the DER one comes out with core.
        let file = ExportFile::parse(
            &std::fs::read(dir.join(&zip)).unwrap(),
            &ExportLimits::default(),
        )
        .unwrap();
        assert_eq!(std::fs::read(dir.join(&bin)).unwrap(), file.export_bin());
        let der = format!("{unpacked}/signature.der");
        std::fs::write(dir.join(&der), file.signatures()[0].der()).unwrap();
        let verified = run(
            dir,
            "openssl",
            &[
                "dgst",
                "-sha256",
                "-verify",
                "key.pem",
                "-signature",
                &der,
                &bin,
            ],
        );
        assert_eq!(
            String::from_utf8_lossy(&verified).trim(),
            "Verified OK",
            "{name}"
        );
        real.extend(
            self::verified(&std::fs::read(dir.join(&zip)).unwrap(), &trusted)
                .keys()
                .map(|k| *k.unwrap().tek.expose_secret())
                .filter(|k| published.contains(k)),
        );
    }
    assert_eq!(real, published.into_iter().collect(), "every published key");
    assert!(process.stop());
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
}

every_backend! {
async fn a_core_device_syncs_the_index_and_finds_the_key_it_met() {
    let server = padded_server();
    let published = publish(&server, 2, 4).await;
    // The device heard yesterday's key of the first upload for 30 minutes at noon.
    let met = TemporaryExposureKey::from_bytes(
        published[1],
        kith_core::KeyValidity::day_of(IntervalNumber::new(today_start(&server) - 144)),
    );
    let noon = met.validity().start().get() + 72;
    let metadata = BluetoothMetadata::parse([0x40, 0x08, 0, 0]).unwrap();
    let mut device = ExposureEngine::new(MemoryStore::new()).unwrap();
    for (i, interval) in (noon..noon + 3).enumerate() {
        let beacon = met.beacon(IntervalNumber::new(interval), metadata);
        for minute in 0..10 {
            device
                .record_sighting(Sighting {
                    rpi: beacon.rpi(),
                    aem: beacon.aem(),
                    rssi: -60,
                    time: kith_core::UnixSeconds::of_interval(IntervalNumber::new(interval))
                        + minute * 60,
                    scan_id: (i * 10) as u64 + minute,
                })
                .unwrap();
        }
    }

    server.clock.advance(2 * DAY);
    server.server.export_pass().unwrap();
    let (trusted, _) = trusted(&server).await;
    let now = server.now();
    let mut matched = 0;
    for name in index(&server).await {
        let zip = download(&server, &name).await;
        matched += device
            .ingest_export(&zip, &trusted, now)
            .unwrap()
            .new_exposures;
    }
    assert_eq!(matched, 1, "the one key met, in one of the files");
    // A second sync matches nothing again.
    for name in index(&server).await {
        let zip = download(&server, &name).await;
        assert!(
            device
                .ingest_export(&zip, &trusted, now)
                .unwrap()
                .already_ingested
        );
    }
}
}

async fn a_rotated_key_signs_beside_the_old_one_until_the_old_one_retires() {
    let server = padded_server();
    let state = server.server.state();
    let (_, before) = trusted(&server).await;
    assert_eq!(before.len(), 1);

    let retire_at = server.now().plus(DAY);
    let rotation =
        kith_server::jobs::rotate_signing_key(&state.config, server.now(), Some(retire_at))
            .unwrap();
    assert_eq!(rotation.key_version, "v2");
    publish(&server, 1, 2).await;
    // Release times are rounded up to the hour: three hours on, the window is ready.
    server.clock.advance(3 * 3600);
    server.server.export_pass().unwrap();
    let (both, listed) = trusted(&server).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed[0]["notAfter"].is_string(), "the old key is retiring");
    let name = index(&server).await.remove(0);
    let zip = download(&server, &name).await;
    let file = ExportFile::parse(&zip, &ExportLimits::default()).unwrap();
    assert_eq!(file.signatures().len(), 2, "signed by both keys");
    // A device that knows only one of the keys accepts the file.
    for key in &listed {
        let only = TrustedKeys::new().with(
            key["keyId"].as_str().unwrap(),
            key["keyVersion"].as_str().unwrap(),
            VerifyingKey::from_public_key_pem(key["publicKeyPem"].as_str().unwrap()).unwrap(),
        );
        verified(&zip, &only);
    }
    drop(both);
    // The ENX device-configuration line names the same keys, and verifies the file as an
    // app configured with it would (kith-mobile's `trusted_public_keys_from_device_config`
    // reads the same format).
    let line = get_json(&server, "/v1/config").await["deviceConfigurationKeys"]
        .as_str()
        .unwrap()
        .to_owned();
    let entries: Vec<&str> = line.split('|').collect();
    assert_eq!(entries.len(), listed.len(), "{line}");
    for (entry, key) in entries.iter().zip(&listed) {
        let (names, spki) = entry.split_once(',').unwrap();
        let (id, version) = names.rsplit_once('-').unwrap();
        assert_eq!(
            (id, version),
            (
                key["keyId"].as_str().unwrap(),
                key["keyVersion"].as_str().unwrap()
            )
        );
        assert_eq!(spki, key["publicKey"].as_str().unwrap());
        let der = base64::engine::general_purpose::STANDARD
            .decode(spki)
            .unwrap();
        let only = TrustedKeys::new().with(
            id,
            version,
            VerifyingKey::from_public_key_der(&der).unwrap(),
        );
        verified(&zip, &only);
    }

    // After the end time the old key neither signs nor is listed.
    server.clock.advance(DAY);
    publish(&server, 1, 2).await;
    server.clock.advance(2 * DAY);
    server.server.export_pass().unwrap();
    let (_, after) = trusted(&server).await;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0]["keyVersion"], "v2");
    let newest = index(&server).await.pop().unwrap();
    let file =
        ExportFile::parse(&download(&server, &newest).await, &ExportLimits::default()).unwrap();
    assert_eq!(file.signatures().len(), 1);
    assert_eq!(file.signatures()[0].info().key_version(), "v2");
}

/// The download path as devices meet it, over real connections (where cached zips are
/// sent with `sendfile`): the whole file, ranges, HEAD and conditional requests, many at
/// once on kept-alive connections; and a 404 once the file is deleted.
#[tokio::test]
async fn a_cached_zip_over_tcp_is_whole_ranged_conditional_and_gone_once_deleted() {
    let server = TestServer::with_config(|config| {
        // A file of some 400 kB: more than a socket takes in one write.
        config.export.min_keys = 20_000;
        config.export.padding_range = 10;
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.operator_listen = "127.0.0.1:0".parse().unwrap();
    });
    publish(&server, 1, 3).await;
    server.clock.advance(2 * DAY);
    server.server.export_pass().unwrap();
    let name = index(&server).await.remove(0);
    let (kith, dir) = server.into_server();
    let on_disk = std::fs::read(dir.path().join(&name)).unwrap();
    assert!(on_disk.len() > 300_000, "{} bytes", on_disk.len());
    let listening = kith.bind().await.unwrap();
    let url = format!("http://{}/{name}", listening.public_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(listening.serve(async {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();

    let mut downloads = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (http, url) = (http.clone(), url.clone());
        downloads.spawn(async move {
            let reply = http.get(&url).send().await.unwrap();
            assert_eq!(reply.status(), 200);
            let etag = reply.headers()["etag"].to_str().unwrap().to_owned();
            (etag, reply.bytes().await.unwrap())
        });
    }
    let downloads = downloads.join_all().await;
    for (_, body) in &downloads {
        assert!(body[..] == on_disk[..], "every download is the file");
    }
    let etag = &downloads[0].0;
    let len = on_disk.len();

    for (range, first, last) in [
        ("bytes=100-199", 100, 199),
        ("bytes=-7", len - 7, len - 1),
        ("bytes=200000-", 200_000, len - 1),
    ] {
        let reply = http.get(&url).header("range", range).send().await.unwrap();
        assert_eq!(reply.status(), 206, "{range}");
        assert_eq!(
            reply.headers()["content-range"].to_str().unwrap(),
            format!("bytes {first}-{last}/{len}")
        );
        assert!(
            reply.bytes().await.unwrap()[..] == on_disk[first..=last],
            "{range}"
        );
    }
    let head = http.head(&url).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(
        head.headers()["content-length"].to_str().unwrap(),
        len.to_string()
    );
    assert!(head.bytes().await.unwrap().is_empty());
    let cached = http
        .get(&url)
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), 304);
    assert_eq!(
        cached.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert!(cached.bytes().await.unwrap().is_empty());
    // Still answered on the same connections after all that.
    let again = http.get(&url).send().await.unwrap();
    assert!(again.bytes().await.unwrap()[..] == on_disk[..]);

    // Deleted (as retention deletes): no longer served from memory.
    std::fs::remove_file(dir.path().join(&name)).unwrap();
    assert_eq!(http.get(&url).send().await.unwrap().status(), 404);
    drop(http);
    let _ = stop.send(());
    serving.await.unwrap().unwrap();
}

async fn retention_drops_files_from_the_index_before_deleting_them() {
    let server = padded_server_outside_the_last_hour();
    let store = &server.exports;
    publish(&server, 2, 3).await;
    server.clock.advance(2 * DAY);
    server.server.export_pass().unwrap();
    let names = index(&server).await;
    assert_eq!(names.len(), 2);
    assert_eq!(server.stored().count_keys().unwrap(), 6);

    // 15 days after the keys' windows: out of the index, keys gone, files still served.
    server.clock.advance(13 * DAY + 2 * 3600);
    let pass = server.server.export_pass().unwrap();
    // Two key files, and the two windows' trace-warning packages.
    assert_eq!(pass.retention.files_dropped, 4);
    assert_eq!(pass.retention.keys_deleted, 6);
    assert!(index(&server).await.is_empty());
    assert_eq!(server.stored().count_keys().unwrap(), 0);
    for name in &names {
        download(&server, name).await; // a client with a cached index still finds it
        assert!(store.read(server.dir.path(), name).await.is_some());
    }

    // A day later (the delete delay) they are deleted.
    server.clock.advance(DAY);
    let pass = server.server.export_pass().unwrap();
    assert_eq!(pass.retention.files_deleted, 4);
    for name in &names {
        assert_eq!(server.send(get(&format!("/{name}"))).await.status, 404);
        assert_eq!(store.read(server.dir.path(), name).await, None, "{name}");
    }
}

/// A second batcher on the server's data directory, driven step by step.
struct Batcher {
    store: Box<dyn BatchStore>,
    settings: ExportSettings,
    keys: SigningKeys,
}

impl Batcher {
    fn new(server: &TestServer) -> Self {
        let config = &server.server.state().config;
        let dir = server.dir.path();
        let mut store = kith_server::jobs::open_existing_storage(config)
            .unwrap()
            .batcher()
            .unwrap();
        let keys = SigningKeys::load(
            &mut *store,
            dir,
            &config.export_key_id,
            &config.export_key_version,
            server.now(),
        )
        .unwrap();
        Self {
            store,
            settings: ExportSettings::from(&config.export),
            keys,
        }
    }

    /// Cuts what is ready, then leases batches and writes their files (completing the
    /// empty ones) until one has files: that one is returned, staged, unpublished.
    fn stage_next_with_files(&mut self, server: &TestServer) -> StagedBatch {
        let state = server.server.state();
        let exports = state.exports.store();
        self.store
            .cut_windows(&self.settings.windowing, server.now())
            .unwrap();
        loop {
            let lease = (self.store)
                .lease(server.now(), self.settings.lease_seconds)
                .unwrap()
                .expect("a batch with keys to lease");
            let staged = export::stage_batch(
                &mut *self.store,
                exports,
                &self.settings,
                &self.keys,
                lease,
                server.now(),
            )
            .unwrap()
            .expect("the batch is held");
            if !staged.is_empty() {
                return staged;
            }
            export::publish_batch(&mut *self.store, exports, staged, server.now()).unwrap();
        }
    }
}

fn temporaries(server: &TestServer) -> Vec<String> {
    std::fs::read_dir(server.dir.path().join("v1/exports"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.contains(".tmp-"))
        .collect()
}

every_database! {
async fn a_batcher_that_outlived_its_lease_and_was_taken_over_changes_nothing() {
    let server = padded_server();
    publish(&server, 1, 3).await;
    server.clock.advance(2 * DAY);
    let dir = server.dir.path();

    // Batcher A leases the oldest batch and writes its files, then stalls past its lease.
    let mut a = Batcher::new(&server);
    let staged = a.stage_next_with_files(&server);
    let name = files::file_name(staged.window(), 1);
    server.clock.advance(a.settings.lease_seconds);
    // Meanwhile a second signing key is rotated in, so B's files differ from A's.
    let state = server.server.state();
    kith_server::jobs::rotate_signing_key(&state.config, server.now(), None).unwrap();

    // The server's batcher, B, takes the batch over and completes it.
    let b = server.server.export_pass().unwrap();
    assert_eq!(b.export.lost, 0);
    assert!(b.export.files.iter().any(|file| file.name == name), "{b:?}");
    let published = download(&server, &name).await;
    let signatures = |zip: &[u8]| {
        ExportFile::parse(zip, &ExportLimits::default())
            .unwrap()
            .signatures()
            .len()
    };
    assert_eq!(signatures(&published), 2, "B signs with both keys");

    // A wakes up and tries to publish and complete: refused, and nothing changes.
    assert_eq!(
        export::publish_batch(&mut *a.store, state.exports.store(), staged, server.now()).unwrap(),
        None
    );
    assert_eq!(std::fs::read(dir.join(&name)).unwrap(), published);
    assert_eq!(download(&server, &name).await, published);
    assert!(
        temporaries(&server).is_empty(),
        "{:?}",
        temporaries(&server)
    );
    assert!(index(&server).await.contains(&name));
    let again = server.server.export_pass().unwrap();
    assert!(again.export.files.is_empty(), "the batch is complete");
}
}

every_backend! {
/// Two instances' batchers hold two batches at once (the first the older window, the
/// second the next one, since the older is held) and finish them in the opposite order:
/// both complete, the index lists both windows oldest first, and every key is in exactly
/// one file.
async fn two_batchers_finishing_in_the_opposite_order_of_their_leases_lose_nothing() {
    let server = padded_server();
    // Past days' keys in two windows an hour apart, then two days on: both are ready.
    let mut published = Vec::new();
    for _ in 0..2 {
        let code = issue_code(&server, &server.admin_key).await;
        let keys: Vec<[u8; 16]> = (0..3).map(|_| random_key()).collect();
        let doc = publish_doc_at(today_start(&server) - 144, &code, &keys);
        assert_eq!(publish_json(&server, &doc).await.0, 200);
        published.extend(keys);
        server.clock.advance(3600);
    }
    server.clock.advance(2 * DAY);
    let (mut first, mut second) = (Batcher::new(&server), Batcher::new(&server));
    let older = first.stage_next_with_files(&server);
    let newer = second.stage_next_with_files(&server);
    assert!(older.window().start < newer.window().start);
    let names = [older.window(), newer.window()].map(|window| files::file_name(window, 1));

    let state = server.server.state();
    let exports = state.exports.store();
    for (batcher, staged) in [(&mut second, newer), (&mut first, older)] {
        assert!(
            export::publish_batch(&mut *batcher.store, exports, staged, server.now())
                .unwrap()
                .is_some(),
            "the lease still holds"
        );
    }
    // The next pass writes the index, and exports neither batch again.
    let pass = server.server.export_pass().unwrap();
    assert!(
        pass.export.files.iter().all(|file| !names.contains(&file.name)),
        "nothing exported again: {pass:?}"
    );
    assert_eq!(index(&server).await, names, "both, oldest first");
    let (trusted, _) = trusted(&server).await;
    let mut exported = Vec::new();
    for name in &names {
        let zip = download(&server, name).await;
        exported.extend(
            verified(&zip, &trusted)
                .keys()
                .map(|k| *k.unwrap().tek.expose_secret())
                .filter(|k| published.contains(k)),
        );
    }
    exported.sort();
    published.sort();
    assert_eq!(exported, published, "every key once");
}
}

every_database! {
async fn temporary_files_of_killed_batchers_go_but_live_ones_stay() {
    let server = padded_server();
    publish(&server, 1, 3).await;
    server.clock.advance(2 * DAY);
    server.server.export_pass().unwrap();
    let done = index(&server).await.remove(0);
    let exports = server.dir.path().join("v1/exports");
    let leave = |name: &str| std::fs::write(exports.join(name), b"half a zip").unwrap();
    // What a batcher killed while writing a file, or the index, leaves behind.
    let dead = [
        done.replace("v1/exports/", "")
            .replace(".zip", ".tmp-00c0ffee00c0ffee"),
        "index.tmp-0123456789abcdef".to_owned(),
    ];
    dead.iter().for_each(|name| leave(name));
    // A batch another batcher holds right now, with a file half written.
    publish(&server, 1, 3).await;
    server.clock.advance(2 * DAY);
    let mut other = Batcher::new(&server);
    let held = other.stage_next_with_files(&server);
    let live: Vec<String> = temporaries(&server)
        .into_iter()
        .filter(|name| !dead.contains(name))
        .collect();
    assert_eq!(live.len(), 1, "{live:?}");

    let pass = server.server.export_pass().unwrap();
    let held_name = files::file_name(held.window(), 1);
    assert!(
        pass.export.files.iter().all(|file| file.name != held_name),
        "the held batch waits for its holder"
    );
    assert_eq!(temporaries(&server), live);
    let state = server.server.state();
    assert!(
        export::publish_batch(&mut *other.store, state.exports.store(), held, server.now())
            .unwrap()
            .is_some()
    );
    assert!(temporaries(&server).is_empty());
}
}

/// Keys published at 36 different hours over three days, on a clock in the past; returns
/// the data directory's keys.
async fn three_days_of_keys(server: &TestServer) -> HashSet<[u8; 16]> {
    // An hour earlier than three days ago, so that the last keys' window is older than
    // the windows' minimum age on the batchers' system clock at any minute of the hour.
    server
        .clock
        .set(UnixSeconds::new(now_unix() - 3 * DAY - 3600));
    for _ in 0..36 {
        let code = issue_code(server, &server.admin_key).await;
        // Past days' keys only: today's would be held back until the end of the day.
        let keys: Vec<[u8; 16]> = (0..3).map(|_| random_key()).collect();
        let doc = publish_doc_at(today_start(server) - 144, &code, &keys);
        assert_eq!(publish_json(server, &doc).await.0, 200);
        server.clock.advance(2 * 3600);
    }
    server.stored().all_key_bytes().unwrap()
}

/// `kith-server export --once` with one-second leases, which expire a second after the
/// batcher is killed.
fn export_once(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kith-server"));
    command
        .arg("--data-dir")
        .arg(dir)
        .args(["--export-min-keys", "300", "--export-lease", "1"])
        .args(["export", "--once"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

/// Every file of the index, read and verified: name → (bytes, keys).
fn exported(dir: &Path, trusted: &TrustedKeys) -> BTreeMap<String, (Vec<u8>, Vec<[u8; 16]>)> {
    let index = std::fs::read_to_string(dir.join("v1/exports/index.txt")).unwrap();
    index
        .lines()
        .map(|name| {
            let zip = std::fs::read(dir.join(name)).unwrap();
            let keys = verified(&zip, trusted)
                .keys()
                .map(|k| *k.unwrap().tek.expose_secret())
                .collect();
            (name.to_owned(), (zip, keys))
        })
        .collect()
}

#[tokio::test]
async fn sigkill_mid_batch_and_two_batchers_at_once_export_each_key_exactly_once() {
    let server = padded_server();
    let published = three_days_of_keys(&server).await;
    let (trusted, _) = trusted(&server).await;
    let dir = server.dir.path().to_owned();
    assert_eq!(published.len(), 108);

    // Batchers killed at random points, leaving leases, padding and files half done.
    for delay_ms in [5, 40, 80, 120, 160, 220, 300, 400] {
        let mut child = export_once(&dir).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap();
        child.wait().unwrap();
    }
    std::thread::sleep(Duration::from_millis(1100)); // the killed leases expire
    // One-second leases: on a loaded machine the racers outlive their leases and take
    // batches over from each other; the one taken over publishes nothing.
    let racers: Vec<_> = (0..2).map(|_| export_once(&dir).spawn().unwrap()).collect();
    for racer in racers {
        let output = racer.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    let files = exported(&dir, &trusted);
    assert!(files.len() >= 30, "{} files", files.len());
    let mut seen = HashSet::new();
    for (name, (_, keys)) in &files {
        assert!((300..=400).contains(&keys.len()), "{name}: {}", keys.len());
        for key in keys.iter().filter(|k| published.contains(*k)) {
            assert!(seen.insert(*key), "{name} exports a key a second time");
        }
    }
    assert_eq!(seen, published, "no key skipped");

    // Exported again from scratch (as an operator regenerating files would), every file
    // comes out byte for byte the same, so its ETag never changes.

    let conn = rusqlite::Connection::open(dir.join("kith.sqlite3")).unwrap();
    conn.execute_batch(
        "UPDATE export_batches SET status = 'open', lease_id = NULL, lease_expires = NULL;
         DELETE FROM export_files;",
    )
    .unwrap();
    for name in files.keys() {
        std::fs::remove_file(dir.join(name)).unwrap();
    }
    assert!(export_once(&dir).status().unwrap().success());
    let again = exported(&dir, &trusted);
    assert_eq!(
        again.keys().collect::<Vec<_>>(),
        files.keys().collect::<Vec<_>>()
    );
    for (name, (bytes, _)) in &files {
        assert!(again[name].0 == *bytes, "{name} changed");
    }
}

every_backend! {
async fn export_once_refuses_a_directory_no_server_set_up() {
    let dir = tempfile::tempdir().unwrap();
    let output = export_once(dir.path()).output().unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("start kith-server on it once first"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
}
