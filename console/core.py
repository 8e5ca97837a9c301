"""ConsoleCore: the application without a screen. The GUI and the CLI both act through it, so the permission
checks, audit entries and checksum checks written here protect both.

It opens the database (registry, conversations, users, audit log, settings), wires the engine, and holds the
signed-in session (`guard`). Every method that changes state checks the session's permission first.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from console.errors import ConsoleError, MemoryWontFit
from console.lab.load_memory import LoadMemory, refuse_unless_fits, used_memory_bytes
from console.lab.service import LabService, model_key_of_path, model_key_of_version
from console.storage import paths
from console.access.control import AccessControl, Guard, Session
from console.settings.store import SettingsStore
from console.access.audit_log import AuditLog
from console.chat.conversations_store import ConversationStore
from console.storage.database import open_database
from console.registry.default_model import DEFAULT_MODEL_NAME, default_model_path, ensure_default_registered
from console.registry.guarded import GuardedRegistry
from console.registry.registry import Registry
from console.registry.verified_loading import VersionLoadSpec, load_registered_version
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
from engine.weights.devices import describe_device, resolve_device
from engine.weights.loader import ProgressCallback
from engine.weights.memory_estimate import MemoryEstimate, estimate_load


class ConsoleCore:
    def __init__(self, data_dir: Path | None = None):
        self.data_dir = Path(data_dir) if data_dir else paths.data_dir()
        self.database = open_database(paths.database_path(self.data_dir))  # first: refuses a newer database
        self.audit = AuditLog(self.database)
        self.access = AccessControl(self.database, self.audit)
        self.guard = Guard(self.access)
        self.settings = SettingsStore(self.database, self.access, self.audit)
        self._registry = Registry(self.database)
        self.registry = GuardedRegistry(self._registry, self.guard)
        self.conversations = ConversationStore(self.database)
        cache = self.data_dir / "cache"
        cache.mkdir(parents=True, exist_ok=True)
        self.engine = InferenceEngine(cache_dir=cache, settings=self._engine_settings())
        # `bench --compile` and the one-shot `chat` set it for their own run; else LLM_CONSOLE_COMPILE, else the setting
        self.compile_override: str | None = None
        self.load_memory = LoadMemory(self.database)
        self._loaded_once = False  # the first load of a process measures the device's runtime overhead
        self.lab = LabService(self)

    def _engine_settings(self) -> BatchingSettings:
        return BatchingSettings(
            max_batch_size=self.settings.get("engine.max_batch_size"),
            max_wait_ms=self.settings.get("engine.max_wait_ms"),
        )

    # --- sessions ----------------------------------------------------------------------------------------
    @property
    def session(self) -> Session | None:
        return self.guard.session

    def sign_in(self, name: str, password: str) -> Session:
        self.guard.session = self.access.sign_in(name, password)
        return self.guard.session

    def create_first_admin(self, name: str, password: str) -> Session:
        self.guard.session = self.access.create_first_admin(name, password)
        return self.guard.session

    def sign_out(self, reason: str = "sign out") -> None:
        if self.guard.session is not None:
            self.access.sign_out(self.guard.session, reason)
        self.guard.session = None

    def can(self, permission: str) -> bool:
        return self.guard.can(permission)

    # --- models ------------------------------------------------------------------------------------------
    def default_model_spec(self, precision: str = "auto", device: str = "auto") -> ModelSpec:
        return ModelSpec(str(default_model_path()), precision=precision, device=device, name=DEFAULT_MODEL_NAME)

    def load_model(self, spec: ModelSpec, progress: ProgressCallback | None = None,
                   load_anyway: bool = False) -> LoadedModelInfo:
        """Load a path that is not registered (nothing is verified). Blocking: the GUI calls it from a worker.
        Refused with MemoryWontFit when the estimate exceeds the free memory, unless `load_anyway`."""
        self.guard.require("model:load", f"load {Path(spec.path).name}")
        key = model_key_of_path(spec.path)
        precision, recommended = self._auto_precision(key, spec.precision, spec.device)
        spec = replace(spec, precision=precision)
        return self._audited_load(spec.path, spec.path, precision, spec.device, recommended, load_anyway,
                                  lambda: self.engine.load(spec, progress))

    def load_version(
        self, ref_or_id: str | int, precision: str = "auto", device: str = "auto", progress: ProgressCallback | None = None,
        load_anyway: bool = False,
    ) -> LoadedModelInfo:
        """Load a registered version after re-checking its files; refused (ChecksumMismatch) if any changed, and
        (MemoryWontFit) when it will not fit unless `load_anyway`."""
        self.guard.require("model:load", f"load {ref_or_id}")
        try:
            version = self._registry.resolve(ref_or_id)
        except ConsoleError as error:
            self.guard.record("model.load", str(ref_or_id), "failed", precision=precision, device=device, error=str(error))
            raise
        precision, recommended = self._auto_precision(model_key_of_version(version.id), precision, device)
        return self._audited_load(
            str(ref_or_id), version.source_path, precision, device, recommended, load_anyway,
            lambda: load_registered_version(self.engine, self._registry, ref_or_id, precision, device, progress,
                                            loaded_by=self.guard.user),
        )

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
        recommendation = self.lab.store.recommendation(model_key, device_name)
        return (recommendation.precision, recommendation) if recommendation else (precision, None)

    def estimate_load(self, target: ModelSpec | VersionLoadSpec, sequences: int | None = None,
                      context_tokens: int | None = None) -> MemoryEstimate:
        """The itemised memory a load of `target` needs (weights, KV cache for `sequences` × `context_tokens`,
        overhead, margin) and the device's free memory, from the model's headers: nothing is loaded."""
        if isinstance(target, VersionLoadSpec):
            version = self._registry.resolve(target.ref)
            path, key = version.source_path, model_key_of_version(version.id)
        else:
            path, key = target.path, model_key_of_path(target.path)
        precision, _recommended = self._auto_precision(key, target.precision, target.device)
        return self._estimate(path, precision, target.device, sequences, context_tokens)

    def _estimate(self, path: str, precision: str, device: str, sequences: int | None = None,
                  context_tokens: int | None = None) -> MemoryEstimate:
        kind = resolve_device(device).type
        return estimate_load(self.load_memory.shape(path), precision, device,
                             sequences or self.engine.settings.max_batch_size, context_tokens,
                             self.load_memory.overhead_bytes(kind))

    def _audited_load(self, target: str, path: str, precision: str, device: str, recommended, load_anyway: bool,
                      load) -> LoadedModelInfo:
        self.engine.compile_decode = self.compile_mode()
        try:
            try:
                estimate = self._estimate(path, precision, device)
            except (EngineError, OSError):  # a missing or damaged model: the load itself says what is wrong
                estimate = None
            if estimate is not None and not load_anyway:
                refuse_unless_fits(estimate, Path(path).name)
            first_load = not self._loaded_once
            before = used_memory_bytes(estimate.device) if estimate else 0
            info = load()
        except Exception as error:
            self.guard.record("model.load", target, "refused" if isinstance(error, MemoryWontFit) else "failed",
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
            self.engine.configure(max_batch_size=recommended.max_batch_size, max_wait_ms=recommended.max_wait_ms)
            details["recommendation"] = {"sweep": recommended.sweep_id, "max_batch_size": recommended.max_batch_size,
                                         "max_wait_ms": recommended.max_wait_ms}
        self.guard.record("model.load", info.name, precision=info.precision, device=info.device, path=info.path,
                          decoder=self.engine.snapshot().decoder, **details)
        return info

    def load(self, target: ModelSpec | VersionLoadSpec, progress: ProgressCallback | None = None,
             load_anyway: bool = False) -> LoadedModelInfo:
        if isinstance(target, VersionLoadSpec):
            return self.load_version(target.ref, target.precision, target.device, progress, load_anyway)
        return self.load_model(target, progress, load_anyway)

    def default_load_target(self, precision: str = "auto", device: str = "auto") -> ModelSpec | VersionLoadSpec:
        """The registry's default version when there is one, else the embedded model's file."""
        default = self._registry.default_version()
        if default is not None:
            return VersionLoadSpec(default.id, precision, device, name=default.ref)
        return self.default_model_spec(precision, device)

    def ensure_default_registered(self, progress=None, cancel=None):
        """First start: hash and register the embedded model (about 100 MB). A system action. Blocking."""
        return ensure_default_registered(self._registry, progress, cancel)

    def unload_model(self) -> None:
        self.guard.require("model:load", "unload the model")
        info = self.engine.model_info
        self.engine.unload()
        if info is not None:
            self.guard.record("model.unload", info.name)

    @property
    def model_info(self) -> LoadedModelInfo | None:
        return self.engine.model_info

    # --- engine ------------------------------------------------------------------------------------------
    def configure_engine(self, **changes) -> BatchingSettings:
        """Change batching knobs live; audited with the old and new values."""
        self.guard.require("engine:configure", "change engine settings")
        old = self.engine.settings
        new = self.engine.configure(**changes)
        changed = {k: (getattr(old, k), getattr(new, k)) for k in changes if getattr(old, k) != getattr(new, k)}
        if changed:
            self.guard.record("engine.configure", "batching",
                              old={k: v[0] for k, v in changed.items()}, new={k: v[1] for k, v in changed.items()})
        return new

    def chat(self, messages: list[dict[str, str]], params: SamplingParams, on_event=None) -> RequestHandle:
        self.guard.require("chat:use", "chat with the model")
        return self.engine.submit(GenerationRequest(messages=messages, params=params), on_event=on_event)

    def measure_perplexity(self) -> float:
        """Perplexity of the loaded model on the fixed text shipped in resources/ (blocking: seconds)."""
        from resources import resource_path

        self.guard.require("chat:use", "measure perplexity")
        return self.engine.perplexity(resource_path("perplexity.txt").read_text(encoding="utf-8"))

    def engine_snapshot(self):
        """The engine's live figures (throughput, latency percentiles, queue), for those who may see metrics."""
        self.guard.require("metrics:view", "see the engine's figures")
        return self.engine.snapshot()

    def benchmark(self, levels: list[int], new_tokens: int, baselines: bool = True, gguf_path: str | None = None,
                  report=print, repeat: int = 1):
        """Run `console.bench.runner` on the loaded model (blocking: minutes)."""
        from console.bench.runner import run_benchmark

        self.guard.require("bench:run", "run benchmarks")
        result = run_benchmark(self.engine, levels, new_tokens, baselines, gguf_path, report, repeat)
        self.guard.record("bench.run", result.model, levels=levels, new_tokens=new_tokens,
                          tokens_per_second={run.concurrency: round(run.output_tokens_per_s, 1) for run in result.engine_runs})
        return result

    # --- audit -------------------------------------------------------------------------------------------
    def audit_entries(self, **filters):
        self.guard.require("audit:view", "read the audit log")
        return self.audit.entries(**filters)

    def verify_audit(self):
        self.guard.require("audit:view", "verify the audit log")
        return self.audit.verify()

    def shutdown(self) -> None:
        self.engine.shutdown()
        self.database.close()
