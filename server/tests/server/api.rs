//! The HTTP API in-process: `app(state)` driven with `oneshot` on a manual clock, with
//! a temporary data directory and no socket. (`process.rs` runs the binary where the
//! process itself matters.)

use crate::common::*;
use axum::http::Method;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

fn stored(server: &TestServer, key: &[u8; 16]) -> Option<kith_server::inspect::KeyRecord> {
    server.stored().key_record(key).unwrap()
}

fn stored_count(server: &TestServer) -> u64 {
    server.stored().count_keys().unwrap()
}
every_backend! {
async fn happy_path_applies_the_codes_diagnosis_and_embargoes_todays_key() {
    let server = TestServer::new();
    let admin = server.admin_key.clone();
    let codes = issue_codes(
        &server,
        &admin,
        json!({"diagnosis": "self_report", "symptomOnsetDate": date_days_ago(&server, 3)}),
    )
    .await;
    assert_eq!(codes.len(), 1);
    assert_eq!(codes[0].len(), 16);

    let keys: Vec<[u8; 16]> = (0..15).map(|_| random_key()).collect();
    let (status, body, size) = publish_json(&server, &publish_doc(&server, &codes[0], &keys)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["insertedExposures"], 15);
    assert_eq!(size, kith_server::RESPONSE_LEN);

    let today = today_start(&server);
    let todays = stored(&server, &keys[0]).expect("today's key is stored");
    assert_eq!(todays.rolling_start, today);
    assert_eq!(todays.report_type, 3, "self report from the code");
    assert_eq!(todays.days_since_onset, Some(3), "onset from the code");
    assert_eq!(
        todays.embargo_until.get(),
        u64::from(today + 144) * 600,
        "embargoed until it expires"
    );
    let oldest = stored(&server, &keys[14]).unwrap();
    assert_eq!(oldest.days_since_onset, Some(-11));
    // Released within the hour (embargo times are rounded up to the hour).
    assert!(oldest.embargo_until.get() <= server.now().get().div_ceil(3600) * 3600);
    assert_eq!(stored_count(&server), 15);
}
}

#[tokio::test]
async fn every_validation_rule_is_a_400_and_leaves_the_code_usable() {
    let server = TestServer::new();
    let admin = server.admin_key.clone();
    let code = issue_code(&server, &admin).await;
    let today = today_start(&server);
    let now_interval = (server.now().get() / 600) as u32;
    let k = |start: u32| key_json(&random_key(), start);
    let doc = |keys: Vec<Value>| json!({"temporaryExposureKeys": keys, "verificationCode": code});
    let same = random_key();
    let mut cases: Vec<(&str, Value)> = vec![
        ("invalid_key_count", doc(vec![])),
        (
            "invalid_key_count",
            doc((0..31).map(|i| k(today - 144 * (i / 3))).collect()),
        ),
        (
            "invalid_key",
            doc(vec![
                json!({"key": STANDARD.encode([1u8; 15]), "rollingStartNumber": today, "rollingPeriod": 144}),
            ]),
        ),
        (
            "invalid_key_encoding",
            doc(vec![
                json!({"key": "%%%%", "rollingStartNumber": today, "rollingPeriod": 144}),
            ]),
        ),
        (
            "invalid_rolling_period",
            doc(vec![
                json!({"key": STANDARD.encode(random_key()), "rollingStartNumber": today, "rollingPeriod": 0}),
            ]),
        ),
        (
            "invalid_rolling_period",
            doc(vec![
                json!({"key": STANDARD.encode(random_key()), "rollingStartNumber": today, "rollingPeriod": 145}),
            ]),
        ),
        ("key_in_future", doc(vec![k(now_interval + 1)])),
        ("key_too_old", doc(vec![k(today - 17 * 144)])),
        (
            "invalid_transmission_risk",
            doc(vec![
                json!({"key": STANDARD.encode(random_key()), "rollingStartNumber": today, "rollingPeriod": 144, "transmissionRisk": 9}),
            ]),
        ),
        (
            "invalid_transmission_risk",
            doc(vec![
                json!({"key": STANDARD.encode(random_key()), "rollingStartNumber": today, "rollingPeriod": 144, "transmissionRisk": -1}),
            ]),
        ),
        (
            "duplicate_key",
            doc(vec![key_json(&same, today), key_json(&same, today - 144)]),
        ),
        (
            "too_many_keys_same_start",
            doc((0..4).map(|_| k(today - 144)).collect()),
        ),
        (
            "invalid_code_format",
            json!({"temporaryExposureKeys": [k(today)], "verificationCode": "12345"}),
        ),
        (
            "invalid_symptom_onset",
            json!({"temporaryExposureKeys": [k(today)], "verificationCode": code, "symptomOnsetInterval": today + 144}),
        ),
    ];
    // Days since onset outside -14..=14: a code whose onset is 14 days ago and a key 15 days old
    // gives -1, fine; the request's onset applies only to codes without one, so use such a code.
    let bare = issue_code(&server, &admin).await;
    cases.push((
        "invalid_days_since_onset",
        json!({"temporaryExposureKeys": [k(today)], "verificationCode": bare, "symptomOnsetInterval": today - 15 * 144}),
    ));
    for (expected, doc) in &cases {
        let (status, body, size) = publish_json(&server, doc).await;
        assert_eq!(status, 400, "{expected}: {body}");
        assert_eq!(body["error"], *expected, "{body}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert_eq!(size, kith_server::RESPONSE_LEN, "errors are padded too");
    }
    // The limits themselves pass, and neither code was spent by the rejected uploads.
    let keys: Vec<Value> = (0..30u32).map(|i| k(today - 144 * (i / 3))).collect();
    let (status, body, _) = publish_json(&server, &doc(keys)).await;
    assert_eq!(
        (status, &body["insertedExposures"]),
        (200, &json!(30)),
        "{body}"
    );
    let (status, _, _) = publish_json(&server, &publish_doc(&server, &bare, &[random_key()])).await;
    assert_eq!(status, 200);
    assert_eq!(stored_count(&server), 31);
}

every_backend! {
async fn codes_are_single_use_expire_and_guessing_is_budgeted() {
    let server = TestServer::with_config(|config| {
        config.failed_redemptions_burst = 3;
        config.failed_redemptions_per_hour = 1;
    });
    let admin = server.admin_key.clone();
    let codes = issue_many(&server, &admin, 3).await;
    let (status, _, _) =
        publish_json(&server, &publish_doc(&server, &codes[0], &[random_key()])).await;
    assert_eq!(status, 200);
    // Reuse.
    let (status, body, _) =
        publish_json(&server, &publish_doc(&server, &codes[0], &[random_key()])).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("code_already_used"))
    );
    // Unknown codes (the reuse above was failure 1 of 3).
    for _ in 0..2 {
        let (status, body, _) = publish_json(
            &server,
            &publish_doc(&server, "0000000000000000", &[random_key()]),
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_code")),
            "{body}"
        );
    }
    // The budget is spent: even a valid code now gets 429, so guesses learn nothing.
    let response = server
        .send(post_json(
            "/v1/publish",
            &publish_doc(&server, &codes[1], &[random_key()]),
        ))
        .await;
    assert_eq!(response.status, 429);
    let retry: u64 = response.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&retry), "{retry}");
    assert_eq!(response.json()["error"], "too_many_attempts");

    // A day later the last code has expired, and the budget has refilled.
    server.clock.advance(90_000);
    let (status, body, _) =
        publish_json(&server, &publish_doc(&server, &codes[2], &[random_key()])).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("code_expired")),
        "{body}"
    );
}
}

every_backend! {
async fn sealed_and_chaff_uploads_have_one_size_and_chaff_stores_nothing() {
    let server = TestServer::new();
    let admin = server.admin_key.clone();
    let public_key = hpke_key(&server).await;
    assert_eq!(public_key.len(), 32);
    let code = issue_code(&server, &admin).await;

    // Chaff first, with the real code: it must not spend it.
    let chaff_keys: Vec<[u8; 16]> = (0..14).map(|_| random_key()).collect();
    let mut chaff = publish_doc(&server, &code, &chaff_keys);
    chaff["fake"] = json!(true);
    let (chaff_status, chaff_body, chaff_size) = publish_sealed(&server, &public_key, &chaff).await;
    let mut random_code_chaff = publish_doc(&server, "1234123412341234", &[random_key()]);
    random_code_chaff["fake"] = json!(true);
    let (plain_chaff_status, _, plain_chaff_size) = publish_json(&server, &random_code_chaff).await;
    let (sealed_random_chaff_status, _, sealed_random_chaff_size) =
        publish_sealed(&server, &public_key, &random_code_chaff).await;

    let real_key = random_key();
    let (real_status, real_body, real_size) = publish_sealed(
        &server,
        &public_key,
        &publish_doc(&server, &code, &[real_key]),
    )
    .await;

    assert_eq!(
        (
            chaff_status,
            plain_chaff_status,
            sealed_random_chaff_status,
            real_status
        ),
        (200, 200, 200, 200),
        "{chaff_body} {real_body}"
    );
    assert_eq!(chaff_size, real_size);
    assert_eq!(sealed_random_chaff_size, real_size);
    assert_eq!(plain_chaff_size, kith_server::RESPONSE_LEN);
    assert_eq!(real_body["insertedExposures"], 1);
    assert_eq!(chaff_body["insertedExposures"], 14);
    assert!(stored(&server, &real_key).is_some());
    assert!(
        chaff_keys.iter().all(|k| stored(&server, k).is_none()),
        "chaff is not stored"
    );
    assert_eq!(stored_count(&server), 1);

    // Requests: one sealed size whatever the key count.
    let (one, _) = kith_server::sealed::seal(
        &public_key,
        publish_doc(&server, &code, &[random_key()])
            .to_string()
            .as_bytes(),
        &mut rand::rngs::OsRng,
    )
    .unwrap();
    let thirty: Vec<[u8; 16]> = (0..30).map(|_| random_key()).collect();
    let (many, _) = kith_server::sealed::seal(
        &public_key,
        publish_doc(&server, &code, &thirty).to_string().as_bytes(),
        &mut rand::rngs::OsRng,
    )
    .unwrap();
    assert_eq!(one.len(), many.len());
}
}

/// (what, bearer key, content type, body, expected status, expected error code)
type AdminCase<'a> = (
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
    Vec<u8>,
    u16,
    &'a str,
);

/// (what, content type, body, expected status, expected error code)
type Case = (
    &'static str,
    Option<&'static str>,
    Vec<u8>,
    u16,
    &'static str,
);

#[tokio::test]
async fn malformed_requests_get_the_documented_4xx() {
    let server = TestServer::new();
    let admin = server.admin_key.clone();
    let public_key = hpke_key(&server).await;
    let today = today_start(&server);
    let json_ct = Some("application/json");
    let sealed_ct = Some(kith_server::sealed::CONTENT_TYPE);
    let key = |k: Value| -> Vec<u8> {
        json!({"temporaryExposureKeys": [k], "verificationCode": "1234567890123456"})
            .to_string()
            .into_bytes()
    };
    let good_key = STANDARD.encode(random_key());
    let with = |field: &str, value: Value| {
        let mut k = json!({"key": good_key, "rollingStartNumber": today, "rollingPeriod": 144});
        k[field] = value;
        key(k)
    };
    // Ignored fields are skipped recursively: the depth limit must answer, not the stack.
    let mut nested = String::from("{\"ignoredField\":");
    nested.push_str(&"[".repeat(5000));
    nested.push_str(&"]".repeat(5000));
    nested.push('}');
    let publish_cases: Vec<Case> = vec![
        ("empty body", json_ct, vec![], 400, "invalid_json"),
        ("truncated JSON", json_ct, b"{\"temporaryExposureKeys\":".to_vec(), 400, "invalid_json"),
        ("not JSON", json_ct, b"hello".to_vec(), 400, "invalid_json"),
        ("trailing garbage", json_ct, [with("rollingPeriod", json!(144)), b" x".to_vec()].concat(), 400, "invalid_json"),
        ("invalid UTF-8", json_ct, vec![b'"', 0xff, 0xfe, b'"'], 400, "invalid_json"),
        ("deep nesting (then a missing field)", json_ct, nested.into_bytes(), 400, "invalid_field"),
        ("null", json_ct, b"null".to_vec(), 400, "invalid_field"),
        ("array", json_ct, b"[]".to_vec(), 400, "invalid_field"),
        ("string", json_ct, b"\"keys\"".to_vec(), 400, "invalid_field"),
        ("missing fields", json_ct, b"{}".to_vec(), 400, "invalid_field"),
        ("keys not an array", json_ct, b"{\"temporaryExposureKeys\":{},\"verificationCode\":\"123456789012\"}".to_vec(), 400, "invalid_field"),
        ("code a number", json_ct, b"{\"temporaryExposureKeys\":[],\"verificationCode\":123456789012}".to_vec(), 400, "invalid_field"),
        ("duplicate field", json_ct, b"{\"temporaryExposureKeys\":[],\"temporaryExposureKeys\":[],\"verificationCode\":\"1\"}".to_vec(), 400, "invalid_field"),
        ("key a number", json_ct, with("key", json!(12345)), 400, "invalid_field"),
        ("start a string", json_ct, with("rollingStartNumber", json!("today")), 400, "invalid_field"),
        ("start negative", json_ct, with("rollingStartNumber", json!(-1)), 400, "invalid_field"),
        ("start 2^32", json_ct, with("rollingStartNumber", json!(4_294_967_296u64)), 400, "invalid_field"),
        ("start 1e20", json_ct, with("rollingStartNumber", json!(1e20)), 400, "invalid_field"),
        ("period fractional", json_ct, with("rollingPeriod", json!(1.5)), 400, "invalid_field"),
        ("risk huge", json_ct, with("transmissionRisk", json!(99_999_999_999i64)), 400, "invalid_field"),
        ("fake not a bool", json_ct, b"{\"temporaryExposureKeys\":[],\"verificationCode\":\"123456789012\",\"fake\":\"yes\"}".to_vec(), 400, "invalid_field"),
        ("onset negative", json_ct, b"{\"temporaryExposureKeys\":[],\"verificationCode\":\"123456789012\",\"symptomOnsetInterval\":-5}".to_vec(), 400, "invalid_field"),
        ("key bad base64", json_ct, with("key", json!("!!!!!!!!!!!!!!!!!!!!!!!!")), 400, "invalid_key_encoding"),
        ("key unpadded base64", json_ct, with("key", json!(STANDARD.encode([7u8; 16]).trim_end_matches('='))), 400, "invalid_key_encoding"),
        ("key url-safe base64", json_ct, with("key", json!("-_-_-_-_-_-_-_-_-_-_-w==")), 400, "invalid_key_encoding"),
        ("key 15 bytes", json_ct, with("key", json!(STANDARD.encode([7u8; 15]))), 400, "invalid_key"),
        ("key 17 bytes", json_ct, with("key", json!(STANDARD.encode([7u8; 17]))), 400, "invalid_key"),
        ("key empty", json_ct, with("key", json!("")), 400, "invalid_key"),
        ("code letters", json_ct, json!({"temporaryExposureKeys": [{"key": good_key, "rollingStartNumber": today, "rollingPeriod": 144}], "verificationCode": "abcdefghijkl"}).to_string().into_bytes(), 400, "invalid_code_format"),
        ("oversize body", json_ct, vec![b' '; 70 * 1024], 413, "payload_too_large"),
        ("no content type", None, b"{}".to_vec(), 415, "unsupported_media_type"),
        ("text/plain", Some("text/plain"), b"{}".to_vec(), 415, "unsupported_media_type"),
        ("form", Some("application/x-www-form-urlencoded"), b"a=b".to_vec(), 415, "unsupported_media_type"),
        ("sealed too short", sealed_ct, vec![0; 10], 400, "invalid_sealed_body"),
        ("sealed random bytes", sealed_ct, vec![7; kith_server::sealed::SEALED_BODY_LEN], 400, "invalid_sealed_body"),
        ("sealed oversize", sealed_ct, vec![7; 70 * 1024], 413, "payload_too_large"),
    ];
    let mut checked = 0;
    // Sealed bodies that open are answered inside the sealed answer.
    for (what, text, code) in [
        ("sealed non-JSON", &b"not json at all"[..], "invalid_json"),
        (
            "sealed wrong types",
            b"{\"temporaryExposureKeys\":7}",
            "invalid_field",
        ),
    ] {
        let (sealed, opener) =
            kith_server::sealed::seal(&public_key, text, &mut rand::rngs::OsRng).unwrap();
        let reply = server
            .send(request(Method::POST, "/v1/publish", sealed_ct, sealed))
            .await;
        let (status, inside) = open_answer(&reply, &opener);
        assert_eq!(
            (status, inside["error"].as_str()),
            (400, Some(code)),
            "{what}"
        );
        checked += 1;
    }
    for (what, content_type, body, status, code) in publish_cases {
        let response = server
            .send(request(Method::POST, "/v1/publish", content_type, body))
            .await;
        assert_eq!(response.status, status, "{what}");
        let bytes = response.body;
        let body: Value =
            serde_json::from_slice(&bytes).unwrap_or_else(|_| panic!("{what}: not JSON"));
        assert_eq!(body["error"], code, "{what}: {body}");
        assert!(body["message"].is_string(), "{what}");
        assert_eq!(bytes.len(), kith_server::RESPONSE_LEN, "{what}: padded");
        checked += 1;
    }

    // The admin API and routing.
    let admin_cases: Vec<AdminCase<'_>> = vec![
        (
            "no admin key",
            None,
            json_ct,
            b"{\"diagnosis\":\"confirmed_test\"}".to_vec(),
            401,
            "invalid_admin_key",
        ),
        (
            "wrong admin key",
            Some("kith_wrong"),
            json_ct,
            b"{\"diagnosis\":\"confirmed_test\"}".to_vec(),
            401,
            "invalid_admin_key",
        ),
        (
            "admin bad JSON",
            Some(&admin),
            json_ct,
            b"{".to_vec(),
            400,
            "invalid_json",
        ),
        (
            "admin no content type",
            Some(&admin),
            None,
            b"{}".to_vec(),
            415,
            "unsupported_media_type",
        ),
        (
            "admin unknown diagnosis",
            Some(&admin),
            json_ct,
            b"{\"diagnosis\":\"flu\"}".to_vec(),
            400,
            "invalid_field",
        ),
        (
            "admin unknown field",
            Some(&admin),
            json_ct,
            b"{\"diagnosis\":\"self_report\",\"x\":1}".to_vec(),
            400,
            "invalid_field",
        ),
        (
            "admin count 0",
            Some(&admin),
            json_ct,
            b"{\"diagnosis\":\"self_report\",\"count\":0}".to_vec(),
            400,
            "invalid_count",
        ),
        (
            "admin count too large",
            Some(&admin),
            json_ct,
            b"{\"diagnosis\":\"self_report\",\"count\":10001}".to_vec(),
            400,
            "invalid_count",
        ),
        (
            "admin count negative",
            Some(&admin),
            json_ct,
            b"{\"diagnosis\":\"self_report\",\"count\":-1}".to_vec(),
            400,
            "invalid_field",
        ),
        (
            "admin impossible date",
            Some(&admin),
            json_ct,
            b"{\"diagnosis\":\"self_report\",\"testDate\":\"2026-02-30\"}".to_vec(),
            400,
            "invalid_date",
        ),
        (
            "admin future date",
            Some(&admin),
            json_ct,
            format!(
                "{{\"diagnosis\":\"self_report\",\"symptomOnsetDate\":\"{}\"}}",
                kith_server::calendar::Day::of(server.now()).plus(2)
            )
            .into_bytes(),
            400,
            "invalid_date",
        ),
        (
            "admin old date",
            Some(&admin),
            json_ct,
            format!(
                "{{\"diagnosis\":\"self_report\",\"symptomOnsetDate\":\"{}\"}}",
                date_days_ago(&server, 15)
            )
            .into_bytes(),
            400,
            "invalid_date",
        ),
        (
            "admin oversize",
            Some(&admin),
            json_ct,
            vec![b' '; 70 * 1024],
            413,
            "payload_too_large",
        ),
    ];
    for (what, bearer, content_type, body, status, code) in admin_cases {
        let mut request = request(Method::POST, "/v1/admin/codes", content_type, body);
        if let Some(key) = bearer {
            request
                .headers_mut()
                .insert("authorization", format!("Bearer {key}").parse().unwrap());
        }
        let response = server.send(request).await;
        assert_eq!(response.status, status, "{what}");
        let body = response.json();
        assert_eq!(body["error"], code, "{what}: {body}");
        assert!(body["message"].is_string());
        checked += 1;
    }
    for (what, method, path, status, code) in [
        ("unknown path", Method::GET, "/v1/nothing", 404, "not_found"),
        (
            "GET on publish",
            Method::GET,
            "/v1/publish",
            405,
            "method_not_allowed",
        ),
        (
            "DELETE on config",
            Method::DELETE,
            "/v1/config",
            405,
            "method_not_allowed",
        ),
    ] {
        let response = server.send(request(method, path, None, Vec::new())).await;
        assert_eq!(response.status, status, "{what}");
        let body = response.json();
        assert_eq!(body["error"], code, "{what}");
        checked += 1;
    }
    assert!(checked >= 30);
    assert_eq!(stored_count(&server), 0, "nothing malformed was stored");
}

every_backend! {
async fn config_and_health() {
    let server = TestServer::new();

    let health = get_json(&server, "/healthz").await;
    assert_eq!(health["status"], "ok");

    let config = get_json(&server, "/v1/config").await;
    let export = &config["exportVerificationKey"];
    assert_eq!(export["keyId"], "kith");
    assert_eq!(export["keyVersion"], "v1");
    assert_eq!(export["signatureAlgorithm"], "1.2.840.10045.4.3.2");
    let pem = export["publicKeyPem"].as_str().unwrap();
    let from_pem = kith_core::VerifyingKey::from_public_key_pem(pem).unwrap();
    let der = STANDARD
        .decode(export["publicKey"].as_str().unwrap())
        .unwrap();
    let from_der = kith_core::VerifyingKey::from_public_key_der(&der).unwrap();
    assert_eq!(from_pem, from_der);
    assert_eq!(config["hpke"]["kemId"], 32);
    assert_eq!(config["hpke"]["info"], "kith publish v1");
    assert_eq!(
        config["hpke"]["sealedBodyLen"],
        kith_server::sealed::SEALED_BODY_LEN
    );
    assert_eq!(config["verificationCodeDigits"], 16);
    assert_eq!(config["exportIndex"], "v1/exports/index.txt");
    assert_eq!(config["traceWarningIndex"], "v1/trace-warnings/index.txt");
    let enx = kith_core::risk::RiskConfig::enx_with_15_minute_alert();
    assert_eq!(
        config["riskConfiguration"],
        serde_json::to_value(&enx).unwrap()
    );
}
}

#[tokio::test]
async fn a_health_authoritys_risk_configuration_is_published() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("risk.json");
    let apple = kith_core::risk::RiskConfig::apple_defaults();
    std::fs::write(&file, apple.to_json()).unwrap();
    let server = TestServer::with_config(|config| config.risk_config = Some(file));
    let config = get_json(&server, "/v1/config").await;
    let served: kith_core::risk::RiskConfig =
        serde_json::from_value(config["riskConfiguration"].clone()).unwrap();
    assert_eq!(served, apple);
}

#[tokio::test]
async fn openapi_documents_and_routers_match_on_both_listeners() {
    let server = TestServer::new();
    let methods = ["get", "post", "put", "delete", "patch"];
    // Every path literal in the server's source.
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
    let mut literals = std::collections::BTreeSet::new();
    let mut stack = vec![std::path::PathBuf::from(src)];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for piece in text.split("\"/").skip(1) {
                    let literal: String = piece.chars().take_while(|c| *c != '"').collect();
                    if !literal.is_empty()
                        && literal
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "/_.-".contains(c))
                    {
                        literals.insert(format!("/{literal}"));
                    }
                }
            }
        }
    }
    assert!(
        literals.contains("/v1/publish") && literals.contains("/portal/login"),
        "{literals:?}"
    );
    let status_on = |listener, method: &str, path: &str| {
        let method = method.to_uppercase().parse().unwrap();
        let request = request(method, path, None, Vec::new());
        let server = &server;
        async move { server.send_to(listener, request).await.status }
    };
    for listener in [Listener::Public, Listener::Operator] {
        let doc = server.send_to(listener, get("/openapi.json")).await.json();
        let paths = doc["paths"].as_object().unwrap();
        // Document → router: every documented operation is routed; other methods 405.
        for (template, item) in paths {
            // Path parameters take their documented example.
            let mut path = template.clone();
            for operation in item.as_object().unwrap().values() {
                for param in operation["parameters"].as_array().into_iter().flatten() {
                    if let (Some(name), Some(example)) =
                        (param["name"].as_str(), param["example"].as_str())
                    {
                        path = path.replace(&format!("{{{name}}}"), example);
                    }
                }
            }
            let path = &path;
            for method in methods {
                let status = status_on(listener, method, path).await;
                if item.get(method).is_some() {
                    assert!(
                        status != 404 && status != 405,
                        "{listener:?}: {method} {path} documented but answers {status}"
                    );
                } else {
                    assert_eq!(
                        status, 405,
                        "{listener:?}: {method} {path} routed but not documented"
                    );
                }
            }
        }
        // Router → document: every literal the listener answers (not 404) is documented.
        for path in &literals {
            for method in methods {
                if status_on(listener, method, path).await != 404 {
                    assert!(
                        paths.contains_key(path),
                        "{listener:?}: {path} is served but not in its /openapi.json"
                    );
                }
            }
        }
    }
    let public = server
        .send_to(Listener::Public, get("/openapi.json"))
        .await
        .json();
    assert_eq!(
        public["paths"]["/v1/publish"]["post"]["requestBody"]["content"]
            .as_object()
            .unwrap()
            .len(),
        2
    );
    // Each listener serves its own part only.
    for path in ["/v1/admin/codes", "/portal", "/portal/login", "/metrics"] {
        assert_eq!(
            status_on(Listener::Public, "get", path).await,
            404,
            "{path} on the public listener"
        );
        assert_eq!(
            status_on(Listener::Public, "post", path).await,
            404,
            "{path} on the public listener"
        );
    }
    for path in ["/v1/publish", "/v1/config"] {
        assert_eq!(
            status_on(Listener::Operator, "get", path).await,
            404,
            "{path} on the operator listener"
        );
    }
}

#[tokio::test]
async fn a_full_database_answers_503_storage_full_and_healthz_says_so() {
    let server = TestServer::with_config(|config| config.max_database_mib = Some(1));
    let codes = issue_many(&server, &server.admin_key, 1000).await;
    let mut stored_before = 0;
    let mut full = None;
    for code in &codes {
        let keys: Vec<[u8; 16]> = (0..15).map(|_| random_key()).collect();
        let reply = server
            .send(post_json("/v1/publish", &publish_doc(&server, code, &keys)))
            .await;
        if reply.status == 200 {
            stored_before += 15;
        } else {
            full = Some(reply);
            break;
        }
    }
    let full = full.expect("1 MiB fills up");
    assert_eq!(full.status, 503);
    assert_eq!(full.json()["error"], "storage_full", "not 'shutting down'");
    assert_eq!(full.headers["retry-after"], "60");
    assert_eq!(full.body.len(), kith_server::RESPONSE_LEN);
    let health = server.send(get("/healthz")).await;
    assert_eq!(
        (health.status, health.json()["status"].as_str()),
        (503, Some("storage_full"))
    );
    // Nothing accepted before was lost.
    assert_eq!(server.stored().count_keys().unwrap(), stored_before);
}
