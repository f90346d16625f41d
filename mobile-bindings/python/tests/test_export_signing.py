"""Health-authority tooling: exposure keys and signed export files."""

import pytest

from kith_mobile import (
    ExportSigner,
    ExposureKey,
    KithError,
    PublishedKey,
    ReportType,
    TrustedPublicKey,
)

KEY = bytes(range(16))
START = 2_833_200  # a multiple of 144: the start of a UTC day


def published(key, days_since_onset=0):
    return PublishedKey(key=key, report_type=ReportType.CONFIRMED_TEST, days_since_onset=days_since_onset)


def test_exposure_key_round_trips_and_hides_its_bytes():
    key = ExposureKey.from_bytes(KEY, START, 144)
    assert key.expose_secret() == KEY
    assert key.rolling_start_interval_number() == START
    assert key.rolling_period() == 144
    for text in (repr(key), str(key)):
        assert "redacted" in text
    for text in (repr(key), str(key), repr(published(key)), str(published(key))):
        assert KEY.hex() not in text
        assert repr(KEY) not in text


@pytest.mark.parametrize(
    "data, start, period",
    [(KEY[:15], START, 144), (KEY + b"\0", START, 144), (KEY, START, 0), (KEY, START, 145)],
    ids=["15 bytes", "17 bytes", "period 0", "period 145"],
)
def test_exposure_key_rejects_what_gaen_forbids(data, start, period):
    with pytest.raises(KithError.InvalidKey):
        ExposureKey.from_bytes(data, start, period)


def test_signer_writes_a_zip_with_its_public_key_published():
    signer = ExportSigner.generate("310", "v1")
    trusted = signer.trusted_public_key()
    assert trusted == TrustedPublicKey(
        key_id="310", key_version="v1", public_key=trusted.public_key
    )
    assert trusted.public_key.startswith("-----BEGIN PUBLIC KEY-----")
    assert "PRIVATE" not in repr(signer)

    key = ExposureKey.from_bytes(KEY, START, 144)
    zip_bytes = signer.write_export([published(key)], [], "US", START * 600, START * 600 + 86_400)
    assert zip_bytes[:4] == b"PK\x03\x04"
    # Deterministic (RFC 6979 signatures, fixed zip timestamps).
    assert zip_bytes == signer.write_export([published(key)], [], "US", START * 600, START * 600 + 86_400)


def test_signer_rejects_days_since_onset_out_of_range():
    signer = ExportSigner.generate("310", "v1")
    key = ExposureKey.from_bytes(KEY, START, 144)
    with pytest.raises(KithError.InvalidKey):
        signer.write_export([published(key, days_since_onset=15)], [], "US", 0, 1)


def test_signer_from_a_malformed_pem_raises_invalid_signing_key():
    with pytest.raises(KithError.InvalidSigningKey):
        ExportSigner.from_pkcs8_pem("310", "v1", "-----BEGIN PRIVATE KEY-----\nnope\n")


# A throw-away key made for this test with
# `openssl ecparam -genkey -name prime256v1 -noout | openssl pkcs8 -topk8 -nocrypt`
# and its public half from `openssl pkey -pubout`.
TEST_PRIVATE_KEY_PEM = """-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQggrYUKHWb7iQbCG82
RiwXLhAYPnaXt5nAMQ7FTwMgoNShRANCAAR9t/36SxLux7nAEQOzQJm4h46T7jBl
mnlVuWOlP19hRaYK24g9KhK0o5N1jBuMvJHSZjQkhontGjnmJkB8C7Kq
-----END PRIVATE KEY-----
"""
TEST_PUBLIC_KEY_PEM = """-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEfbf9+ksS7se5wBEDs0CZuIeOk+4w
ZZp5VbljpT9fYUWmCtuIPSoStKOTdYwbjLyR0mY0JIaJ7Ro55iZAfAuyqg==
-----END PUBLIC KEY-----
"""


def test_signer_from_an_openssl_pem_publishes_the_matching_public_key():
    signer = ExportSigner.from_pkcs8_pem("310", "v1", TEST_PRIVATE_KEY_PEM)
    assert signer.trusted_public_key().public_key.strip() == TEST_PUBLIC_KEY_PEM.strip()
