"""quantbook.model: weight-only fake quantization of every nn.Linear, and its storage in bytes."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from quantbook import data, symmetric  # noqa: E402
from quantbook import model as qm  # noqa: E402


class Tiny(torch.nn.Module):
    """Two Linear layers (one without bias), a LayerNorm and an Embedding table."""

    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(10, 128)
        self.up = torch.nn.Linear(128, 256)
        self.norm = torch.nn.LayerNorm(256)
        self.down = torch.nn.Linear(256, 128, bias=False)

    def forward(self, ids):
        return self.down(torch.relu(self.norm(self.up(self.embed(ids)))))


def tiny(seed: int = 0) -> Tiny:
    torch.manual_seed(seed)
    model = Tiny()
    with torch.no_grad():
        # Rows of very different size: what per-channel scales are for.
        model.up.weight.mul_(torch.logspace(-2, 0, 256)[:, None])
        model.norm.weight.add_(0.1)
    return model


# Parameter counts of Tiny: embed 1280, up 32768 + 256 (bias), norm 256 + 256, down 32768.
OTHER_BYTES = 4 * (1280 + 256 + 256 + 256)  # 8192: everything but the two Linear weights
EXPECTED_LINEAR_BYTES = {
    "float32": 4 * 65536,  # 262144
    # int8: one byte per weight + one float16 scale per tensor
    "int8-per-tensor": 65536 + 2 * 2,
    # one scale per output row: 256 + 128 rows
    "int8-per-channel": 65536 + 2 * (256 + 128),
    "int4-per-channel": 32768 + 2 * (256 + 128),
    # up: 256 rows x 1 group of 128; down: 128 rows x 2 groups of 128
    "int4-group-128": 32768 + 2 * (256 * 1 + 128 * 2),
    # up: 256 x 4 groups; down: 128 x 8 groups
    "int4-group-32": 32768 + 2 * (256 * 4 + 128 * 8),
}


@pytest.mark.parametrize("scheme", sorted(EXPECTED_LINEAR_BYTES))
def test_sizes_are_exact(scheme):
    model = tiny()
    assert qm.linear_weight_bytes(model, scheme) == EXPECTED_LINEAR_BYTES[scheme]
    assert qm.model_size_bytes(model, scheme) == OTHER_BYTES + EXPECTED_LINEAR_BYTES[scheme]


def test_float32_size_is_the_parameter_bytes():
    model = tiny()
    total = sum(p.numel() * p.element_size() for p in model.parameters())
    assert qm.model_size_bytes(model, "float32") == total == 270336


def test_bits_per_weight_of_groups():
    # 4 bits + 16 bits / g: 4.5 for g = 32, 4.125 for g = 128.
    for g, bpw in ((32, 4.5), (128, 4.125)):
        assert qm.weight_storage_bytes((384, 1536), f"int4-group-{g}") * 8 / (384 * 1536) == bpw


def test_odd_rows_are_padded_to_whole_bytes():
    # int4 packs two codes per byte along each row; 3 values need 2 bytes per row.
    assert qm.weight_storage_bytes((5, 3), "int4-per-channel") == 5 * 2 + 2 * 5
    assert qm.weight_storage_bytes((5, 3), "int8-per-tensor") == 15 + 2


def test_group_size_must_divide_the_rows():
    with pytest.raises(ValueError, match="group_size=128"):
        qm.weight_storage_bytes((4, 96), "int4-group-128")
    with pytest.raises(ValueError, match="group_size"):
        qm.quantize_weight(np.ones((4, 96), np.float32), "int4-group-128")


def test_unknown_scheme_and_bad_input():
    with pytest.raises(ValueError, match="scheme must be one of"):
        qm.get_scheme("int3-per-row")
    with pytest.raises(ValueError, match="float32"):
        qm.quantize_weight(np.ones((2, 2), np.float32), "float32")
    with pytest.raises(ValueError, match="2-D"):
        qm.quantize_weight(np.ones(4, np.float32), "int8-per-tensor")
    with pytest.raises(TypeError, match="torch.nn.Module"):
        qm.linear_layers(np.ones((2, 2)))
    with pytest.raises(ValueError, match="bits"):
        qm.get_scheme(qm.Scheme("int16", 16))


def weight_error(model, scheme, layer=None) -> float:
    """Squared error summed over the Linear weights (or over one named layer)."""
    quantized = dict(qm.linear_layers(qm.quantize_model(model, scheme)))
    return sum(
        float(((m.weight - quantized[name].weight).detach() ** 2).sum())
        for name, m in qm.linear_layers(model)
        if layer in (None, name)
    )


def test_finer_granularity_is_closer():
    model = tiny()
    errors = {s: weight_error(model, s) for s in qm.SCHEMES}
    assert errors["float32"] == 0.0
    assert errors["int8-per-channel"] < errors["int8-per-tensor"]
    # In "up" the rows differ 100x in size: one scale per row beats one per tensor by far.
    up = {s: weight_error(model, s, "up") for s in ("int8-per-tensor", "int8-per-channel")}
    assert up["int8-per-channel"] < 0.2 * up["int8-per-tensor"]
    assert errors["int4-group-32"] < errors["int4-group-128"] < errors["int4-per-channel"]
    assert errors["int8-per-channel"] < errors["int4-group-32"]


def test_only_linear_weights_change_and_the_original_is_untouched():
    model = tiny()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    quantized = qm.quantize_model(model, "int4-per-channel")
    assert quantized is not model
    for name, p in model.named_parameters():  # original untouched
        assert torch.equal(p, before[name]), name
    for name, p in quantized.named_parameters():
        if name in ("up.weight", "down.weight"):
            assert not torch.equal(p, before[name]), name
            assert p.dtype == torch.float32
        else:
            assert torch.equal(p, before[name]), name
    ids = torch.tensor([[1, 2, 3]])
    assert quantized(ids).shape == model(ids).shape == (1, 3, 128)


def test_inplace_overwrites_and_returns_the_model():
    model = tiny()
    expected = qm.fake_quantize_weight(model.down.weight.detach(), "int8-per-channel")
    out = qm.quantize_model(model, "int8-per-channel", inplace=True)
    assert out is model
    assert torch.equal(model.down.weight.detach(), expected)


def test_weights_lie_on_the_int4_grid_with_float16_scales():
    w = tiny().up.weight.detach().numpy()
    q, scale = qm.quantize_weight(w, "int4-group-32")
    assert q.dtype == np.int8 and scale.dtype == np.float16
    assert scale.shape == (256, 4, 1)
    assert q.min() >= -7 and q.max() <= 7
    # The codes are symmetric.quantize's, the scale is its float32 scale rounded to float16.
    q_ref, s_ref = symmetric.quantize(w, bits=4, group_size=32)
    assert np.array_equal(q, q_ref)
    assert np.array_equal(scale, np.asarray(s_ref).astype(np.float16))
    w_hat = qm.fake_quantize_weight(w, "int4-group-32")
    expected = (q.reshape(256, 4, 32) * scale.astype(np.float32)).reshape(256, 128)
    assert w_hat.dtype == np.float32
    np.testing.assert_array_equal(w_hat, expected)
    # Within half a step (plus the float16 rounding of the scale) of the original.
    step = np.repeat(scale.astype(np.float32).reshape(256, 4), 32, axis=1)
    assert (np.abs(w - w_hat) <= 0.5 * step * (1 + 2**-10) + 7 * step * 2**-11).all()


def test_per_channel_scale_shape_and_torch_in_torch_out():
    w = tiny().down.weight.detach()
    q, scale = qm.quantize_weight(w, "int8-per-channel")
    assert isinstance(q, torch.Tensor) and q.dtype == torch.int8
    assert isinstance(scale, torch.Tensor) and scale.dtype == torch.float16
    assert tuple(scale.shape) == (128, 1)
    assert int(q.abs().max()) == 127  # every row reaches its largest code
    assert qm.quantize_weight(w.tolist(), "int8-per-channel")[0].shape == (128, 256)
    w_hat = qm.fake_quantize_weight(w, "int8-per-channel")
    assert isinstance(w_hat, torch.Tensor) and w_hat.dtype == torch.float32


def test_cache_name_changes_with_the_scheme():
    model = tiny()
    model._quantbook_name = "tiny"
    names = {qm.quantize_model(model, s)._quantbook_name for s in qm.SCHEMES}
    assert len(names) == len(qm.SCHEMES)
    assert qm.quantize_model(model, "float32")._quantbook_name == "tiny"
    assert model._quantbook_name == "tiny"
    # The rest of the cache key, data.model_fingerprint, follows the weights, not the object.
    assert data.model_fingerprint(tiny()) == data.model_fingerprint(tiny())
    assert data.model_fingerprint(tiny()) != data.model_fingerprint(tiny(seed=1))
    assert data.model_fingerprint(qm.quantize_model(tiny(), "int4-group-32")) != \
        data.model_fingerprint(tiny())


@pytest.mark.slow
def test_minilm_sizes_and_int8_embeddings():
    """The one test that loads all-MiniLM-L6-v2: sizes of the real model, and int8 is harmless."""
    from quantbook.data import load_minilm

    model = load_minilm()
    layers = qm.linear_layers(model)
    n_weights = sum(m.weight.numel() for _, m in layers)
    assert len(layers) == 37 and n_weights == 10_764_288
    assert qm.model_size_bytes(model, "float32") == 90_852_864
    assert qm.linear_weight_bytes(model, "int8-per-channel") == n_weights + 2 * 21_120
    assert qm.linear_weight_bytes(model, "int4-group-32") == n_weights // 2 + 2 * n_weights // 32
    sentences = ["The central bank raised interest rates.", "The striker scored twice."]
    reference = model.encode(sentences, normalize_embeddings=True)
    int8 = qm.quantize_model(model, "int8-per-channel").encode(sentences, normalize_embeddings=True)
    cosine = (reference * int8).sum(axis=1)
    assert (cosine > 0.999).all(), cosine
