"""BlendModel: two models' scores on one scale per model, so exclusions never reorder the rest."""

from __future__ import annotations

import numpy as np
from scipy import sparse

from recsys_cli.models.blend import BlendModel
from recsys_cli.models.itembased import ItemKNNModel
from recsys_cli.models.popularity import PopularityModel

from .test_contract import checkerboard


def test_excluding_the_top_items_keeps_the_order_of_the_rest():
    dataset = checkerboard()
    blend = BlendModel(ItemKNNModel(), PopularityModel(), 0.5).fit(dataset)
    users = np.arange(dataset.n_users)
    before, _ = blend.recommend(users, k=6)
    top_two = sparse.csr_matrix(
        (np.ones(2 * len(users)), (np.repeat(users, 2), before[:, :2].ravel())), shape=(len(users), dataset.n_items)
    )
    after, _ = blend.recommend(users, k=4, exclude=top_two)
    np.testing.assert_array_equal(after, before[:, 2:6])


def test_weight_moves_the_list_from_one_model_to_the_other():
    dataset = checkerboard()
    users = np.arange(dataset.n_users)
    knn, popular = ItemKNNModel().fit(dataset), PopularityModel().fit(dataset)
    only_knn = BlendModel(knn, popular, 0.0).calibrate(users, dataset.history())
    only_popular = BlendModel(knn, popular, 1.0).calibrate(users, dataset.history())
    np.testing.assert_array_equal(only_knn.recommend(users, k=3)[0], knn.recommend(users, k=3)[0])
    np.testing.assert_array_equal(only_popular.recommend(users, k=3)[0], popular.recommend(users, k=3)[0])
    assert only_knn.scales[0] > 0 and only_knn.scales[1] == 1.0  # popularity's best score is 1 by construction
