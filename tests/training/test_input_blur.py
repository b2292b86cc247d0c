"""input_blur: val/test (sharp) rows are low-passed, the already-blurred Training rows are not."""

from __future__ import annotations

import numpy as np

from fer_models.face_crop import prepare_face
from training.data import FERDataset, make_crop_spec
from training.index import load_index


def test_blur_applies_to_val_and_test_rows_only(train_index_dir):
    index = load_index(train_index_dir)
    sharp = make_crop_spec(48, clahe=False)
    blurred = make_crop_spec(48, clahe=False, blur_sigma=0.067)
    rows = np.concatenate([index.positions("train")[:3], index.positions("val")[:3], index.positions("test")[:3]])
    ds_blur = FERDataset(index, blurred, positions=rows)
    ds_sharp = FERDataset(index, sharp, positions=rows)
    for i, pos in enumerate(rows):
        a, b = ds_blur[i][0].numpy(), ds_sharp[i][0].numpy()
        if index.splits[pos] == "train":
            assert np.array_equal(a, b)
        else:
            assert np.allclose(a, prepare_face(ds_blur.image(i), blurred)) and not np.allclose(a, b)
