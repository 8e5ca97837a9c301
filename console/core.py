"""ConsoleCore: the application without a screen, and its composition root. The GUI, the CLI and the HTTP API
all act through the services it builds, so the permission checks, audit entries and checksum checks written
once protect them all.

It opens the database and builds every headless service: users and roles (`access`), settings, the registry
(`registry`), saved conversations, the telemetry (with its alert store and Prometheus exporter) and the engine.
It holds no session: every guarded method takes the caller's `Principal` first and declares what it needs
with `@requires`, so many callers (the window, CLI commands, API requests on their threads) are served at once.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from console.access.audit_log import AuditEntry, AuditHead, AuditLog, AuditVerification
from console.access.control import AccessControl
from console.access.guard import Guard, requires
from console.access.permissions import Permission
from console.access.principal import Principal
from console.api.service import ApiService
from console.chat.conversations_store import ConversationStore
from console.errors import ConsoleError, MemoryWontFit
from console.lab.load_memory import LoadMemory, refuse_unless_fits, used_memory_bytes
from console.lab.service import LabService, model_key_of_path, model_key_of_version
from console.registry.default_model import DEFAULT_MODEL_NAME, default_model_path, ensure_default_registered
from console.registry.registry import Registry
from console.registry.service import RegistryService
from console.registry.verified_loading import VersionLoadSpec, load_registered_version
from console.settings.store import SettingsStore
from console.storage import paths
from console.storage.database import open_database
from console.telemetry.monitor import TelemetryMonitor
from engine import (
    EngineError,
    GenerationRequest,
    InferenceEngine,
    LoadedModelInfo,
    ModelSpec,
    RequestHandle,
    SamplingParams,
)
from engine.batching_settings import BatchingSettings
from engine.metrics import EngineSnapshot
from engine.weights.devices import describe_device, resolve_device
from engine.weights.loader import ProgressCallback
from engine.weights.memory_estimate import MemoryEstimate, estimate_load


class ConsoleCore:
    def __init__(self, data_dir: Path | None = None):
        self.data_dir = Path(data_dir) if data_dir else paths.data_dir()
        self._database = open_database(paths.database_path(self.data_dir))  # first: refuses a newer database
        self._audit_log = AuditLog(self._database)
        self.guard = Guard(self._database, self._audit_log)
        self.access = AccessControl(self._database, self._audit_log, self.guard)
        self.settings = SettingsStore(self._database, self.guard)
        self._registry = Registry(self._database)
        self.registry = RegistryService(self._registry, self.guard)
        self.conversations = ConversationStore(self._database, self.guard)
        cache = self.data_dir / "cache"
        cache.mkdir(parents=True, exist_ok=True)
        self._engine = InferenceEngine(cache_dir=cache, settings=self._engine_settings())
        self.telemetry: TelemetryMonitor | None = None  # the latest started (`start_telemetry`)
        self._monitors: list[TelemetryMonitor] = []
        # `bench --compile` and the one-shot `chat` set it for their own run; else LLM_CONSOLE_COMPILE, else the setting
        self.compile_override: str | None = None
        self.api = ApiService(self, self._database)  # the local API; it listens only once started
        self.load_memory = LoadMemory(self._database)
        self._loaded_once = False  # the first load of a process measures the device's runtime overhead
        self.lab = LabService(self._database, self.guard, self._registry, self._engine, self)

    def _engine_settings(self) -> BatchingSettings:
        return BatchingSettings(
            max_batch_size=self.settings.get("engine.max_batch_size"),
            max_wait_ms=self.settings.get("engine.max_wait_ms"),
            threads=self.settings.get("engine.threads"),
        )

    # --- principals --------------------------------------------------------------------------------------
    def sign_in(self, name: str, password: str, channel: str = "desktop") -> Principal:
        return self.access.sign_in(name, password, channel)

    def create_first_admin(self, name: str, password: str, channel: str = "desktop") -> Principal:
        return self.access.create_first_admin(name, password, channel)

    def sign_out(self, principal: Principal | None, reason: str = "sign out") -> None:
        if principal is not None:
            self.access.sign_out(principal, reason)

    def can(self, principal: Principal | None, permission: Permission | str) -> bool:
        return self.guard.can(principal, permission)

    # --- models ------------------------------------------------------------------------------------------
    def default_model_spec(self, precision: str = "auto", device: str = "auto") -> ModelSpec:
        return ModelSpec(str(default_model_path()), precision=precision, device=device, name=DEFAULT_MODEL_NAME)

    @requires(Permission.MODEL_LOAD, lambda call: f"load {Path(call['spec'].path).name}")
    def load_model(self, principal: Principal, spec: ModelSpec, progress: ProgressCallback | None = None,
                   load_anyway: bool = False) -> LoadedModelInfo:
        """Load a path that is not registered (nothing is verified). Blocking: the GUI calls it from a worker.
        Refused with MemoryWontFit when the estimate exceeds the free memory, unless `load_anyway`."""
        precision, recommended = self._auto_precision(model_key_of_path(spec.path), spec.precision, spec.device)
        spec = replace(spec, precision=precision)
        return self._audited_load(principal, spec.path, spec.path, precision, spec.device, recommended, load_anyway,
                                  lambda: self._engine.load(spec, progress))

    @requires(Permission.MODEL_LOAD, "load {ref_or_id}")
    def load_version(self, principal: Principal, ref_or_id: str | int, precision: str = "auto", device: str = "auto",
                     progress: ProgressCallback | None = None, load_anyway: bool = False) -> LoadedModelInfo:
        """Load a registered version after re-checking its files; refused (ChecksumMismatch) if any changed, and
        (MemoryWontFit) when it will not fit unless `load_anyway`."""
        try:
            version = self._registry.resolve(ref_or_id)
        except ConsoleError as error:
            self.guard.record(principal, "model.load", str(ref_or_id), "failed", precision=precision, device=device,
                              error=str(error))
            raise
        precision, recommended = self._auto_precision(model_key_of_version(version.id), precision, device)
        return self._audited_load(
            principal, str(ref_or_id), version.source_path, precision, device, recommended, load_anyway,
            lambda: load_registered_version(self._engine, self._registry, ref_or_id, precision, device, progress,
                                            loaded_by=principal.user),
        )

    @requires(Permission.MODEL_LOAD, "load a random model")
    def load_random_model(self, principal: Principal, shape: str, tokenizer_from: ModelSpec, device: str,
                          precision: str) -> str:
        """Random weights of a known shape (for benchmarks), with the tokenizer of `tokenizer_from`; returns the
        name of the model whose tokenizer it uses."""
        default = self.load_model(principal, tokenizer_from)
        tokenizer = self._engine.run_on_model(lambda loaded: loaded.tokenizer)
        self.unload_model(principal)
        self._engine.compile_decode = self.compile_mode()
        self._engine.load_random(shape, tokenizer, device, precision)
        self.guard.record(principal, "model.load", f"random {shape}", precision=precision, device=device)
        return default.name

    def compile_mode(self) -> str:
        """The compile mode for the next load: an override set for one command, else LLM_CONSOLE_COMPILE,
        else the `engine.compile` setting."""
        return self.compile_override or os.environ.get("LLM_CONSOLE_COMPILE") or self.settings.get("engine.compile")

    def _auto_precision(self, model_key: str, precision: str, device: str):
        """`auto` becomes the lab's saved recommendation for this model version on this device, when there is one
        (returned too, so its batching knobs follow the load); any other precision stays as asked."""
        if precision != "auto":
            return precision, None
        try:
            device_name = describe_device(resolve_device(device))
        except EngineError:
            return precision, None  # the load itself reports the unavailable device
        recommendation = self.lab.recommendation(model_key, device_name)
        return (recommendation.precision, recommendation) if recommendation else (precision, None)

    def estimate_load(self, target: ModelSpec | VersionLoadSpec, sequences: int | None = None,
                      context_tokens: int | None = None) -> MemoryEstimate:
        """The itemised memory a load of `target` needs (weights, KV cache for `sequences` × `context_tokens`,
        overhead, margin) and the device's free memory, from the model's headers: nothing is loaded. Shown
        before Load to whoever may see the window, so it needs no permission."""
        if isinstance(target, VersionLoadSpec):
            version = self._registry.resolve(target.ref)
            path, key = version.source_path, model_key_of_version(version.id)
        else:
            path, key = target.path, model_key_of_path(target.path)
        precision, _recommended = self._auto_precision(key, target.precision, target.device)
        return self.estimate_path(path, precision, target.device, sequences, context_tokens)

    @requires(Permission.METRICS_VIEW, "see load memory")
    def load_memory_records(self, principal: Principal, limit: int = 50) -> list[dict]:
        """Recent loads: the estimate beside the measured weights and load memory, newest first."""
        return self.load_memory.records(limit)

    def estimate_path(self, path: str, precision: str, device: str, sequences: int | None = None,
                      context_tokens: int | None = None) -> MemoryEstimate:
        kind = resolve_device(device).type
        return estimate_load(self.load_memory.shape(path), precision, device,
                             sequences or self._engine.settings.max_batch_size, context_tokens,
                             self.load_memory.overhead_bytes(kind))

    def _audited_load(self, principal: Principal, target: str, path: str, precision: str, device: str, recommended,
                      load_anyway: bool, load) -> LoadedModelInfo:
        self._engine.compile_decode = self.compile_mode()
        try:
            try:
                estimate = self.estimate_path(path, precision, device)
            except (EngineError, OSError):  # a missing or damaged model: the load itself says what is wrong
                estimate = None
            if estimate is not None and not load_anyway:
                refuse_unless_fits(estimate, Path(path).name)
            first_load = not self._loaded_once
            before = used_memory_bytes(estimate.device) if estimate else 0
            info = load()
        except Exception as error:
            self.guard.record(principal, "model.load", target, "refused" if isinstance(error, MemoryWontFit) else "failed",
                              precision=precision, device=device, error=str(error))
            raise
        self._loaded_once = True
        details = {"weight_bytes": info.weight_bytes}
        if estimate is not None:
            measured = used_memory_bytes(estimate.device) - before
            self.load_memory.record(info.name, estimate, info.weight_bytes, measured, first_load)
            details.update(estimated_bytes=estimate.total_bytes, estimated_weight_bytes=estimate.weight_bytes,
                           load_anyway=load_anyway and not estimate.fits)
        if recommended is not None:  # the saved recommendation chose the precision: its knobs come with it
            self._engine.configure(max_batch_size=recommended.max_batch_size, max_wait_ms=recommended.max_wait_ms)
            details["recommendation"] = {"sweep": recommended.sweep_id, "max_batch_size": recommended.max_batch_size,
                                         "max_wait_ms": recommended.max_wait_ms}
        self.guard.record(principal, "model.load", info.name, precision=info.precision, device=info.device,
                          path=info.path, decoder=self._engine.snapshot().decoder, **details)
        return info

    def load(self, principal: Principal, target: ModelSpec | VersionLoadSpec,
             progress: ProgressCallback | None = None, load_anyway: bool = False) -> LoadedModelInfo:
        if isinstance(target, VersionLoadSpec):
            return self.load_version(principal, target.ref, target.precision, target.device, progress, load_anyway)
        return self.load_model(principal, target, progress, load_anyway)

    def default_load_target(self, precision: str = "auto", device: str = "auto") -> ModelSpec | VersionLoadSpec:
        """The registry's default version when there is one, else the embedded model's file."""
        default = self._registry.default_version()
        if default is not None:
            return VersionLoadSpec(default.id, precision, device, name=default.ref)
        return self.default_model_spec(precision, device)

    def embedded_default_registered(self) -> bool:
        """Whether the first start's registration of the embedded model has happened (a system fact)."""
        from console.registry.default_model import EMBEDDED_REGISTERED_KEY

        return self._registry.setting(EMBEDDED_REGISTERED_KEY) is not None

    def ensure_default_registered(self, progress=None, cancel=None):
        """First start: hash and register the embedded model (about 100 MB). A system action. Blocking."""
        return ensure_default_registered(self._registry, progress, cancel)

    @requires(Permission.MODEL_LOAD, "unload the model")
    def unload_model(self, principal: Principal) -> None:
        info = self._engine.model_info
        self._engine.unload()
        if info is not None:
            self.guard.record(principal, "model.unload", info.name)

    @property
    def model_info(self) -> LoadedModelInfo | None:
        return self._engine.model_info

    # --- engine ------------------------------------------------------------------------------------------
    @requires(Permission.ENGINE_CONFIGURE, "change engine settings")
    def configure_engine(self, principal: Principal, **changes) -> BatchingSettings:
        """Change batching knobs live; audited with the old and new values."""
        old = self._engine.settings
        new = self._engine.configure(**changes)
        changed = {k: (getattr(old, k), getattr(new, k)) for k in changes if getattr(old, k) != getattr(new, k)}
        if changed:
            self.guard.record(principal, "engine.configure", "batching",
                              old={k: v[0] for k, v in changed.items()}, new={k: v[1] for k, v in changed.items()})
        return new

    @requires(Permission.BENCH_RUN, "choose the forward pass")
    def use_lean_decoder(self, principal: Principal, lean: bool) -> None:
        """The lean decoder (Llama-family models) or transformers' own forward, from the next load."""
        self._engine.lean_decoder = lean

    @property
    def engine_settings(self) -> BatchingSettings:
        """The batching knobs now (configuration, shown to whoever sees the Engine tab)."""
        return self._engine.settings

    @requires(Permission.CHAT_USE, "chat with the model")
    def chat(self, principal: Principal, messages: list[dict[str, str]], params: SamplingParams,
             on_event=None) -> RequestHandle:
        return self._engine.submit(GenerationRequest(messages=messages, params=params), on_event=on_event)

    @requires(Permission.CHAT_USE, "generate with the model")
    def submit(self, principal: Principal, request: GenerationRequest, on_event=None) -> RequestHandle:
        """A chat or plain-prompt request into the shared batch (the local API's completions)."""
        return self._engine.submit(request, on_event=on_event)

    @property
    def model_loading(self) -> bool:
        return self._engine.loading

    @requires(Permission.CHAT_USE, "measure perplexity")
    def measure_perplexity(self, principal: Principal) -> float:
        """Perplexity of the loaded model on the fixed text shipped in resources/ (blocking: seconds)."""
        from resources import resource_path

        return self._engine.perplexity(resource_path("perplexity.txt").read_text(encoding="utf-8"))

    @requires(Permission.METRICS_VIEW, "see the engine's figures")
    def engine_snapshot(self, principal: Principal) -> EngineSnapshot:
        """The engine's live figures (throughput, latency percentiles, queue), for those who may see metrics."""
        return self._engine.snapshot()

    @requires(Permission.METRICS_VIEW, "see the engine's notices")
    def engine_notices(self, principal: Principal) -> list[tuple[float, str]]:
        return self._engine.notices()

    @requires(Permission.BENCH_RUN, "run benchmarks")
    def benchmark(self, principal: Principal, levels: list[int], new_tokens: int, baselines: bool = True,
                  gguf_path: str | None = None, report=print, repeat: int = 1,
                  prompt_lengths: list[int] | None = None):
        """Run `console.bench.runner` on the loaded model (blocking: minutes)."""
        from console.bench.runner import run_benchmark

        result = run_benchmark(self._engine, levels, new_tokens, baselines, gguf_path, report, repeat,
                               prompt_lengths)
        self.guard.record(principal, "bench.run", result.model, levels=levels, new_tokens=new_tokens,
                          tokens_per_second={run.concurrency: round(run.output_tokens_per_s, 1)
                                             for run in result.engine_runs})
        return result

    # --- telemetry ---------------------------------------------------------------------------------------
    def start_telemetry(self, **options) -> TelemetryMonitor:
        """Telemetry of the engine, sampling from now on (options: interval_s, rules, gpu_sampler, …). The stored
        settings give the interval, the alert rules and whether /metrics is served; alerts go to the database."""
        from console.telemetry.alert_store import AlertStore
        from console.telemetry.alerts import AlertRule, replace_retired_default
        from console.telemetry.service import TelemetryService

        options.setdefault("interval_s", self.settings.get("telemetry.interval_s"))
        stored_rules = self.settings.get("alerts.rules")
        if stored_rules:
            options.setdefault("rules", replace_retired_default(AlertRule(**rule) for rule in stored_rules))
        monitor = TelemetryMonitor(TelemetryService(self._engine.snapshot, **options), AlertStore(self._database),
                                   self.settings)
        monitor.service.start()
        monitor.start_prometheus_from_settings(self.settings)
        self._monitors.append(monitor)
        self.telemetry = monitor
        return monitor

    # --- audit -------------------------------------------------------------------------------------------
    @requires(Permission.AUDIT_VIEW, "read the audit log")
    def audit_entries(self, principal: Principal, **filters) -> list[AuditEntry]:
        return self._audit_log.entries(**filters)

    @requires(Permission.AUDIT_VIEW, "verify the audit log")
    def verify_audit(self, principal: Principal, exported_head: AuditHead | None = None) -> AuditVerification:
        """The chain, the head recorded in the database and in the head file, and an exported head if given.
        Checked against the heads as they were before this caller's sign-in was appended: an append never
        moves a head that disagrees with the table."""
        return self._audit_log.verify(exported_head)

    @requires(Permission.AUDIT_VIEW, "export the audit head")
    def export_audit_head(self, principal: Principal) -> AuditHead:
        return self._audit_log.export_head()

    def shutdown(self) -> None:
        self.api.close()
        for monitor in self._monitors:
            monitor.shutdown()
        self._engine.shutdown()
        self._database.close()
