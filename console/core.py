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
from pathlib import Path

from console.access.audit_log import AuditEntry, AuditHead, AuditLog, AuditVerification
from console.access.control import AccessControl
from console.access.guard import Guard, requires
from console.access.permissions import Permission
from console.access.principal import Principal
from console.chat.conversations_store import ConversationStore
from console.registry.default_model import DEFAULT_MODEL_NAME, default_model_path, ensure_default_registered
from console.registry.registry import Registry
from console.registry.service import RegistryService
from console.registry.verified_loading import VersionLoadSpec, load_registered_version
from console.settings.store import SettingsStore
from console.storage import paths
from console.storage.database import open_database
from console.telemetry.monitor import TelemetryMonitor
from engine import (
    GenerationRequest,
    InferenceEngine,
    LoadedModelInfo,
    ModelSpec,
    RequestHandle,
    SamplingParams,
)
from engine.batching_settings import BatchingSettings
from engine.metrics import EngineSnapshot
from engine.weights.loader import ProgressCallback


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

    def _engine_settings(self) -> BatchingSettings:
        return BatchingSettings(
            max_batch_size=self.settings.get("engine.max_batch_size"),
            max_wait_ms=self.settings.get("engine.max_wait_ms"),
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
    def load_model(self, principal: Principal, spec: ModelSpec, progress: ProgressCallback | None = None) -> LoadedModelInfo:
        """Load a path that is not registered (nothing is verified). Blocking: the GUI calls it from a worker."""
        return self._audited_load(principal, spec.path, spec.precision, spec.device,
                                  lambda: self._engine.load(spec, progress))

    @requires(Permission.MODEL_LOAD, "load {ref_or_id}")
    def load_version(self, principal: Principal, ref_or_id: str | int, precision: str = "auto", device: str = "auto",
                     progress: ProgressCallback | None = None) -> LoadedModelInfo:
        """Load a registered version after re-checking its files; refused (ChecksumMismatch) if any changed."""
        return self._audited_load(
            principal, str(ref_or_id), precision, device,
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

    def _audited_load(self, principal: Principal, target: str, precision: str, device: str, load) -> LoadedModelInfo:
        self._engine.compile_decode = self.compile_mode()
        try:
            info = load()
        except Exception as error:
            self.guard.record(principal, "model.load", target, "failed", precision=precision, device=device,
                              error=str(error))
            raise
        self.guard.record(principal, "model.load", info.name, precision=info.precision, device=info.device,
                          path=info.path, decoder=self._engine.snapshot().decoder)
        return info

    def load(self, principal: Principal, target: ModelSpec | VersionLoadSpec,
             progress: ProgressCallback | None = None) -> LoadedModelInfo:
        if isinstance(target, VersionLoadSpec):
            return self.load_version(principal, target.ref, target.precision, target.device, progress)
        return self.load_model(principal, target, progress)

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
                  gguf_path: str | None = None, report=print, repeat: int = 1):
        """Run `console.bench.runner` on the loaded model (blocking: minutes)."""
        from console.bench.runner import run_benchmark

        result = run_benchmark(self._engine, levels, new_tokens, baselines, gguf_path, report, repeat)
        self.guard.record(principal, "bench.run", result.model, levels=levels, new_tokens=new_tokens,
                          tokens_per_second={run.concurrency: round(run.output_tokens_per_s, 1)
                                             for run in result.engine_runs})
        return result

    # --- telemetry ---------------------------------------------------------------------------------------
    def start_telemetry(self, **options) -> TelemetryMonitor:
        """Telemetry of the engine, sampling from now on (options: interval_s, rules, gpu_sampler, …). The stored
        settings give the interval, the alert rules and whether /metrics is served; alerts go to the database."""
        from console.telemetry.alert_store import AlertStore
        from console.telemetry.alerts import AlertRule
        from console.telemetry.service import TelemetryService

        options.setdefault("interval_s", self.settings.get("telemetry.interval_s"))
        stored_rules = self.settings.get("alerts.rules")
        if stored_rules:
            options.setdefault("rules", [AlertRule(**rule) for rule in stored_rules])
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
        for monitor in self._monitors:
            monitor.shutdown()
        self._engine.shutdown()
        self._database.close()
