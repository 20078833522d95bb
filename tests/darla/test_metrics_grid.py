"""``darla.metrics``: the memoised encoder used on grid datasets gives the direct encoder's codes."""

import numpy as np

from darla.metrics import memoised_representation


def test_memoised_representation_matches_direct_and_encodes_only_unknown_images():
    grid = np.arange(6 * 2, dtype=np.uint8).reshape(6, 1, 2, 1) * 20
    calls = []

    def represent(images):
        calls.append(len(images))
        return images.reshape(len(images), -1).astype(np.float64) * 2.0

    memo = memoised_representation(represent, grid, batch_size=4)
    assert calls == [4, 2]  # the grid, encoded once in batches
    calls.clear()
    known = grid[[5, 0, 5, 3]]
    np.testing.assert_array_equal(memo(known), represent(known))
    assert calls == [4]  # only the direct call above encoded anything
    calls.clear()
    unknown = np.full((2, 1, 2, 1), 255, np.uint8)
    np.testing.assert_array_equal(memo(np.concatenate([known[:1], unknown])),
                                  np.concatenate([represent(known[:1]), represent(unknown)]))
    assert calls == [2, 1, 2]  # memo encoded the 2 unknown images; then the two reference calls
