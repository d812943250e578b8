import numpy as np

from cmhbench.methods import PairedFeatures, create


def test_random_codes_carry_no_cross_modal_signal():
    rng = np.random.default_rng(0)
    X, Y = rng.random((2000, 5)), rng.random((2000, 4))
    model = create("random", seed=0).fit(PairedFeatures(X[:10], Y[:10]), 600)  # > 512 bits: several digests
    bi, bt = model.encode_image(X), model.encode_text(Y)
    assert abs((bi == bt).mean() - 0.5) < 0.01
    assert abs((bi == 1).mean() - 0.5) < 0.01
    assert not np.array_equal(model.encode_pair(X, Y), bi)
