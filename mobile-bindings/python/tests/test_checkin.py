"""Venue check-in as an app drives it: scan a poster, check out, upload after a positive
test, download the hourly trace-warning package, and warn the visitors who were there."""

import pytest

from kith_mobile import ExportSigner, ExposureEngine, KithError, ProtectedCheckIn

DAY = 86_400
# 2023-11-15 18:00 UTC: Alice arrives at the restaurant.
EVENING = 1_700_071_200
HOUR = EVENING // 3_600
# Reports in every upload: 20 a day for 14 days, real visits and padding.
UPLOAD_SIZE = 280

# A CWA poster (cwa-app-android's TraceLocationIdTest "mock server test data - 1"):
# "Apple Computer, Inc.", a restaurant with a default visit of 169 minutes.
POSTER = (
    "https://e.coronawarn.app?v=1#CAESKAgBEhRBcHBsZSBDb21wdXRlciwgSW5jLhoOMTk1OCBGb2hlIFJvYWQadggBEmA4"
    "xNrp5hKJoO_yVbXfF1gS8Yc5nURhOIVLG3nUcSg8IPsI2e8JSIhg-FrHUymQ3RR80KUKb1lZjLQkfTUINUP16r6-jFDURwUl"
    "CQQi6NXCgI0rQw0a4MrVrKMbF4NzhQMaENXiVYke5XY0HddkDmj-3HYiBwgBEAQYqQE"
)
# Another CWA poster ("mock server test data - 2"): a public building.
OTHER_POSTER = (
    "https://e.coronawarn.app?v=1#CAESKQgBEhRXYXN0ZSBNYW5hZ2VtZW50IEluYxoPMzc5IE96Zm9jIE1hbm9yGnYIARJgOM"
    "Ta6eYSiaDv8lW13xdYEvGHOZ1EYTiFSxt51HEoPCD7CNnvCUiIYPhax1MpkN0UfNClCm9ZWYy0JH01CDVD9eq-voxQ1EcFJQkE"
    "IujVwoCNK0MNGuDK1ayjGxeDc4UDGhCUpoAjtgZJPU4suuQZ6dVUIgcIARAIGJ4E"
)


@pytest.fixture
def phones(tmp_path):
    return [ExposureEngine.open(str(tmp_path / f"{name}.db"), -20) for name in ("alice", "bob", "carol")]


@pytest.fixture
def signer():
    return ExportSigner.generate("262", "v1")


def test_the_overlapping_visitor_is_warned_and_the_later_one_is_not(phones, signer):
    alice, bob, carol = phones
    visit = alice.check_in(POSTER, EVENING)
    assert visit.description == "Apple Computer, Inc."
    assert visit.address == "1958 Fohe Road"
    assert visit.departure_unix_seconds == EVENING + 169 * 60, "the poster's default length"
    # Scanning the poster again during the visit is the same visit.
    assert alice.check_in(POSTER, EVENING + 600).id == visit.id
    alice.check_out(visit.id, EVENING + 3_600)

    bob_visit = bob.check_in(POSTER, EVENING + 1_800)  # 30 minutes together
    carol.check_in(POSTER, EVENING + 3 * 3_600)  # arrives after Alice left
    carol.check_in(OTHER_POSTER, EVENING)  # at the same time, elsewhere

    # Alice tests positive: she uploads her visits with her keys; the server publishes them.
    upload = alice.check_ins_to_upload(EVENING + 4 * 3_600)
    assert upload.check_in_ids == [visit.id]
    assert len(upload.reports) == UPLOAD_SIZE, "her one visit among padding"
    # Hash, IV, one encrypted block, MAC: no plaintext, and padding looks the same.
    assert {len(r.report) for r in upload.reports} == {104}
    package = signer.write_trace_warnings(upload.reports, "DE", HOUR + 5)
    trusted = [signer.trusted_public_key()]

    later = EVENING + 6 * 3_600
    ingest = bob.ingest_trace_warnings(package, trusted, later)
    assert not ingest.already_ingested
    [warning] = ingest.new_venue_exposures
    again = bob.ingest_trace_warnings(package, trusted, later)
    assert again.already_ingested and again.new_venue_exposures == [], "the same file once"
    assert carol.ingest_trace_warnings(package, trusted, later).new_venue_exposures == []
    # The server acknowledged her upload: her own visit in the package does not warn her.
    alice.mark_check_ins_shared(upload.check_in_ids)
    assert [c.shared for c in alice.check_ins()] == [True]
    assert alice.ingest_trace_warnings(package, trusted, later).new_venue_exposures == []
    assert alice.exposure_summary(later).venue_exposures == []

    assert bob.exposure_summary(later).venue_exposures == [warning]
    assert warning.check_in_id == bob_visit.id
    assert warning.description == "Apple Computer, Inc."
    assert (warning.start_unix_seconds, warning.end_unix_seconds) == (EVENING + 1_800, EVENING + 3_600)
    assert warning.overlap_minutes == 30
    assert warning.transmission_risk_level == 8
    assert carol.exposure_summary(later).venue_exposures == []
    # The Bluetooth side is untouched.
    assert bob.exposure_summary(later).risk_level is None


def test_the_overlap_threshold_is_configurable(phones, signer):
    alice, bob, _ = phones
    alice.check_in(POSTER, EVENING)
    bob.set_venue_min_overlap_minutes(120)
    # Alice stays the poster's 169 minutes (reported to 170), Bob arrives an hour later: 110 together.
    bob.check_in(POSTER, EVENING + 3_600)
    package = signer.write_trace_warnings(alice.check_ins_to_upload(EVENING + 4 * 3_600).reports, "DE", HOUR)
    assert bob.ingest_trace_warnings(package, [signer.trusted_public_key()], EVENING + 5 * 3_600).new_venue_exposures == []
    bob.set_venue_min_overlap_minutes(110)
    again = signer.write_trace_warnings(alice.check_ins_to_upload(EVENING + 4 * 3_600).reports, "DE", HOUR)
    assert len(bob.ingest_trace_warnings(again, [signer.trusted_public_key()], EVENING + 5 * 3_600).new_venue_exposures) == 1


def test_packages_from_another_signer_or_altered_are_refused(phones, signer):
    alice, bob, _ = phones
    alice.check_in(POSTER, EVENING)
    bob.check_in(POSTER, EVENING)
    package = signer.write_trace_warnings(alice.check_ins_to_upload(EVENING + 3_600).reports, "DE", HOUR)
    impostor = ExportSigner.generate("262", "v1")
    with pytest.raises(KithError.UntrustedExportFile):
        bob.ingest_trace_warnings(package, [impostor.trusted_public_key()], EVENING + 7_200)
    with pytest.raises(KithError.InvalidExportFile):
        bob.ingest_trace_warnings(package[:-10], [signer.trusted_public_key()], EVENING + 7_200)
    assert bob.exposure_summary(EVENING + 7_200).venue_exposures == []
    # A report altered on the way does not count, the package's other reports still do.
    reports = alice.check_ins_to_upload(EVENING + 3_600).reports
    altered = []
    for upload in reports:
        report = bytearray(upload.report)
        report[-1] ^= 1
        altered.append(ProtectedCheckIn(report=bytes(report)))
    mixed = signer.write_trace_warnings(altered, "DE", HOUR)
    assert bob.ingest_trace_warnings(mixed, [signer.trusted_public_key()], EVENING + 7_200).new_venue_exposures == []


@pytest.mark.parametrize(
    "text, says",
    [
        ("", "not a venue QR code"),
        ("https://example.org/menu", "not a venue QR code"),
        ("https://e.coronawarn.app?v=1#%%%", "base64"),
        ("https://e.coronawarn.app?v=1#CAES", "protobuf"),
        # The same poster with its 16-byte seed cut to 4 (CWA's own test payload).
        (
            "https://e.coronawarn.app?v=1#CAESIAgBEg1JY2VjcmVhbSBTaG9wGg1NYWluIFN0cmVldCAxGmUIARJbMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEc7DEstcUIRcyk35OYDJ95/hTg3UVhsaDXKT0zK7NhHPXoyzipEnOp3GyNXDVpaPi3cAfQmxeuFMZAIX2+6A5XhoEMTIzNCIGCAEQARgK",
            "seed must be 16 bytes",
        ),
    ],
)
def test_bad_qr_text_gets_a_clear_error(phones, text, says):
    alice = phones[0]
    with pytest.raises(KithError.InvalidVenueCode) as error:
        alice.check_in(text, EVENING)
    assert says in str(error.value)
    assert alice.check_ins() == []


def test_check_outs_are_checked(phones):
    alice = phones[0]
    visit = alice.check_in(POSTER, EVENING)
    with pytest.raises(KithError.InvalidCheckIn):
        alice.check_out(visit.id, EVENING - 60)
    with pytest.raises(KithError.InvalidCheckIn):
        alice.check_out(visit.id + 1, EVENING + 60)
    assert alice.check_out(visit.id, EVENING + 60).departure_unix_seconds == EVENING + 60


def test_visits_older_than_14_days_are_purged(phones, signer):
    alice, bob, _ = phones
    alice.check_in(POSTER, EVENING)
    bob.check_in(POSTER, EVENING)
    package = signer.write_trace_warnings(alice.check_ins_to_upload(EVENING + 3_600).reports, "DE", HOUR)
    assert len(bob.ingest_trace_warnings(package, [signer.trusted_public_key()], EVENING + 7_200).new_venue_exposures) == 1
    bob.purge(EVENING + 14 * DAY)
    assert len(bob.check_ins()) == 1, "the visit ended less than 14 days ago"
    bob.purge(EVENING + 15 * DAY)
    assert bob.check_ins() == []
    assert bob.exposure_summary(EVENING + 15 * DAY).venue_exposures == []
    nothing = alice.check_ins_to_upload(EVENING + 15 * DAY)
    assert nothing.check_in_ids == [] and len(nothing.reports) == UPLOAD_SIZE, "padding only"


def test_uploads_of_one_visit_and_of_seven_look_alike_and_only_the_real_overlap_warns(tmp_path, signer):
    one, seven, bystander, met = (
        ExposureEngine.open(str(tmp_path / f"{name}.db"), -20) for name in ("one", "seven", "bystander", "met")
    )
    one.check_in(POSTER, EVENING)
    # Seven one-hour visits, three hours apart, alternating between the two posters.
    for i in range(7):
        visit = seven.check_in(POSTER if i % 2 else OTHER_POSTER, EVENING + i * 3 * 3_600)
        seven.check_out(visit.id, EVENING + i * 3 * 3_600 + 3_600)
    later = EVENING + 2 * DAY
    small, large = one.check_ins_to_upload(later), seven.check_ins_to_upload(later)
    assert (len(small.check_in_ids), len(large.check_in_ids)) == (1, 7)
    assert len(small.reports) == len(large.reports) == UPLOAD_SIZE
    assert sorted(len(r.report) for r in small.reports) == sorted(len(r.report) for r in large.reports)

    package = signer.write_trace_warnings(small.reports + large.reports, "DE", HOUR + 48)
    trusted = [signer.trusted_public_key()]
    # Someone at both places, but never at the same time as either positive person: the
    # 552 padding reports and the 8 real ones warn them of nothing.
    for poster, hours_before in ((POSTER, 6), (OTHER_POSTER, 3)):
        visit = bystander.check_in(poster, EVENING - hours_before * 3_600)
        bystander.check_out(visit.id, EVENING - (hours_before - 1) * 3_600)
    assert bystander.ingest_trace_warnings(package, trusted, later).new_venue_exposures == []
    # Someone who sat at the public building during the seven-visit person's fifth visit is warned.
    visit = met.check_in(OTHER_POSTER, EVENING + 12 * 3_600 + 1_800)
    met.check_out(visit.id, EVENING + 13 * 3_600 + 1_800)
    [warning] = met.ingest_trace_warnings(package, trusted, later).new_venue_exposures
    assert warning.description == "Waste Management Inc"
    assert warning.overlap_minutes == 30
