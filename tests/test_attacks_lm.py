"""LM membership scores (lowrankdp.attacks.lm): hand-computed values, direction, bad inputs."""

import math
import zlib

import numpy as np
import pytest

from lowrankdp.attacks import lm
from lowrankdp.metrics import auc

# Two records with hand-picked token log-probabilities (natural log).
A = np.log([0.5, 0.25, 0.8, 0.1])
B = np.log([0.9, 0.6])


def test_loss_score_is_mean_log_prob():
    s = lm.loss_score([A, B])
    assert s[0] == pytest.approx((math.log(0.5) + math.log(0.25) + math.log(0.8) + math.log(0.1)) / 4)
    assert s[1] == pytest.approx((math.log(0.9) + math.log(0.6)) / 2)


def test_zlib_score_divides_by_compressed_size():
    texts = ["hello hello hello hello", "x7Qz!"]
    z = [len(zlib.compress(t.encode("utf-8"))) for t in texts]
    s = lm.zlib_score([A, B], texts)
    assert s[0] == pytest.approx(A.mean() / z[0])
    assert s[1] == pytest.approx(B.mean() / z[1])
    assert lm.zlib_size("héllo") == len(zlib.compress("héllo".encode("utf-8")))


def test_min_k_takes_lowest_fraction():
    # n = 4: k = 0.5 -> the 2 lowest: log 0.1 and log 0.25
    assert lm.min_k_score([A], k=0.5)[0] == pytest.approx((math.log(0.1) + math.log(0.25)) / 2)
    # k = 0.2 -> floor(0.8) = 0 -> at least one token: the minimum
    assert lm.min_k_score([A], k=0.2)[0] == pytest.approx(math.log(0.1))
    # k = 1 -> all tokens = LOSS score
    assert lm.min_k_score([A, B], k=1.0) == pytest.approx(lm.loss_score([A, B]))
    # k = 0.6 with n = 5 -> exactly 3 tokens (no float round-down to 2)
    five = np.log([0.1, 0.2, 0.3, 0.4, 0.5])
    assert lm.min_k_score([five], k=0.6)[0] == pytest.approx(np.log([0.1, 0.2, 0.3]).mean())


def test_reference_score_is_mean_difference():
    ref_a = np.log([0.25, 0.25, 0.4, 0.2])
    ref_b = np.log([0.3, 0.6])
    s = lm.reference_score([A, B], [ref_a, ref_b])
    assert s[0] == pytest.approx(np.mean(A - ref_a))
    assert s[1] == pytest.approx(np.mean(np.log([3.0, 1.0])))


def test_higher_score_means_member():
    """Members with likelier tokens score higher under every attack; AUC 1 on a separable fixture and
    about one half on identical sets."""
    rng = np.random.default_rng(0)
    members = [np.log(rng.uniform(0.6, 1.0, size=rng.integers(5, 20))) for _ in range(30)]
    nonmembers = [np.log(rng.uniform(0.01, 0.5, size=rng.integers(5, 20))) for _ in range(30)]
    ref_in = [np.log(np.full(a.size, 0.3)) for a in members]
    ref_out = [np.log(np.full(a.size, 0.3)) for a in nonmembers]
    texts_in = ["same text"] * 30
    texts_out = ["same text"] * 30
    pairs = {
        "loss": (lm.loss_score(members), lm.loss_score(nonmembers)),
        "zlib": (lm.zlib_score(members, texts_in), lm.zlib_score(nonmembers, texts_out)),
        "min_k": (lm.min_k_score(members), lm.min_k_score(nonmembers)),
        "reference": (lm.reference_score(members, ref_in), lm.reference_score(nonmembers, ref_out)),
    }
    assert set(pairs) == set(lm.ATTACKS)
    for name, (s_in, s_out) in pairs.items():
        assert auc(s_in, s_out) == 1.0, name
    assert auc(lm.loss_score(members), lm.loss_score(members)) == 0.5


def test_reference_removes_text_difficulty():
    """Two records the target finds equally easy relative to the reference tie, whatever their raw loss."""
    easy = np.log([0.9, 0.9])
    hard = np.log([0.1, 0.1])
    s = lm.reference_score([easy, hard], [easy - 1.0, hard - 1.0])
    assert s[0] == pytest.approx(s[1]) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "bad, match",
    [
        ([], "at least one record"),
        ([np.array([])], "no tokens"),
        ([np.array([-1.0, np.nan])], "finite"),
        ([np.array([-1.0, 0.5])], "<= 0"),
        ([np.zeros((2, 2))], "1-D"),
        (np.array([-1.0, -2.0]), "single 1-D array"),
        (5, "sequence of 1-D arrays"),
    ],
)
def test_bad_logprobs(bad, match):
    with pytest.raises(ValueError, match=match):
        lm.loss_score(bad)


def test_bad_other_arguments():
    with pytest.raises(ValueError, match="k must be in"):
        lm.min_k_score([A], k=0.0)
    with pytest.raises(ValueError, match="k must be in"):
        lm.min_k_score([A], k=1.5)
    with pytest.raises(ValueError, match="one entry per record"):
        lm.zlib_score([A, B], ["only one"])
    with pytest.raises(ValueError, match="single str"):
        lm.zlib_score([A], "text")
    with pytest.raises(ValueError, match="same tokens"):
        lm.reference_score([A], [B])
    with pytest.raises(ValueError, match="one entry per record"):
        lm.reference_score([A, B], [A])


def test_float32_slack_is_clipped():
    """log-softmax in float32 may give +1e-7 for a certain token; accepted and clipped to 0."""
    s = lm.loss_score([np.array([1e-7, -1.0])])
    assert s[0] == pytest.approx(-0.5)
