"""The Rogan-Gladen correction and its interval, on numbers worked out by hand."""

import pytest

from funreason_refine.calibrate.correction import Share, Undefined, correct

# The judge caught 8 of 10 labelled discards (sensitivity 0.8) and let 18 of 20 labelled keeps
# through (specificity 0.9); the run discarded 300 of 1,000 records.
#   j = 0.8 + 0.9 - 1 = 0.7; bad share pi = (0.3 + 0.9 - 1) / 0.7 = 2/7
#   bad among kept = 0.2 * (2/7) / 0.7 = 4/49; good among discarded = 0.1 * (5/7) / 0.3 = 5/21
# Check: 285.7 bad records, 0.8 of them (228.6) discarded, 57.1 kept: 57.1 / 700 = 4/49;
# 714.3 good, 0.1 of them (71.4) discarded: 228.6 + 71.4 = 300, and 71.4 / 300 = 5/21.
#
# The interval is centred on the same formula at the Agresti-Coull proportions, z = 1.959964
# (z^2 = 3.841459), where the derivatives and variances are taken:
#   q:  (300 + 1.920730) / 1003.841459 = 0.300767, var 0.300767 * 0.699233 / 1003.841459 = 0.00020950
#   se: (8 + 1.920730) / 13.841459 = 0.716738,     var 0.716738 * 0.283262 / 13.841459 = 0.014668
#   sp: (18 + 1.920730) / 23.841459 = 0.835548,    var 0.835548 * 0.164452 / 23.841459 = 0.0057633
#   j = 0.552286, pi = 0.136315 / 0.552286 = 0.246821, centre (1 - se) pi / (1 - q) = 0.099989
# Bad among kept, v = (1 - se) pi / (1 - q), with pi_q = 1/j = 1.810656, pi_se = -pi/j = -0.446906,
# pi_sp = (1 - pi)/j = 1.363750, 1 - q = 0.699233:
#   dv/dq = 0.283262 (1.810656 + 0.246821 / 0.699233) / 0.699233 = 0.876500
#   dv/dse = (-0.246821 + 0.283262 * -0.446906) / 0.699233 = -0.534032
#   dv/dsp = 0.283262 * 1.363750 / 0.699233 = 0.552462
#   var = 0.768252 * 0.00020950 + 0.285190 * 0.014668 + 0.305214 * 0.0057633 = 0.0061032, sd 0.078123
#   half-width 1.959964 * 0.078123 = 0.153118: 0.099989 - 0.153118 < 0 -> 0; 0.099989 + 0.153118 = 0.253107
# Halving: the labels' part 0.0059422 must fall to 0.0061032/4 - 0.00016095 = 0.0013649, 4.3537 times
# less: 3.3537 * 30 labels = 100.6 -> 101 more.
RUN, SENSITIVITY, SPECIFICITY = Share(300, 1000), Share(8, 10), Share(18, 20)


def test_a_hand_computed_example():
    c = correct(RUN, SENSITIVITY, SPECIFICITY)
    assert c.youden == pytest.approx(0.7)
    assert c.bad_share.value == pytest.approx(2 / 7)
    kept = c.bad_among_kept
    assert kept.value == pytest.approx(4 / 49)
    assert (kept.low, kept.high) == (0.0, pytest.approx(0.253107, abs=1e-5))
    assert kept.labels_to_halve == 101 and not kept.clipped
    assert kept.from_discards == pytest.approx(0.285190 * 0.014668 / 0.0059422, abs=1e-4)
    assert c.good_among_discarded.value == pytest.approx(5 / 21)
    assert c.notes == []


def test_a_perfect_judge_leaves_nothing_bad_but_an_interval_wider_than_nothing():
    c = correct(Share(300, 1000), Share(20, 20), Share(30, 30))
    assert c.bad_share.value == pytest.approx(0.3) and c.youden == 1
    kept, let_go = c.bad_among_kept, c.good_among_discarded
    assert (kept.value, kept.low, let_go.value, let_go.low) == (0, 0, 0, 0)
    # At the adjusted proportions q 0.300767, se (20 + 1.920730) / 23.841459 = 0.919434 and
    # sp (30 + 1.920730) / 33.841459 = 0.943253: j = 0.862687, pi = 0.244020 / 0.862687 = 0.282861,
    # centre 0.080566 * 0.282861 / 0.699233 = 0.032591; derivatives 0.180168, -0.442311, 0.095781;
    # var = 0.032461 * 0.00020950 + 0.195639 * 0.0031070 + 0.0091740 * 0.0015817 = 0.00062916,
    # half-width 1.959964 * 0.025083 = 0.049162: up to 0.032591 + 0.049162 = 0.081753.
    assert kept.high == pytest.approx(0.081753, abs=1e-5)
    assert kept.high > 0 and let_go.high > 0


def test_a_judge_no_better_than_chance_has_no_correction():
    with pytest.raises(Undefined, match=r"no better than chance .* - 1 = 0\.00\).*undefined"):
        correct(RUN, Share(5, 10), Share(10, 20))
    with pytest.raises(Undefined, match="- 1 = -0.20"):
        correct(RUN, Share(4, 10), Share(8, 20))


def test_no_labelled_discards_or_no_decided_record_is_said():
    with pytest.raises(Undefined, match="no labelled discards"):
        correct(RUN, Share(0, 0), SPECIFICITY)
    with pytest.raises(Undefined, match="no labelled keeps"):
        correct(RUN, SENSITIVITY, Share(0, 0))
    with pytest.raises(Undefined, match="decided no record"):
        correct(Share(0, 0), SENSITIVITY, SPECIFICITY)


def test_too_few_labels_and_a_run_the_calibration_does_not_fit_are_noted():
    c = correct(Share(20, 1000), Share(3, 4), Share(18, 20))  # 2% discarded; false discards alone make 10%
    assert any("only 4 labelled discards" in n and "label more discards" in n for n in c.notes)
    assert any("discarded 2.0%, outside the 10.0%-75.0%" in n for n in c.notes)
    assert c.bad_share.value == 0 and c.bad_share.clipped
    assert c.bad_among_kept.value == 0 and c.good_among_discarded.value == 1


def test_a_run_that_kept_nothing_or_discarded_nothing_has_no_such_share():
    assert correct(Share(1000, 1000), SENSITIVITY, SPECIFICITY).bad_among_kept is None
    assert correct(Share(0, 1000), SENSITIVITY, SPECIFICITY).good_among_discarded is None


def test_labels_cannot_halve_what_the_run_itself_leaves_uncertain():
    # 10 records in the run, 10,000 labels each way: nearly all the uncertainty is the run's own.
    c = correct(Share(3, 10), Share(8000, 10000), Share(9000, 10000))
    assert c.bad_among_kept.labels_to_halve is None
    assert any("no number of labels alone halves the interval of bad among kept" in n for n in c.notes)


def test_a_judge_better_than_chance_only_by_luck_gets_the_whole_interval():
    # 1 of 1 discards caught, 10 of 40 keeps passed: j = 0.25, but at the adjusted proportions
    # (1 + 1.920730) / 4.841459 = 0.603 and (10 + 1.920730) / 43.841459 = 0.272 it is below 0.
    c = correct(RUN, Share(1, 1), Share(10, 40))
    kept = c.bad_among_kept
    assert (kept.low, kept.high, kept.labels_to_halve) == (0.0, 1.0, None)
    assert any("not clearly better than chance" in n for n in c.notes)
    assert not any("no number of labels" in n for n in c.notes)
