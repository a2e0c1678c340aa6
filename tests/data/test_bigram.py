"""The bigram source: a seeded Markov language with an exact entropy rate, and context buckets."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from riverbed.data import DataConfig, load_dataset
from riverbed.data.bigram import BUCKETS, BigramLanguage
from riverbed.data.buckets import BucketMap
from riverbed.errors import ConfigError


def test_same_seed_same_language_and_tokens():
    a = BigramLanguage.generate(vocab=32, deterministic=0.25, max_successors=6, seed=3)
    b = BigramLanguage.generate(vocab=32, deterministic=0.25, max_successors=6, seed=3)
    c = BigramLanguage.generate(vocab=32, deterministic=0.25, max_successors=6, seed=4)
    assert np.array_equal(a.probs, b.probs) and not np.array_equal(a.probs, c.probs)
    assert np.array_equal(a.sample(500, seed=1), b.sample(500, seed=1))
    assert not np.array_equal(a.sample(500, seed=1), a.sample(500, seed=2))


@pytest.mark.parametrize("mix", [0.0, 0.5, 0.9])
def test_mix_structure_and_irreducibility(mix):
    lang = BigramLanguage.generate(vocab=40, deterministic=mix, max_successors=8, seed=0)
    assert lang.n_deterministic == round(mix * 40)
    assert np.allclose(lang.probs.sum(axis=1), 1.0)
    pi = lang.stationary
    assert np.allclose(pi @ lang.probs, pi, atol=1e-12)
    assert (pi > 0).all()  # irreducible: no deterministic trap, every token recurrent
    assert (lang.successors[lang.successors > 1] >= 2).all()
    assert list(np.bincount(lang.buckets(), minlength=4))[0] == lang.n_deterministic


def test_entropy_rate_matches_a_long_sample_and_the_closed_form():
    lang = BigramLanguage.generate(vocab=16, deterministic=0.5, max_successors=4, seed=0)
    h = lang.entropy_rate
    assert h == pytest.approx(float(sum(p * lang.row_entropy[i] for i, p in enumerate(lang.stationary))))
    x = lang.sample(200_000, seed=5)
    # Empirical loss of the true model: mean -log P(x_t+1 | x_t); within ~5 standard errors.
    lp = -np.log(lang.probs[x[:-1], x[1:]])
    se = lp.std() / math.sqrt(len(lp))
    assert abs(lp.mean() - h) < 5 * se + 1e-3
    assert lang.sample_loss(x[:-1], x[1:]) == pytest.approx(lp.mean())
    # The empirical context frequencies converge to pi (the chain starts from pi).
    freq = np.bincount(x, minlength=16) / len(x)
    assert np.abs(freq - lang.stationary).max() < 0.01


def test_sample_loss_refuses_impossible_pairs():
    lang = BigramLanguage.generate(vocab=8, deterministic=0.5, max_successors=3, seed=0)
    i = int(np.flatnonzero(lang.successors == 1)[0])
    j = int(np.flatnonzero(lang.probs[i] == 0)[0])
    with pytest.raises(ConfigError, match="probability 0"):
        lang.sample_loss(np.array([i]), np.array([j]))


def test_load_dataset_bigram_source():
    cfg = DataConfig(source="bigram", vocab_size=24, bigram_tokens=5000, bigram_successors=5, heldout_fraction=0.1)
    data = load_dataset(cfg)
    assert data.vocab_size == 24 and len(data.train) == 5000 and len(data.heldout) == 500
    assert data.buckets.names == BUCKETS and data.meta["entropy_rate"] == pytest.approx(data.language.entropy_rate)
    assert np.array_equal(load_dataset(cfg).train, data.train)
    for split in (data.train, data.heldout):
        assert (data.language.probs[split[:-1], split[1:]] > 0).all()  # no cut: every pair is a transition
    assert DataConfig.from_dict(cfg.to_dict()) == cfg
    assert "bigram_seed" not in DataConfig().to_dict()


@pytest.mark.parametrize("key,value,match", [
    ("bigram_deterministic", 1.0, "data.bigram_deterministic"),
    ("bigram_successors", 1, "data.bigram_successors"),
    ("bigram_tokens", 0, "data.bigram_tokens"),
    ("bucket_map", "", "data.bucket_map"),
    ("tokenizer", "bpe", "no tokenizer"),
])
def test_bad_bigram_keys(key, value, match):
    with pytest.raises(ConfigError, match=match):
        DataConfig(source="bigram", **{key: value})


def test_successors_above_vocab_is_an_error():
    with pytest.raises(ConfigError, match="bigram_successors"):
        load_dataset(DataConfig(source="bigram", vocab_size=8, bigram_successors=9, bigram_tokens=100))


def test_bucket_map_file(tmp_path):
    f = tmp_path / "b.json"
    f.write_text(json.dumps({"97": "a", "98": "b", "99": "a"}))
    data = load_dataset(DataConfig(source=str(_text(tmp_path)), bucket_map=str(f), heldout_block=64))
    assert data.buckets.names == ("a", "b")
    assert data.buckets.of_token[97] == 0 and data.buckets.of_token[98] == 1 and data.buckets.of_token[0] == -1
    assert data.meta["buckets"] == {"a": 2, "b": 1}


@pytest.mark.parametrize("body,match", [
    (None, "file not found"),
    ("[1, 2]", "expected a JSON object"),
    ('{"x": "a"}', "key 'x' is not a token id"),
    ('{"999": "a"}', "token id 999 is outside the vocabulary"),
    ('{"5": ""}', "non-empty string"),
    ("{nope", "not a readable JSON"),
])
def test_bad_bucket_maps_name_the_file(tmp_path, body, match):
    f = tmp_path / "b.json"
    if body is not None:
        f.write_text(body)
    with pytest.raises(ConfigError, match=match) as exc:
        BucketMap.from_json(f, vocab_size=256)
    assert "data.bucket_map" in str(exc.value) and str(f) in str(exc.value)


def _text(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text("abcabcabd " * 200)
    return p


def test_training_with_a_bucket_map_logs_eval_loss_by_bucket(tmp_path, tiny_run_config):
    import dataclasses

    from riverbed.checkpoints import layout
    from riverbed.training import read_metrics, train_branch

    f = tmp_path / "b.json"
    f.write_text(json.dumps({str(i): ("vowel" if chr(i) in "aeiou" else "other") for i in range(97, 123)}))
    cfg = tiny_run_config.replace(data=DataConfig(source=str(_text(tmp_path)), bucket_map=str(f), heldout_block=64),
                                  train=dataclasses.replace(tiny_run_config.train, max_steps=2, eval_every=2))
    train_branch(cfg, tmp_path / "run", until_step=2, progress=False)
    rows = [r for r in read_metrics(layout.metrics_path(tmp_path / "run", "main")) if r["kind"] == "eval"]
    assert set(rows[-1]["eval_loss_by_bucket"]) == {"vowel", "other"} and "eval_optimal_loss" not in rows[-1]
    bad = cfg.replace(data=DataConfig(source=str(_text(tmp_path)), bucket_map=str(tmp_path / "nope.json"), heldout_block=64))
    with pytest.raises(ConfigError, match="data.bucket_map"):
        train_branch(bad, tmp_path / "run2", until_step=2, progress=False)
