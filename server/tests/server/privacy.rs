//! What an observer of the public listener, or a holder of the database, can learn:
//! sealed answers, replays, timing of chaff against real uploads, and what is stored.
//! In-process, on a manual clock.

use std::time::Instant;

use crate::common::*;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

fn chaff(mut doc: Value) -> Value {
    doc["fake"] = json!(true);
    doc
}

every_backend! {
async fn a_replayed_sealed_body_gets_its_first_answer_real_or_chaff() {
    let server = TestServer::new();
    let public_key = hpke_key(&server).await;
    let code = issue_code(&server, &server.admin_key).await;
    let keys = [random_key(), random_key()];
    for doc in [
        publish_doc(&server, &code, &keys),
        chaff(publish_doc(&server, &code, &[random_key()])),
    ] {
        let (request, opener) = sealed_request(&public_key, &doc);
        let replay = request.clone();
        let first = server.send(request).await;
        let again = server.send(replay).await;
        assert_eq!(open_answer(&first, &opener).0, 200);
        assert_eq!(first.status, again.status);
        assert_eq!(first.body, again.body, "the same answer, byte for byte");
    }
    assert_eq!(server.stored().count_keys().unwrap(), 2, "stored once");
    // A fresh sealing of the used code is refused, inside the sealed answer.
    let (status, inside, _) = publish_sealed(
        &server,
        &public_key,
        &publish_doc(&server, &code, &[random_key()]),
    )
    .await;
    assert_eq!(
        (status, inside["error"].as_str()),
        (403, Some("code_already_used"))
    );
}
}

/// The best threshold on latency telling `a` from `b`: the cut (halfway between two
/// samples, so it generalises), and whether `a` lies below it, with its accuracy on
/// these samples.
fn fit_threshold(a: &[f64], b: &[f64]) -> (f64, bool, f64) {
    let mut all: Vec<(f64, bool)> = a
        .iter()
        .map(|&t| (t, true))
        .chain(b.iter().map(|&t| (t, false)))
        .collect();
    all.sort_by(|x, y| x.0.total_cmp(&y.0));
    let n = all.len() as f64;
    // Below the cut "a", above "b", or the other way round.
    let (mut a_below, mut b_below) = (0usize, 0usize);
    let mut best = (f64::NEG_INFINITY, true, b.len() as f64 / n);
    for (i, &(t, is_a)) in all.iter().enumerate() {
        if is_a {
            a_below += 1;
        } else {
            b_below += 1;
        }
        let next = all.get(i + 1).map_or(f64::INFINITY, |x| x.0);
        if next == t {
            continue; // a cut cannot separate equal samples
        }
        let cut = if next.is_finite() {
            (t + next) / 2.0
        } else {
            t
        };
        let accuracy = (a_below + (b.len() - b_below)) as f64 / n;
        if accuracy > best.2 {
            best = (cut, true, accuracy);
        }
        if 1.0 - accuracy > best.2 {
            best = (cut, false, 1.0 - accuracy);
        }
    }
    best
}

/// The accuracy of the best threshold fitted on `a` and `b`, on the samples it was
/// fitted on (an overestimate).
fn best_threshold_accuracy(a: &[f64], b: &[f64]) -> f64 {
    fit_threshold(a, b).2
}

/// Latencies of pairs of uploads, one of each kind: `.0` of the first kind, `.1` of
/// the other.
type Pairs = [(f64, f64)];

/// An observer's classifier: the best threshold fitted on the first `train` pairs,
/// scored on the others (held out, so the score is not inflated by the fit).
fn held_out_accuracy(pairs: &Pairs, train: usize) -> f64 {
    let (fit, test) = pairs.split_at(train);
    let (a, b): (Vec<f64>, Vec<f64>) = fit.iter().copied().unzip();
    let (cut, a_below, _) = fit_threshold(&a, &b);
    let says_a = |t: f64| (t <= cut) == a_below;
    let correct: usize = test
        .iter()
        .map(|&(a, b)| usize::from(says_a(a)) + usize::from(!says_a(b)))
        .sum();
    correct as f64 / (2 * test.len()) as f64
}

/// Pairs fitted on, and pairs scored, in the timing test.
const TRAIN_PAIRS: usize = 100;
const TEST_PAIRS: usize = 300;

/// The timing test's sample sizes make its verdict reliable both ways. On 600 held-out
/// uploads, a server whose chaff cannot be told apart scores like 600 fair coin flips,
/// whatever threshold was fitted: above 60 % with probability P(Bin(600, ½) ≥ 361) <
/// 10⁻⁶. A server with the 99 % gap this test was written against scores about 99 %.
#[test]
fn the_timing_tests_sample_sizes_separate_chance_from_a_gap() {
    let n = (2 * TEST_PAIRS) as u64;
    // P(X ≥ k) for X ~ Bin(n, 1/2), summed in logarithms.
    let ln_choose = |k: u64| -> f64 {
        (1..=k)
            .map(|i| ((n - k + i) as f64).ln() - (i as f64).ln())
            .sum()
    };
    let first_failing = (n * 6).div_ceil(10) + 1;
    let tail: f64 = (first_failing..=n)
        .map(|k| (ln_choose(k) - n as f64 * 2f64.ln()).exp())
        .sum();
    assert!(tail < 1e-6, "P(pass wrongly failed) = {tail:e}");

    // Simulated: indistinguishable latencies score near 50 %, separated ones near 100 %.
    let mut rng = rand::rngs::StdRng::seed_from_u64(13);
    let noise = |rng: &mut rand::rngs::StdRng| rng.gen_range(10.0..12.0);
    let same: Vec<(f64, f64)> = (0..TRAIN_PAIRS + TEST_PAIRS)
        .map(|_| (noise(&mut rng), noise(&mut rng)))
        .collect();
    let gap: Vec<(f64, f64)> = (0..TRAIN_PAIRS + TEST_PAIRS)
        .map(|_| (noise(&mut rng) + 1.9, noise(&mut rng)))
        .collect();
    let chance = held_out_accuracy(&same, TRAIN_PAIRS);
    assert!((0.44..=0.56).contains(&chance), "{chance}");
    assert!(held_out_accuracy(&gap, TRAIN_PAIRS) >= 0.97);
}

/// An observer times sealed uploads (14 keys each) and tries to tell chaff from real
/// ones: pairs of one of each, in random order, sent one after the other so each is a
/// batch of its own (the case where a batch's work would show most). Bounded: 800
/// uploads, each answered within the answer floor (at most a second).
#[tokio::test]
async fn a_latency_classifier_tells_chaff_from_real_uploads_at_most_60_percent_of_the_time() {
    const PAIRS: usize = TRAIN_PAIRS + TEST_PAIRS;
    let server = TestServer::new();
    let public_key = hpke_key(&server).await;
    let codes = issue_many(&server, &server.admin_key, PAIRS as u32).await;
    let mut rng = rand::thread_rng();
    let mut pairs = Vec::with_capacity(PAIRS);
    let started = Instant::now();
    for (i, code) in codes.iter().enumerate() {
        let keys = || -> Vec<[u8; 16]> { (0..14).map(|_| random_key()).collect() };
        let real = publish_doc(&server, code, &keys());
        // Chaff with never-issued codes.
        let fake = chaff(publish_doc(&server, &format!("{:016}", i * 7919), &keys()));
        let mut plan = [(true, real), (false, fake)];
        plan.shuffle(&mut rng);
        let (mut real_time, mut fake_time) = (0.0, 0.0);
        for (is_real, doc) in plan {
            let (request, opener) = sealed_request(&public_key, &doc);
            let sent = Instant::now();
            let reply = server.send(request).await;
            let elapsed = sent.elapsed().as_secs_f64();
            assert_eq!(open_answer(&reply, &opener).0, 200);
            *if is_real {
                &mut real_time
            } else {
                &mut fake_time
            } = elapsed;
        }
        pairs.push((real_time, fake_time));
    }
    let accuracy = held_out_accuracy(&pairs, TRAIN_PAIRS);
    let (real, fake): (Vec<f64>, Vec<f64>) = pairs.iter().copied().unzip();
    let fitted = best_threshold_accuracy(&real, &fake);
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2] * 1e3
    };
    println!(
        "latency classifier: {:.1} % right on {} held-out uploads ({:.1} % on all {} it could be fitted to); \
         real median {:.2} ms, chaff median {:.2} ms; {:.1} s",
        accuracy * 100.0,
        2 * TEST_PAIRS,
        fitted * 100.0,
        2 * PAIRS,
        median(real),
        median(fake),
        started.elapsed().as_secs_f64(),
    );
    assert!(
        accuracy <= 0.60,
        "a threshold tells them apart {:.1} % of the time",
        accuracy * 100.0
    );
    assert_eq!(server.stored().count_keys().unwrap(), 14 * PAIRS as u64);
}

#[test]
fn the_classifier_finds_a_real_difference() {
    let fast: Vec<f64> = (0..100).map(|i| 1.0 + f64::from(i) * 1e-3).collect();
    let slow: Vec<f64> = (0..100).map(|i| 1.2 + f64::from(i) * 1e-3).collect();
    assert_eq!(best_threshold_accuracy(&fast, &slow), 1.0);
    assert_eq!(best_threshold_accuracy(&slow, &fast), 1.0);
    let same: Vec<f64> = (0..100).map(f64::from).collect();
    assert!(best_threshold_accuracy(&same, &same) <= 0.51);
    let separated: Vec<(f64, f64)> = fast.iter().copied().zip(slow.iter().copied()).collect();
    assert!(held_out_accuracy(&separated, 50) >= 0.98);
    let alike: Vec<(f64, f64)> = same.iter().copied().zip(same.iter().copied()).collect();
    assert!(held_out_accuracy(&alike, 50) <= 0.55);
}

every_backend! {
async fn nothing_stored_ties_a_code_to_its_keys() {
    let server = TestServer::new();
    // Inside one hour, several codes issued and redeemed minutes apart.
    let now = server.now().get();
    server
        .clock
        .set(kith_server::UnixSeconds::new(now - now % 3600 + 60));
    let codes = issue_many(&server, &server.admin_key, 5).await;
    let mut uploads: Vec<Vec<[u8; 16]>> = Vec::new();
    for code in &codes {
        server.clock.advance(7 * 60);
        let keys: Vec<[u8; 16]> = (0..5).map(|_| random_key()).collect();
        let (status, body, _) = publish_json(&server, &publish_doc(&server, code, &keys)).await;
        assert_eq!(status, 200, "{body}");
        uploads.push(keys);
    }
    // An hour and a minute later the export pass has mixed the hour's keys into their table
    // (PostgreSQL: see `postgres::staging`; SQLite needs no mixing).
    let stored = server.stored();
    let count = |sql: &str| stored.count(sql).unwrap();
    if stored.is_postgres() {
        assert_eq!(count("SELECT count(*) FROM diagnosis_keys"), 0, "staged first");
        assert_eq!(count("SELECT count(*) FROM staged_keys"), 25);
    }
    server.clock.set(kith_server::UnixSeconds::new(
        now - now % 3600 + 3600 + 61,
    ));
    server.server.export_pass().unwrap();
    // Redeemed codes keep their hash and the hour they expire, nothing else.
    assert_eq!(
        stored.columns("redeemed_codes").unwrap(),
        ["code_hash", "expires_hour"]
    );
    assert_eq!(count("SELECT count(*) FROM redeemed_codes"), 5);
    assert_eq!(count("SELECT count(*) FROM verification_codes"), 0);
    assert_eq!(
        count("SELECT count(DISTINCT expires_hour) FROM redeemed_codes"),
        1
    );
    // Every key has the same times, whichever upload it came with.
    assert_eq!(
        count("SELECT count(DISTINCT received_at) FROM diagnosis_keys"),
        1
    );
    assert_eq!(
        count("SELECT count(*) FROM diagnosis_keys WHERE received_at % 3600 != 0"),
        0
    );
    assert_eq!(
        count("SELECT count(*) FROM diagnosis_keys WHERE embargo_until % 3600 != 0"),
        0
    );
    // The table's order is not arrival order: the keys of an upload are not neighbours.
    // SQLite keeps the table in the order of its random ids; PostgreSQL keeps each row
    // where it was written (`ctid` order, what a query without ORDER BY or `pg_dump` shows),
    // which the mixer made random.
    let upload_of = |key: &[u8; 16]| uploads.iter().position(|u| u.contains(key)).unwrap();
    let sequence: Vec<usize> = stored
        .keys_in_storage_order()
        .unwrap()
        .iter()
        .map(upload_of)
        .collect();
    assert_eq!(sequence.len(), 25);
    let runs = 1 + sequence.windows(2).filter(|w| w[0] != w[1]).count();
    // Grouped by upload there would be 5 runs; shuffled, about 20 (10 or fewer: p < 10⁻⁴).
    assert!(runs > 10, "rows in upload order: {sequence:?}");
    if stored.is_postgres() {
        // Nor does the transaction that wrote a row (`xmin`) tell its upload: the hour's
        // keys, and its check-ins, were written by one, and nothing is left in staging.
        for table in ["diagnosis_keys", "check_in_reports"] {
            let writers = format!("SELECT count(DISTINCT xmin::text) FROM {table}");
            assert_eq!(count(&writers), 1, "{table}");
        }
        assert_eq!(count("SELECT count(*) FROM check_in_reports"), 5 * 280);
        for staged in ["staged_keys", "staged_check_ins"] {
            assert_eq!(count(&format!("SELECT count(*) FROM {staged}")), 0);
        }
    }
    // What a key row holds that differs between uploads is what exports carry anyway.
    assert_eq!(
        stored.columns("diagnosis_keys").unwrap(),
        [
            "id",
            "key_data",
            "rolling_start",
            "rolling_period",
            "transmission_risk",
            "report_type",
            "days_since_onset",
            "received_at",
            "embargo_until"
        ]
    );
}
}
