"""The Omni model's architecture on real front-end features: shapes, masking, routing, fusion, checkpoints."""
import itertools
import json

import numpy as np
import pytest
import skimage.data
import torch

from omni_agent.model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from omni_agent.model.labels import LabelSpace
from omni_agent.model.omni import MODALITIES, OmniConfig, OmniModel, pad_tokens

GOFORWARD = "/usr/share/pocketsphinx/test/data/goforward.raw"
SUBSETS = [s for r in range(1, 4) for s in itertools.combinations(MODALITIES, r)]
LABELS = LabelSpace.from_vocabulary(["apple", "cup", "book"], ["kitchen", "bedroom"]).to_dict()


@pytest.fixture(scope="module")
def real_features():
    """Front-end tokens of a real recording, two real commands and a real photo."""
    from omni_agent.model.frontends import create_frontend
    torch.manual_seed(0)
    samples = np.fromfile(GOFORWARD, dtype=np.int16).astype(np.float32) / 32768
    audio = create_frontend("audio", model="base", pool=4).encode(samples)
    texts = create_frontend("text").encode_batch(["go forward ten meters", "bring me the cup"])
    coffee = skimage.data.coffee()
    image = create_frontend("image").encode(coffee, boxes=np.array([[150, 50, 450, 300], [0, 0, 100, 100]]))
    return {"audio": [audio.tokens, audio.tokens[: len(audio.tokens) // 2]],
            "text": [t.tokens for t in texts],
            "image": [image.tokens, image.tokens[:2]],
            "boxes": image.boxes / np.array([coffee.shape[1], coffee.shape[0]] * 2, np.float32)}


def batch_of(real, subset, rows=2, missing=None):
    """Features of `subset` for `rows` rows; `missing` = (modality, row) leaves that row without it."""
    dims = {"audio": real["audio"][0].shape[1], "text": real["text"][0].shape[1], "image": real["image"][0].shape[1]}
    features, boxes = {}, None
    for modality in subset:
        sequences = [real[modality][r % 2] for r in range(rows)]
        if missing and missing[0] == modality:
            sequences[missing[1]] = None
        features[modality] = pad_tokens(sequences, dims[modality])
        if modality == "image":
            boxes = torch.zeros(rows, features["image"][0].shape[1], 4)
            boxes[:, :2] = torch.as_tensor(real["boxes"][:2])
    return features, boxes


def make_model(real, **options):
    torch.manual_seed(0)
    dims = {"audio": real["audio"][0].shape[1], "text": real["text"][0].shape[1], "image": real["image"][0].shape[1]}
    return OmniModel(OmniConfig(feature_dims=dims, labels=LABELS, **options)).eval()


@pytest.mark.parametrize("subset", SUBSETS, ids=["+".join(s) for s in SUBSETS])
@pytest.mark.parametrize("variant", [{}, {"routing": "concat", "fusion": "uniform", "adapter": "full"}],
                         ids=["dar", "baseline"])
def test_model_every_modality_subset(real_features, subset, variant):
    model = make_model(real_features, **variant)
    features, boxes = batch_of(real_features, subset)
    with torch.inference_mode():
        out = model(features, boxes)
    for slot, classes in LABELS.items():
        assert out.logits[slot].shape == (2, len(classes))
        assert torch.isfinite(out.logits[slot]).all()
    assert set(out.embeddings) == set(subset)
    for embedding in out.embeddings.values():
        assert embedding.shape == (2, model.config.projection_dim)
        assert torch.allclose(embedding.norm(dim=-1), torch.ones(2), atol=1e-5)
    present = [m in subset for m in MODALITIES]
    assert out.present.tolist() == [present, present]
    grounded = "image" in subset and len(subset) > 1      # an image plus a language modality
    assert (out.grounding is not None) == grounded
    if out.grounding is not None:
        assert torch.isfinite(out.grounding[:, 1:3]).all()
        assert out.grounding[0].argmax() in (1, 2), "token 0 (the whole image) must never be chosen as a region"


@pytest.mark.parametrize("subset", SUBSETS, ids=["+".join(s) for s in SUBSETS])
def test_routing_sums_to_one(real_features, subset):
    model = make_model(real_features)
    missing = (subset[0], 1) if len(subset) > 1 else None
    features, boxes = batch_of(real_features, subset, missing=missing)
    with torch.inference_mode():
        out = model(features, boxes)
    for row in range(2):
        present = out.present[row]
        routing = out.routing[row]                     # (query modality, key modality)
        for query in range(len(MODALITIES)):
            assert routing[query].sum().item() == pytest.approx(1.0, abs=1e-5)
            assert (routing[query][~present] == 0).all(), "absent modalities get no routing weight"
        assert out.importance[row].sum().item() == pytest.approx(1.0, abs=1e-5)
        assert (out.importance[row][~present] == 0).all()
    if missing:
        assert not out.present[1, MODALITIES.index(missing[0])]


@pytest.mark.parametrize("variant", [{}, {"routing": "concat"}, {"fusion": "uniform"}], ids=["dar", "concat", "uniform"])
def test_model_absent_modality_changes_nothing(real_features, variant):
    """Padding a missing modality must not change the result: the routing handles it."""
    model = make_model(real_features, **variant)
    mixed, boxes = batch_of(real_features, ("audio", "image"), missing=("image", 1))
    alone, _ = batch_of(real_features, ("audio",))
    with torch.inference_mode():
        out_mixed = model(mixed, boxes)
        out_alone = model(alone)
    for slot in LABELS:
        assert torch.allclose(out_mixed.logits[slot][1], out_alone.logits[slot][1], atol=1e-4), slot
        assert not torch.allclose(out_mixed.logits[slot][0], out_alone.logits[slot][0], atol=1e-4), \
            "the row with the image must depend on it"


def test_adapters_shared_have_fewer_parameters(real_features):
    shared = make_model(real_features).parameter_counts()
    full = make_model(real_features, adapter="full").parameter_counts()
    assert shared["routing"] < full["routing"] / 2
    assert shared["adapter"] < full["adapter"]
    assert shared["total"] < full["total"]


def test_model_bad_inputs(real_features):
    model = make_model(real_features)
    with pytest.raises(ValueError, match="no modality given"):
        model({})
    with pytest.raises(ValueError, match="not in this model"):
        model({"depth": (torch.zeros(1, 2, 3), torch.ones(1, 2, dtype=torch.bool))})
    with pytest.raises(ValueError, match=r"expected \(batch, n, 512\)"):
        model({"audio": (torch.zeros(1, 4, 384), torch.ones(1, 4, dtype=torch.bool))})
    with pytest.raises(ValueError, match="at most 512"):
        model({"audio": (torch.zeros(1, 600, 512), torch.ones(1, 600, dtype=torch.bool))})
    with pytest.raises(ValueError, match="routing='attention'"):
        OmniConfig(labels=LABELS, routing="attention")


def test_gradient_checkpointing_same_gradients(real_features):
    features, boxes = batch_of(real_features, MODALITIES)
    grads = []
    for checkpointing in (False, True):
        model = make_model(real_features, gradient_checkpointing=checkpointing, dropout=0.0).train()
        loss = sum(l.sum() for l in model(features, boxes).logits.values())
        loss.backward()
        grads.append(model.encoder.layers[0].linear1.weight.grad.clone())
    assert torch.allclose(grads[0], grads[1], atol=1e-5)


def test_checkpoint_round_trip(real_features, tmp_path):
    model = make_model(real_features, adapter="full", lora_rank=4)
    save_checkpoint(model, tmp_path / "ckpt", {"note": "test"})
    loaded = load_checkpoint(tmp_path / "ckpt")
    assert loaded.config == model.config
    assert loaded.training_info == {"note": "test"}
    features, boxes = batch_of(real_features, MODALITIES)
    with torch.inference_mode():
        a, b = model(features, boxes), loaded(features, boxes)
    for slot in LABELS:
        assert torch.equal(a.logits[slot], b.logits[slot])


def test_checkpoint_errors(real_features, tmp_path):
    with pytest.raises(CheckpointError, match="does not exist; train one with 'omni-agent train'"):
        load_checkpoint(tmp_path / "nowhere")
    model = make_model(real_features)
    folder = save_checkpoint(model, tmp_path / "ckpt")
    (folder / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model.safetensors is missing"):
        load_checkpoint(folder)
    save_checkpoint(model, folder)
    config = json.loads((folder / "config.json").read_text())
    config["config"]["width"] = 64
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="shape mismatch"):
        load_checkpoint(folder)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not a valid Omni config"):
        load_checkpoint(folder)
    (folder / "config.json").unlink()
    with pytest.raises(CheckpointError, match="config.json is missing"):
        load_checkpoint(folder)
