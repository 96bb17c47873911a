"""quantbook.data: the offline model, its weights, the BBC sentences, the embedding cache."""

from __future__ import annotations

import numpy as np
import pytest

from quantbook import data

# --- sentences --------------------------------------------------------------------------------


def test_split_sentences():
    text = (
        "Ink helps democracy\n\n"
        "The ink is sprayed on a person's left thumb. It dries and is not seen. \"We will "
        'win this election," he said! Is it   2005 already? Yes.\n'
    )
    # the 3-word headline, "Is it 2005 already?" (4 words) and "Yes." go; 6 words stay
    assert data.split_sentences(text) == [
        "The ink is sprayed on a person's left thumb.",
        "It dries and is not seen.",
        '"We will win this election," he said!',
    ]
    # a simple rule: "Mr." ends a sentence (BBC style writes "Mr Blair"; "Mr. " occurs 10 times)
    assert data.split_sentences("Mr. Blair said so on Monday.") == ["Blair said so on Monday."]
    assert data.split_sentences("One two three four.", min_words=4) == ["One two three four."]


def test_bbc_sentences_are_fixed_and_deterministic():
    sentences, labels = data.load_bbc_sentences()
    assert len(sentences) == len(labels) == 39202
    assert len(set(sentences)) == len(sentences)  # duplicates dropped
    assert sentences[0] == "Ad sales boost Time Warner profit"
    assert sentences[1].startswith("Quarterly profits at US media giant TimeWarner jumped 76%")
    counts = {c: labels.count(c) for c in data.BBC_CATEGORIES}
    assert counts == {
        "business": 8173,
        "entertainment": 6213,
        "politics": 8319,
        "sports": 8392,
        "tech": 8105,
    }
    sample, sample_labels = data.load_bbc_sentences(5)
    again, _ = data.load_bbc_sentences(5)
    assert sample == again
    order = np.random.default_rng(0).permutation(len(sentences))[:5]
    assert sample == [sentences[i] for i in order]
    assert sample_labels == [labels[i] for i in order]
    assert data.load_bbc_sentences(5, seed=1)[0] != sample
    with pytest.raises(ValueError, match="n must be at most 39202"):
        data.load_bbc_sentences(10**6)
    with pytest.raises(ValueError, match="n must be None or a non-negative integer"):
        data.load_bbc_sentences(-1)


# --- linear weights ---------------------------------------------------------------------------


def test_minilm_linear_weights():
    weights = data.minilm_linear_weights()
    assert len(weights) == 37
    assert all(w.dtype == np.float32 for w in weights.values())
    shapes = {w.shape for w in weights.values()}
    assert shapes == {(384, 384), (1536, 384), (384, 1536)}
    q = weights["encoder.layer.0.attention.self.query.weight"]
    assert q.shape == (384, 384)
    assert "pooler.dense.weight" in weights
    assert not any(name.startswith("embeddings.") for name in weights)
    assert sum(w.size for w in weights.values()) == 6 * (4 * 384 * 384 + 2 * 384 * 1536) + 384**2


# --- the embedding cache, with a stand-in model -----------------------------------------------


class CountingModel:
    """Embeds a text as a normalized vector of its character codes; counts the calls."""

    def __init__(self):
        self.calls = 0
        self._quantbook_name = "counting-model"

    def get_embedding_dimension(self):
        return 4

    def encode(self, texts, **kwargs):
        self.calls += 1
        out = np.array([[len(t), ord(t[0]), ord(t[-1]), 1.0] for t in texts], np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_embed_caches_on_disk_and_keeps_the_order(tmp_path, monkeypatch):
    monkeypatch.setenv("QUANTBOOK_CACHE", str(tmp_path))
    model = CountingModel()
    texts = ["a", "ccc", "bb", "dddd", "e"]
    first = data.embed(texts, model, batch_size=2, progress=False)
    assert first.shape == (5, 4) and first.dtype == np.float32
    assert model.calls == 1  # one chunk of 4 batches of 2
    np.testing.assert_array_equal(first, model.encode(texts))  # original order restored
    files = list(tmp_path.glob("embeddings-*.npy"))
    assert len(files) == 1
    assert files[0].name == f"embeddings-{data.embedding_cache_key(texts, 'counting-model')}.npy"
    again = data.embed(texts, model, progress=False)
    assert model.calls == 2  # the line above; the embed call hit the cache
    np.testing.assert_array_equal(again, first)
    data.embed(texts[::-1], model, progress=False)  # other order, other key
    assert len(list(tmp_path.glob("embeddings-*.npy"))) == 2
    assert data.embed([], model, progress=False).shape == (0, 4)
    with pytest.raises(TypeError, match="texts must be a list of strings"):
        data.embed("one string", model)


def test_cache_key_separates_texts_and_models():
    key = data.embedding_cache_key
    assert key(["ab", "c"], "m") != key(["a", "bc"], "m")
    assert key(["a"], "m1") != key(["a"], "m2")
    assert key(["a"], "m") == key(["a"], "m")


# --- the real model: load offline, embed a handful ---------------------------------------------


def test_minilm_loads_offline_and_embeds(tmp_path, monkeypatch):
    monkeypatch.setenv("QUANTBOOK_CACHE", str(tmp_path))
    import os

    import torch

    model = data.load_minilm()

    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["TRANSFORMERS_OFFLINE"] == "1"
    texts = [
        "The central bank raised interest rates.",
        "Interest rates went up at the central bank.",
        "The striker scored twice in the final.",
    ]
    vectors = data.embed(texts, model, progress=False)
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similarity = vectors @ vectors.T
    assert similarity[0, 1] > 0.8 > 0.2 > similarity[0, 2]
    np.testing.assert_allclose(
        vectors, model.encode(texts, normalize_embeddings=True), atol=1e-6
    )
    # changed weights (here: one weight matrix rounded to int8 and back) miss the cache
    key_before = data.model_fingerprint(model)
    dense = model[0].auto_model.encoder.layer[0].intermediate.dense
    with torch.no_grad():
        original = dense.weight.clone()
        scale = dense.weight.abs().max() / 127
        dense.weight.copy_(torch.round(dense.weight / scale) * scale)
    assert data.model_fingerprint(model) != key_before
    changed = data.embed(texts, model, progress=False)
    assert len(list(tmp_path.glob("embeddings-*.npy"))) == 2
    assert not np.array_equal(changed, vectors)
    np.testing.assert_allclose(changed, vectors, atol=0.05)
    with torch.no_grad():
        dense.weight.copy_(original)
    np.testing.assert_array_equal(data.embed(texts, model, progress=False), vectors)

    # the weights read from the file are the nn.Linear weights of the loaded model
    linear = {
        f"{name}.weight": module.weight.detach().numpy()
        for name, module in model[0].auto_model.named_modules()
        if isinstance(module, torch.nn.Linear)
    }
    weights = data.minilm_linear_weights()
    assert sorted(linear) == sorted(weights)
    for name, w in weights.items():
        np.testing.assert_array_equal(w, linear[name])


def test_retrieval_split_holds_queries_out():
    corpus, corpus_labels, queries, query_labels = data.load_bbc_retrieval_split(50, 20, seed=3)
    assert len(corpus) == len(corpus_labels) == 50 and len(queries) == len(query_labels) == 20
    assert not set(corpus) & set(queries)
    sample, _ = data.load_bbc_sentences(70, seed=3)
    assert queries == sample[:20] and corpus == sample[20:]
