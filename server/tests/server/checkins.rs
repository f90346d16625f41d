//! Venue check-ins from end to end: phones (core's engine, as kith-mobile wraps it)
//! check in at a venue, one tests positive and uploads its visits sealed with its keys,
//! the batcher publishes the hour's signed trace-warning package, and the other phones
//! download and match it. In-process, on a manual clock.

use crate::common::*;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kith_core::checkin::{
    CHECK_INS_PER_UPLOAD, CWA_QR_PREFIX, CheckInUpload, ProtectedReport, Stay, TraceWarningFile,
    TransmissionRiskLevel, VenueDetails, VenuePayload,
};
use kith_core::store::MemoryStore;
use kith_core::{
    ExportLimits, ExportSigner, ExposureEngine, OsRng, SigningKey, TrustedKeys, UnixSeconds,
};
use serde_json::json;

type Phone = ExposureEngine<MemoryStore>;

fn phone() -> Phone {
    ExposureEngine::new(MemoryStore::new()).unwrap()
}

/// The server, and a café's QR text.
fn setup() -> (TestServer, String) {
    let server = TestServer::with_config(|config| {
        config.export.min_keys = 20;
        config.export.min_reports = 30;
        config.export.report_padding_range = 5;
    });
    (server, venue_qr("Café Kith"))
}

/// A new venue's QR text.
fn venue_qr(description: &str) -> String {
    let details = VenueDetails {
        description: description.into(),
        address: "Main Street 1".into(),
        default_check_in_minutes: Some(60),
        ..VenueDetails::default()
    };
    VenuePayload::generate(&mut OsRng, details)
        .unwrap()
        .qr_text(CWA_QR_PREFIX)
}

/// A visit from `arrival` to `departure` (Unix seconds) at the venue of `qr`.
fn visit(phone: &mut Phone, qr: &str, arrival: u64, departure: u64) {
    let venue = VenuePayload::from_qr_text(qr).unwrap();
    let check_in = phone.check_in(&venue, UnixSeconds::new(arrival)).unwrap();
    phone
        .check_out(check_in.id, UnixSeconds::new(departure))
        .unwrap();
}

/// Publishes keys with `reports` (base64 protobufs) under a fresh code, sealed.
async fn upload(server: &TestServer, reports: &[String]) {
    let code = issue_code(server, &server.admin_key).await;
    let mut doc = publish_doc(server, &code, &[random_key(), random_key()]);
    doc["checkInProtectedReports"] = json!(reports);
    let public_key = hpke_key(server).await;
    let (status, inside, size) = publish_sealed(server, &public_key, &doc).await;
    assert_eq!(
        (status, inside["status"].as_u64()),
        (200, Some(200)),
        "{inside}"
    );
    assert_eq!(size, 544, "sealed answers have one size");
}

/// What `phone` uploads at `now` after a positive test: its visits among padding.
fn to_upload(phone: &Phone, now: u64) -> CheckInUpload {
    phone
        .check_ins_to_upload(
            &mut OsRng,
            UnixSeconds::new(now),
            TransmissionRiskLevel::HIGHEST,
        )
        .unwrap()
}

fn encoded(reports: &[ProtectedReport]) -> Vec<String> {
    reports
        .iter()
        .map(|r| STANDARD.encode(r.to_bytes()))
        .collect()
}

/// The trace-warning index (found as a phone finds it, through `/v1/config`) and the
/// packages it lists.
async fn packages(server: &TestServer) -> Vec<(String, Vec<u8>)> {
    let config = server.send(get("/v1/config")).await;
    let config: serde_json::Value = serde_json::from_slice(&config.body).unwrap();
    let index = config["traceWarningIndex"].as_str().unwrap();
    let reply = server.send(get(&format!("/{index}"))).await;
    assert_eq!(reply.status, 200);
    let mut files = Vec::new();
    for name in reply.text().lines() {
        let file = server.send(get(&format!("/{name}"))).await;
        assert_eq!(file.status, 200, "{name}");
        assert_eq!(
            file.headers["cache-control"],
            "public, max-age=31536000, immutable"
        );
        assert!(file.headers.contains_key("etag"));
        files.push((name.to_owned(), file.body));
    }
    files
}

every_backend! {
async fn the_visitor_who_overlapped_is_warned_with_the_right_time_and_the_other_not() {
    let (server, qr) = setup();
    let now = server.now().get();
    let t0 = now - now % 600 - 6 * 3600; // six hours ago, on a 10-minute boundary
    let (mut positive, mut overlapping, mut later) = (phone(), phone(), phone());
    visit(&mut positive, &qr, t0, t0 + 3600);
    visit(&mut overlapping, &qr, t0 + 1800, t0 + 5400);
    visit(&mut later, &qr, t0 + 2 * 3600, t0 + 3 * 3600);

    let upload_of_positive = to_upload(&positive, now);
    let reports = &upload_of_positive.reports;
    assert_eq!(
        (upload_of_positive.visits(), reports.len()),
        (1, CHECK_INS_PER_UPLOAD)
    );
    upload(&server, &encoded(reports)).await;
    // Nothing is published before the hour's window is closed and old enough.
    server.server.export_pass().unwrap();
    assert!(packages(&server).await.is_empty());

    server.clock.advance(2 * 3600 + 600);
    let pass = server.server.export_pass().unwrap();
    assert_eq!(pass.export.packages.len(), 1, "{:?}", pass.export);
    let files = packages(&server).await;
    assert_eq!(files.len(), 1);
    let (name, zip) = &files[0];
    let (trusted, _) = trusted(&server).await;
    let verified = TraceWarningFile::parse(zip, &ExportLimits::default())
        .unwrap()
        .verify(&trusted)
        .unwrap();
    // The upload as sent, its padding included; more than the package's own minimum.
    assert_eq!(verified.reports().len(), CHECK_INS_PER_UPLOAD);
    assert!(reports.iter().all(|r| verified.reports().contains(r)));
    assert_eq!(
        u64::from(verified.hour()),
        (now.div_ceil(3600) * 3600) / 3600,
        "the package of the hour the report was released in"
    );

    let at = server.now();
    assert_eq!(
        overlapping
            .ingest_trace_warnings(name, &verified, at)
            .unwrap(),
        1
    );
    let exposure = &overlapping.venue_exposures().unwrap()[0];
    assert_eq!(
        exposure.overlap,
        Stay::new(UnixSeconds::new(t0 + 1800), UnixSeconds::new(t0 + 3600)).unwrap()
    );
    assert_eq!(exposure.overlap_minutes, 30);
    assert_eq!(exposure.description, "Café Kith");
    assert_eq!(later.ingest_trace_warnings(name, &verified, at).unwrap(), 0);
    assert!(later.venue_exposures().unwrap().is_empty());
    assert_eq!(
        positive.ingest_trace_warnings(name, &verified, at).unwrap(),
        1,
        "the positive person's own visit matches too (the app hides its own)"
    );
}
}

every_backend! {
async fn tampered_packages_wrong_signers_and_wrong_macs_are_refused() {
    let (server, qr) = setup();
    let now = server.now().get();
    let t0 = now - now % 600 - 4 * 3600;
    let (mut positive, mut visitor) = (phone(), phone());
    visit(&mut positive, &qr, t0, t0 + 3600);
    visit(&mut visitor, &qr, t0, t0 + 3600);
    let venue = VenuePayload::from_qr_text(&qr).unwrap();
    let real = to_upload(&positive, now).reports;
    let real = real.iter().find(|r| r.open(venue.location_id()).is_ok());
    // A report for the same venue whose MAC was altered (the server cannot tell: it has
    // no key), and one that is not a report at all (the server can).
    let mut forged = real.unwrap().to_bytes();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let mut doc = publish_doc(
        &server,
        &issue_code(&server, &server.admin_key).await,
        &[random_key()],
    );
    doc["checkInProtectedReports"] = json!(["AAAA"]);
    let (status, body, _) = publish_json(&server, &doc).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_check_in");
    upload(&server, &[STANDARD.encode(&forged)]).await;

    server.clock.advance(2 * 3600 + 600);
    server.server.export_pass().unwrap();
    let files = packages(&server).await;
    let (name, zip) = &files[0];
    let (trusted, _) = trusted(&server).await;
    let limits = ExportLimits::default();

    // One byte changed anywhere in the signed part: the signature no longer holds.
    let mut tampered = zip.clone();
    let at = tampered.len() / 3;
    tampered[at] ^= 0x40;
    let refused = TraceWarningFile::parse(&tampered, &limits).and_then(|f| f.verify(&trusted));
    assert!(refused.is_err(), "a tampered package was accepted");

    // Signed by a key the phone does not trust.
    let stranger = ExportSigner::new("kith", "v1", SigningKey::generate(&mut OsRng));
    let other = TrustedKeys::new().with("kith", "v1", stranger.verifying_key());
    assert!(
        TraceWarningFile::parse(zip, &limits)
            .unwrap()
            .verify(&other)
            .is_err()
    );

    // The genuine package carries the forged report, which the visitor refuses.
    let verified = TraceWarningFile::parse(zip, &limits)
        .unwrap()
        .verify(&trusted)
        .unwrap();
    let forged = ProtectedReport::from_bytes(&forged).unwrap();
    assert!(verified.reports().contains(&forged));
    assert!(forged.open(venue.location_id()).is_err());
    assert_eq!(
        visitor
            .ingest_trace_warnings(name, &verified, server.now())
            .unwrap(),
        0
    );
}
}

every_backend! {
async fn a_check_in_is_packaged_once_the_truncate_window_it_arrived_in_has_ended() {
    // Check-ins are released as keys are: at the end of the --truncate-window they arrive
    // in, so minute packages need a minute truncate window; with the hour, nothing
    // uploaded now is packaged before the hour ends.
    for (truncate, packaged_after) in [(3600, 3600), (60, 60)] {
        let server = TestServer::with_minute_windows(truncate, |config| {
            config.export.min_reports = 3;
            config.export.report_padding_range = 0;
        });
        let now = server.now().get();
        let qr = setup().1;
        let mut positive = phone();
        visit(&mut positive, &qr, now - 7200, now - 3600);
        let reports = to_upload(&positive, now).reports;
        upload(&server, &encoded(&reports)).await;

        server.clock.advance(packaged_after - 10 + 4);
        server.server.export_pass().unwrap();
        assert!(
            packages(&server).await.is_empty(),
            "truncate {truncate}: too early"
        );
        server.clock.advance(60 + 5);
        server.server.export_pass().unwrap();
        let files = packages(&server).await;
        assert_eq!(files.len(), 1, "truncate {truncate}");
        let (trusted, _) = trusted(&server).await;
        let verified = TraceWarningFile::parse(&files[0].1, &ExportLimits::default())
            .unwrap()
            .verify(&trusted)
            .unwrap();
        assert_eq!(verified.reports(), reports, "truncate {truncate}");
    }
}
}

every_backend! {
async fn uploads_of_one_visit_and_of_seven_look_alike_and_only_real_overlaps_warn() {
    let (server, qr) = setup();
    let now = server.now().get();
    let t0 = now - now % 600 - 10 * 3600;
    let places: Vec<String> = (0..7).map(|i| venue_qr(&format!("Place {i}"))).collect();
    // One positive person was at the café only; another at seven places, an hour each.
    let (mut one, mut seven) = (phone(), phone());
    visit(&mut one, &qr, t0, t0 + 3600);
    for (i, place) in places.iter().enumerate() {
        let start = t0 + i as u64 * 3600;
        visit(&mut seven, place, start, start + 3600);
    }
    let (one, seven) = (to_upload(&one, now), to_upload(&seven, now));
    assert_eq!((one.visits(), seven.visits()), (1, 7));
    let mut documents = Vec::new();
    for upload in [&one, &seven] {
        let code = issue_code(&server, &server.admin_key).await;
        let mut doc = publish_doc(&server, &code, &[random_key()]);
        doc["checkInProtectedReports"] = json!(encoded(&upload.reports));
        documents.push(doc);
    }
    // What a network observer of a plain upload, the server or a copy of its database sees:
    // the same number of reports, of the same length, whatever the visits.
    let shapes: Vec<_> = documents
        .iter()
        .map(|doc| {
            let reports = doc["checkInProtectedReports"].as_array().unwrap();
            let lengths: Vec<usize> = reports.iter().map(|r| r.as_str().unwrap().len()).collect();
            (reports.len(), lengths, serde_json::to_vec(doc).unwrap().len())
        })
        .collect();
    assert_eq!(shapes[0], shapes[1]);
    assert_eq!(shapes[0].0, CHECK_INS_PER_UPLOAD);
    for doc in &documents {
        let (status, body, _) = publish_json(&server, doc).await;
        assert_eq!(status, 200, "{body}");
    }
    // A client that sends its one visit unpadded is padded by the server.
    let (mut short, elsewhere) = (phone(), venue_qr("Elsewhere"));
    visit(&mut short, &elsewhere, t0, t0 + 600);
    let elsewhere = VenuePayload::from_qr_text(&elsewhere).unwrap();
    let unpadded: Vec<_> = to_upload(&short, now)
        .reports
        .into_iter()
        .filter(|r| r.open(elsewhere.location_id()).is_ok())
        .collect();
    assert_eq!(unpadded.len(), 1);
    upload(&server, &encoded(&unpadded)).await;

    server.clock.advance(2 * 3600 + 600);
    server.server.export_pass().unwrap();
    let files = packages(&server).await;
    let [(name, zip)] = files.as_slice() else {
        panic!("one package: {files:?}");
    };
    let (trusted, _) = trusted(&server).await;
    let verified = TraceWarningFile::parse(zip, &ExportLimits::default())
        .unwrap()
        .verify(&trusted)
        .unwrap();
    assert_eq!(verified.reports().len(), 3 * CHECK_INS_PER_UPLOAD);
    assert!(verified.reports().contains(&unpadded[0]));

    // Bystanders everywhere, at other times or at other places, are warned by nothing:
    // not by the 833 padding reports, not by the real ones.
    let at = server.now();
    let mut bystander = phone();
    for place in places.iter().chain([&qr]) {
        visit(&mut bystander, place, t0 - 3 * 3600, t0 - 2 * 3600);
    }
    for i in 0..20 {
        visit(&mut bystander, &venue_qr(&format!("Shop {i}")), t0, t0 + 3600);
    }
    assert_eq!(bystander.ingest_trace_warnings(name, &verified, at).unwrap(), 0);
    // The one who shared the fourth of the seven places with the positive person is.
    let mut met = phone();
    let fourth = t0 + 3 * 3600;
    visit(&mut met, &places[3], fourth + 1800, fourth + 7200);
    visit(&mut met, &places[4], fourth - 7200, fourth - 3600);
    assert_eq!(met.ingest_trace_warnings(name, &verified, at).unwrap(), 1);
    let [warned] = met.venue_exposures().unwrap().try_into().unwrap();
    assert_eq!((warned.description.as_str(), warned.overlap_minutes), ("Place 3", 30));
}
}
