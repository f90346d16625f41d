"""The health authorities' real risk configurations through the bindings, as published
(../shared/gaen/configs/), each scoring a meeting as that authority's app did, and the
explanation an app shows a user who disputes an alert ("why is this day risky?")."""

import json

import pytest

from kith_mobile import ExportSigner, ExposureEngine, KithError, ModelKind, ReportType
from meeting import DAY, MEETING, TX_POWER, hear, published

CWA_FILES = [
    "configs/cwa_exposure-configuration.yaml",
    "configs/cwa_risk-calculation-parameters.yaml",
    "configs/cwa_transmission-risk-encoding.yaml",
]


def exposure(scans, days_since_onset=0, report_type=ReportType.CONFIRMED_TEST, configuration=None):
    """Bob, with `configuration` set, hears Alice in `scans` scans (meeting.hear); Alice's keys
    reach him in a file."""
    alice, bob = ExposureEngine.open_in_memory(TX_POWER), ExposureEngine.open_in_memory(TX_POWER)
    if configuration is not None:
        bob.set_risk_configuration(configuration)
    hear(alice, bob, scans)
    signer = ExportSigner.generate("310", "v1")
    keys = published(alice.keys_to_upload(MEETING + 3_600), report_type, days_since_onset)
    file = signer.write_export(keys, [], "DE", MEETING, MEETING + DAY)
    bob.ingest_export(file, [signer.trusted_public_key()], MEETING + 3_600)
    return bob


def test_the_preset_alerts_at_15_weighted_minutes_and_explains_why():
    bob = exposure(scans=6)  # 120 + 5 × 300 = 1 620 s at 40 dB ("near", 100 %)
    assert bob.risk_model() == ModelKind.GAEN
    explanation = bob.explain_risk(MEETING + 3_600)
    assert explanation.model == ModelKind.GAEN
    assert explanation.risk_level == 1
    [day] = explanation.days
    assert day.day == MEETING // DAY and day.risk_level == 1
    [window] = day.windows
    assert window.start_unix_seconds == MEETING
    near = next(b for b in window.buckets if b.name.startswith("near"))
    assert (near.seconds, near.weight) == (1_620, 1.0)
    assert sum(b.seconds for b in window.buckets) == 1_620
    assert window.score == pytest.approx(1_620) and window.counted and window.reason is None
    reached = [t for t in day.thresholds if t.reached]
    assert [(t.value, t.threshold, t.risk_level) for t in reached] == [(1_620, 900, 1)]

    # Two minutes: recorded, explained, and the threshold missed by 780 weighted seconds.
    short = exposure(scans=1).explain_risk(MEETING + 3_600)
    assert short.risk_level is None
    [check] = [t for t in short.days[0].thresholds if t.threshold == 900]
    assert (check.value, check.reached) == (120, False)


def test_enx_configuration_in_both_forms(gaen_text):
    sample = json.loads(gaen_text("configs/enx_sample_config_risk_subset.json"))["config_subset"]
    for text in (json.dumps(sample), json.dumps({"config": sample})):
        bob = exposure(scans=6, configuration=text)
        assert bob.risk_model() == ModelKind.GAEN
        # Google's sample: confirmedTestPerDaySumERVThreshold_1 2 700 is missed by 1 620,
        # confirmedTestPerDaySumERVThreshold_2 1 is reached: level 2.
        summary = bob.exposure_summary(MEETING + 3_600)
        assert summary.risk_level == 2
        checks = {t.name: t for t in bob.explain_risk(MEETING + 3_600).days[0].thresholds}
        assert (checks["confirmedTestPerDaySumERVThreshold_1"].value,
                checks["confirmedTestPerDaySumERVThreshold_1"].reached) == (1_620, False)
        assert checks["confirmedTestPerDaySumERVThreshold_2"].reached


def test_corona_warn_app_configuration_as_published(gaen_text):
    text = "\n---\n".join(gaen_text(name) for name in CWA_FILES)
    # CWA (cwa-app-tech-spec, exposure windows): a confirmed test (report-type offset 6) two
    # days after onset (infectiousness HIGH, offset 2) is transmission risk level 8, value
    # 8 × 0.2 = 1.6. At 40 dB (attenuation 0..63: weight 0.8), 27 minutes are
    # 27 × 0.8 × 1.6 = 34.56 normalized minutes ≥ 13: high risk.
    bob = exposure(scans=6, days_since_onset=2, configuration=text)
    assert bob.risk_model() == ModelKind.CWA
    explanation = bob.explain_risk(MEETING + 3_600)
    assert explanation.model == ModelKind.CWA
    [window] = explanation.days[0].windows
    assert window.score == pytest.approx(34.56)
    assert bob.exposure_summary(MEETING + 3_600).risk_level == 1
    # Seven minutes: 7 × 0.8 × 1.6 = 8.96 < 13: low risk, no alert.
    short = exposure(scans=2, days_since_onset=2, configuration=text)
    assert short.explain_risk(MEETING + 3_600).days[0].windows[0].score == pytest.approx(8.96)
    assert short.exposure_summary(MEETING + 3_600).risk_level is None
    # Two minutes: under CWA's 5-minute filter, dropped, and the explanation says so.
    tiny = exposure(scans=1, days_since_onset=2, configuration=text)
    [dropped] = tiny.explain_risk(MEETING + 3_600).days[0].windows
    assert not dropped.counted and dropped.reason
    # Older than CWA's maximum encounter age (10 days): no longer counted.
    assert bob.exposure_summary(MEETING + 11 * DAY).risk_level is None


def test_canadian_v1_configuration_as_published(gaen_text):
    raw = gaen_text("configs/canada_covidalert_v1_config_1.2.6.json.txt")
    # The file's first line is our note on its origin; the rest is COVID Alert's file.
    text = "".join(line for line in raw.splitlines() if not line.startswith("//"))
    # COVID Alert (checkIfExposedV2): seconds at ≤ 50 dB plus ≤ 62 dB must exceed
    # minimumExposureDurationMinutes × 60 = 900. 1 620 s at 40 dB does.
    bob = exposure(scans=6, configuration=text)
    assert bob.risk_model() == ModelKind.GAEN_V1
    assert bob.exposure_summary(MEETING + 3_600).risk_level == 1
    # v1 risk score: 40 dB is attenuation level 5 (33 < a ≤ 51), every other value 1.
    assert bob.explain_risk(MEETING + 3_600).days[0].windows[0].score == 5.0
    # 420 s does not exceed 900.
    assert exposure(scans=2, configuration=text).exposure_summary(MEETING + 3_600).risk_level is None


def test_a_bad_configuration_names_the_problem_and_keeps_the_one_in_use(gaen_text):
    bob = exposure(scans=6)
    for text, says in [
        ('{"attenuationImediateWeight": 100}', "attenuationImediateWeight"),
        ('{"config": {"attenuationNearWeight": 300}}', "attenuationNearWeight"),
        ("[1, 2]", "not an object"),
        ("risk: high", "none of Corona-Warn-App's"),
    ]:
        with pytest.raises(KithError.InvalidRiskConfiguration) as error:
            bob.set_risk_configuration(text)
        assert says in str(error.value), str(error.value)
    cwa_without_exposure_configuration = gaen_text(CWA_FILES[1])
    with pytest.raises(KithError.InvalidRiskConfiguration, match="missing field"):
        bob.set_risk_configuration(cwa_without_exposure_configuration)
    assert bob.risk_model() == ModelKind.GAEN
    assert bob.exposure_summary(MEETING + 3_600).risk_level == 1


def test_the_configuration_set_survives_reopening_the_store(tmp_path, gaen_text):
    text = "\n---\n".join(gaen_text(name) for name in CWA_FILES)
    path = str(tmp_path / "bob.db")
    ExposureEngine.open(path, TX_POWER).set_risk_configuration(text)
    assert ExposureEngine.open(path, TX_POWER).risk_model() == ModelKind.CWA


def test_a_configuration_named_explicitly_is_read_as_that_family(gaen_text):
    cwa = "\n---\n".join(gaen_text(name) for name in CWA_FILES)
    bob = ExposureEngine.open_in_memory(TX_POWER)
    bob.set_risk_configuration_as(ModelKind.CWA, cwa)
    assert bob.risk_model() == ModelKind.CWA
    # Named as another family, the text is refused by that family's rules.
    for kind, text in [(ModelKind.GAEN, cwa), (ModelKind.GAEN_V1, '{"perDaySumERVThreshold_1": 900}'),
                       (ModelKind.CWA, '{"perDaySumERVThreshold_1": 900}')]:
        with pytest.raises(KithError.InvalidRiskConfiguration):
            bob.set_risk_configuration_as(kind, text)
    assert bob.risk_model() == ModelKind.CWA
