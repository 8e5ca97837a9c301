"""Stop strings held back while they may still be forming; sampling rules."""

from __future__ import annotations

import pytest
import torch

from engine.errors import SamplingFailed
from engine.sampling import SamplingParams, apply_repetition_penalty, make_generator, sample_next_token
from engine.text_stream import StopStringMatcher


def test_text_that_may_start_a_stop_string_is_held_back():
    matcher = StopStringMatcher(("###",))
    assert matcher.feed("Hello #") == ("Hello ", False)
    assert matcher.feed("#") == ("", False)
    assert matcher.feed(" more") == ("## more", False)
    assert matcher.text == "Hello ## more"


def test_stop_string_split_across_pieces_is_found_and_cut():
    matcher = StopStringMatcher(("User:",))
    assert matcher.feed("Answer. Us") == ("Answer. ", False)
    assert matcher.feed("er: next") == ("", True)
    assert matcher.text == "Answer. "


def test_flush_releases_held_text_at_the_end():
    matcher = StopStringMatcher(("###",))
    matcher.feed("end #")
    assert matcher.flush() == "#"
    assert matcher.text == "end #"


def test_top_k_one_is_greedy():
    logits = torch.tensor([0.1, 3.0, 2.9, -1.0])
    params = SamplingParams(temperature=1.5, top_k=1, top_p=1.0, repetition_penalty=1.0)
    picks = {sample_next_token(logits, params, torch.tensor([], dtype=torch.long), make_generator(s, torch.device("cpu"))) for s in range(20)}
    assert picks == {1}


def test_top_p_keeps_only_the_nucleus():
    logits = torch.log(torch.tensor([0.6, 0.3, 0.05, 0.05]))
    params = SamplingParams(temperature=1.0, top_k=0, top_p=0.8, repetition_penalty=1.0)
    picks = {sample_next_token(logits, params, torch.tensor([], dtype=torch.long), make_generator(s, torch.device("cpu"))) for s in range(200)}
    assert picks == {0, 1}


def test_repetition_penalty_lowers_seen_tokens_either_sign():
    logits = torch.tensor([2.0, -2.0, 1.0])
    penalised = apply_repetition_penalty(logits, torch.tensor([0, 1]), 2.0)
    assert penalised.tolist() == [1.0, -4.0, 1.0]


def sampled(logits: torch.Tensor, params: SamplingParams, seed: int = 0) -> int:
    return sample_next_token(logits, params, None, make_generator(seed, torch.device("cpu")))


def test_a_tiny_temperature_picks_the_top_token():
    logits = torch.tensor([0.1, 3.0, 2.9, -1.0])
    params = SamplingParams(temperature=1e-300, top_k=0, top_p=1.0, repetition_penalty=1.0)
    assert {sampled(logits, params, seed) for seed in range(20)} == {1}


def test_an_infinite_score_is_picked_and_nan_scores_never_are():
    logits = torch.tensor([float("nan"), 1.0, float("inf"), float("nan")])
    params = SamplingParams(temperature=1.0, top_k=0, top_p=1.0, repetition_penalty=1.0)
    assert {sampled(logits, params, seed) for seed in range(20)} == {2}


def test_scores_that_are_all_nan_raise_a_clear_sampling_error():
    params = SamplingParams(temperature=0.7, repetition_penalty=1.0)
    with pytest.raises(SamplingFailed, match="no usable scores.*Try another precision"):
        sampled(torch.full((8,), float("nan")), params)
