"""Alert rules fire from scripted GPU and engine figures, resolve when the figure recovers, and can be edited."""

from __future__ import annotations

import dataclasses

import pytest

from console.telemetry import DEFAULT_RULES, AlertLog, AlertRule, GpuSampler, InvalidAlertRule, TelemetryService
from console.telemetry.alerts import RETIRED_DEFAULT, replace_retired_default
from engine import GenerationRequest, SamplingParams
from engine.metrics import RECENT_WINDOW_S
from tests.fake_nvml import FakeNvml


@pytest.fixture
def service(nvml, engine_figures):
    return TelemetryService(engine_figures.snapshot, gpu_sampler=GpuSampler(nvml=nvml))


def firing(service) -> list[str]:
    return [f"{event.rule} / {event.subject}" for event in service.alerts.active()]


def play(service, nvml, gpu: int, **series) -> list[list[str]]:
    """Feed one scripted value per sample for each field; returns the firing alerts after each sample."""
    length = len(next(iter(series.values())))
    seen = []
    for step in range(length):
        nvml.set(gpu, **{name: values[step] for name, values in series.items()})
        service.sample_once()
        seen.append(firing(service))
    return seen


def test_the_defaults_judge_each_request_and_leave_end_to_end_time_as_an_option():
    assert [(rule.describe(), rule.enabled) for rule in DEFAULT_RULES] == [
        ("p99 time to first token > 500 ms", True),
        ("p99 time between tokens > 250 ms", True),
        ("p99 queue wait > 1,000 ms", True),
        ("GPU utilisation > 90 % for 3 samples", True),
        ("GPU utilisation < 20 % for 3 samples while requests are queued", True),
        ("GPU memory > 95 %", True),
        ("GPU temperature > 85 °C", True),
        ("p99 end-to-end latency > 60,000 ms", False),
    ]


def test_gpu_above_90_percent_fires_on_the_third_consecutive_sample(service, nvml):
    assert play(service, nvml, 0, utilization=[95, 96, 97]) == [[], [], ["GPU saturated / GPU 0"]]
    event = service.alerts.active()[0]
    assert event.text == "GPU 0: GPU utilisation > 90 % for 3 samples (now 97 %) — consider a larger batch or another GPU"


def test_a_dip_restarts_the_count(service, nvml):
    assert play(service, nvml, 0, utilization=[95, 96, 80, 95, 96])[-1] == []


def test_only_the_busy_gpu_fires(service, nvml):
    play(service, nvml, 1, utilization=[99, 99, 99])
    assert firing(service) == ["GPU saturated / GPU 1"]


def test_the_alert_resolves_when_the_gpu_calms_down(service, nvml):
    play(service, nvml, 0, utilization=[95, 95, 95, 40])
    events = service.alert_log.events()
    assert [(e.rule, e.state) for e in events] == [("GPU saturated", "firing"), ("GPU saturated", "resolved")]
    assert events[1].text == "Resolved: GPU 0: GPU saturated (now 40 %)"


def test_a_starved_gpu_fires_only_while_requests_are_queued(service, nvml, engine_figures):
    assert play(service, nvml, 0, utilization=[10, 10, 10]) == [[], [], []]
    engine_figures.waiting = 4
    assert play(service, nvml, 0, utilization=[10, 12, 15]) == [[], [], ["GPU starved / GPU 0"]]
    assert "batching is starving the GPU" in service.alerts.active()[0].text
    engine_figures.waiting = 0
    play(service, nvml, 0, utilization=[10])
    assert firing(service) == []


def test_gpu_memory_above_95_percent_fires_at_once(service, nvml):
    assert play(service, nvml, 0, memory_used=[int(39.5 * 2**30)]) == [["GPU memory nearly full / GPU 0"]]


def test_temperature_above_85_degrees_fires(service, nvml):
    assert play(service, nvml, 1, temperature=[85, 86]) == [[], ["GPU too hot / GPU 1"]]
    assert "GPU temperature > 85 °C (now 86 °C)" in service.alerts.active()[0].text


def test_p99_time_to_first_token_above_500_ms_fires(service, engine_figures):
    engine_figures.finish(total_s=0.2, ttft_s=0.1)
    service.sample_once()
    assert firing(service) == []
    for _ in range(3):
        engine_figures.finish(total_s=2.0, ttft_s=0.9)
    service.sample_once()
    assert firing(service) == ["Slow first token / Engine"]
    assert "p99 time to first token > 500 ms (now 900 ms)" in service.alerts.active()[0].text


def test_a_slow_token_stream_fires(service, engine_figures):
    engine_figures.finish(total_s=0.05 + 15 * 0.3, ttft_s=0.05, tokens=16)  # 300 ms between tokens
    service.sample_once()
    assert firing(service) == ["Slow token stream / Engine"]
    assert "(now 300 ms)" in service.alerts.active()[0].text


def test_a_long_queue_wait_fires(service, engine_figures):
    engine_figures.finish(total_s=3.0, ttft_s=0.3, queue_wait_s=2.5)
    service.sample_once()
    assert firing(service) == ["Long queue wait / Engine"]


def test_a_long_ordinary_reply_fires_nothing(service, engine_figures):
    engine_figures.finish(total_s=9.0, ttft_s=0.06, tokens=256)  # 256 tokens at about 28 tokens/s
    service.sample_once()
    assert firing(service) == []


def test_an_ordinary_reply_on_an_idle_engine_fires_nothing(tiny_engine):
    service = TelemetryService(tiny_engine.snapshot, gpu_sampler=GpuSampler(nvml=FakeNvml(driver_loaded=False)))
    service.set_rules([dataclasses.replace(rule, enabled=True) for rule in DEFAULT_RULES])  # the end-to-end option too: a short reply is well under it
    params = SamplingParams(temperature=0, max_new_tokens=32, ignore_eos=True)
    result = tiny_engine.generate(GenerationRequest(prompt="hello world", params=params), timeout=60)
    frame = service.sample_once()
    assert result.completion_tokens == 32 and frame.engine.recent_requests == 1
    assert service.alert_log.events() == []


def test_a_firing_alert_shows_the_value_now_not_the_one_it_fired_with(service, engine_figures):
    engine_figures.finish(total_s=2.0, ttft_s=0.9)
    service.sample_once()
    engine_figures.clock.advance(RECENT_WINDOW_S / 2)
    engine_figures.finish(total_s=2.0, ttft_s=1.4)
    service.sample_once()
    assert "(now 1,400 ms)" in service.alerts.active()[0].text
    assert [event.state for event in service.alert_log.events()] == ["firing"]  # it did not fire twice


def test_the_alert_resolves_once_the_slow_requests_leave_the_window(service, engine_figures):
    engine_figures.finish(total_s=2.0, ttft_s=0.9)
    service.sample_once()
    engine_figures.clock.advance(RECENT_WINDOW_S - 1)
    engine_figures.finish(total_s=0.5, ttft_s=0.05)
    service.sample_once()
    assert firing(service) == ["Slow first token / Engine"]
    engine_figures.clock.advance(2)
    service.sample_once()
    assert firing(service) == []
    assert service.alert_log.events()[-1].text == "Resolved: Engine: Slow first token (now 50 ms)"


def test_without_a_gpu_only_engine_rules_can_fire(engine_figures):
    service = TelemetryService(engine_figures.snapshot, gpu_sampler=GpuSampler(nvml=FakeNvml(driver_loaded=False)))
    engine_figures.finish(total_s=2.0, ttft_s=0.8)
    service.sample_once()
    assert firing(service) == ["Slow first token / Engine"]


def test_stored_rules_holding_the_retired_seed_get_the_request_rules_in_its_place():
    custom = AlertRule("Busy", "requests_waiting", ">", 10, 2)
    assert [rule.name for rule in replace_retired_default([RETIRED_DEFAULT, custom])] == [
        "Slow first token", "Slow token stream", "Long queue wait", "Slow replies end to end", "Busy"]


def test_stored_rules_without_the_retired_seed_are_kept_as_they_are():
    edited = AlertRule("High p99 latency", "latency_p99_ms", ">", 20_000, 1)
    assert replace_retired_default([edited]) == [edited]


def test_a_disabled_rule_never_fires(service, nvml):
    service.set_rules([AlertRule("GPU hot", "gpu_temperature_c", ">", 85, enabled=False)])
    assert play(service, nvml, 0, temperature=[99, 99]) == [[], []]


def test_edited_rules_apply_from_the_next_sample_and_resolve_what_fired(service, nvml):
    play(service, nvml, 0, temperature=[90])
    assert firing(service) == ["GPU too hot / GPU 0"]
    service.set_rules([AlertRule("Warm", "gpu_temperature_c", ">", 60, 2, message="open a window")])
    assert firing(service) == [] and service.alert_log.events()[-1].text == "Resolved: GPU 0: GPU too hot (rules edited)"
    assert play(service, nvml, 0, temperature=[70, 70]) == [[], ["Warm / GPU 0"]]


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (AlertRule("", "gpu_temperature_c", ">", 85), "needs a name"),
        (AlertRule("x", "gpu_fan_speed", ">", 85), "unknown metric 'gpu_fan_speed'"),
        (AlertRule("x", "gpu_temperature_c", ">=", 85), "must be '>' or '<'"),
        (AlertRule("x", "gpu_temperature_c", ">", float("nan")), "threshold must be a number"),
        (AlertRule("x", "gpu_temperature_c", ">", 85, 0), "1 or more consecutive samples"),
        (AlertRule("x", "gpu_temperature_c", ">", 85, condition="sunny"), "unknown condition 'sunny'"),
    ],
)
def test_an_invalid_rule_is_refused_and_the_old_rules_stay(service, rule, message):
    with pytest.raises(InvalidAlertRule, match=message):
        service.set_rules([rule])
    assert service.alerts.rules == DEFAULT_RULES


def test_two_rules_with_one_name_are_refused(service):
    rule = AlertRule("Hot", "gpu_temperature_c", ">", 85)
    with pytest.raises(InvalidAlertRule, match='Two alert rules are named "Hot"'):
        service.set_rules([rule, rule])


def test_the_log_hands_every_event_to_its_sink(nvml, engine_figures):
    stored = []
    service = TelemetryService(engine_figures.snapshot, gpu_sampler=GpuSampler(nvml=nvml), alert_log=AlertLog(sink=stored.append))
    play(service, nvml, 0, temperature=[90, 50])
    assert [(e.rule, e.subject, e.state) for e in stored] == [("GPU too hot", "GPU 0", "firing"), ("GPU too hot", "GPU 0", "resolved")]


def test_a_failing_sink_is_reported_and_does_not_stop_alerts(service, nvml):
    def full_disk(_event):
        raise OSError("disk full")

    service.alert_log.sink = full_disk
    heard = []
    service.add_alert_listener(heard.append)
    play(service, nvml, 0, temperature=[90])
    assert [e.rule for e in heard] == ["GPU too hot"] and len(service.alert_log) == 1
    assert service.alert_log.sink_error == "Storing the alert failed: disk full"
