from __future__ import annotations

import json

import pytest

from fer_models.classes import FER7, canonical_class_name, check_same_classes, read_classes_json, write_classes_json
from fer_models.errors import ArtifactError, ClassListMismatch
from fer_models.model_card import load_model_card, save_model_card, ModelCard


def test_canonical_order_and_case():
    assert FER7 == ("Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral")
    assert canonical_class_name("  surprise ") == "Surprise"
    with pytest.raises(ValueError):
        canonical_class_name("contempt")


def test_classes_json_roundtrip_and_mismatch(tmp_path):
    write_classes_json(tmp_path)
    assert json.loads((tmp_path / "classes.json").read_text()) == {"classes": list(FER7), "dataset": "fer2013"}
    assert read_classes_json(tmp_path) == list(FER7)
    with pytest.raises(ClassListMismatch, match="different order"):
        check_same_classes(FER7, list(FER7[1:]) + [FER7[0]], tmp_path / "x.json")
    with pytest.raises(ClassListMismatch, match="differ"):
        check_same_classes(FER7, list(FER7[:6]), tmp_path / "x.json")
    (tmp_path / "dup.json").write_text('{"classes": ["Happy", "happy"]}')
    with pytest.raises(ArtifactError, match="duplicates"):
        read_classes_json(tmp_path / "dup.json")


def _card(**over):
    d = dict(classes=list(FER7), input_size=64, channels=1, color="gray", mean=[0.5], std=[0.5], clahe=True,
             align_eyes=True, crop_margin=0.3, backbone="mobilenetv3_large_100", index_fingerprint="ab", metrics={})
    d.update(over)
    return d


def test_model_card_roundtrip(tmp_path):
    save_model_card(tmp_path, ModelCard(**_card(model_id="m")))
    card = load_model_card(tmp_path)
    assert card.input_size == 64 and card.model_id == "m" and card.classes == list(FER7)


@pytest.mark.parametrize("over, message", [
    ({"channels": 2}, "channels must be 1 or 3"),
    ({"color": "rgb"}, "color 'rgb' needs channels 3"),
    ({"mean": [0.5, 0.5, 0.5]}, "mean must list one number per channel"),
    ({"std": [0.0]}, "std must be positive"),
    ({"input_size": "64"}, "input_size must be an integer"),
    ({"crop_margin": 5}, "crop_margin must lie in"),
])
def test_model_card_refuses_inconsistent_cards(tmp_path, over, message):
    (tmp_path / "model_card.json").write_text(json.dumps(_card(**over)))
    with pytest.raises(ArtifactError, match=message) as info:
        load_model_card(tmp_path)
    assert "model_card.json" in str(info.value)


def test_model_card_missing_keys(tmp_path):
    d = _card()
    del d["backbone"]
    (tmp_path / "model_card.json").write_text(json.dumps(d))
    with pytest.raises(ArtifactError, match=r"lacks required keys \['backbone'\]"):
        load_model_card(tmp_path)
