"""ConsoleCore: the application without a screen. The GUI and the CLI both act through it, so the permission
checks, audit entries and checksum checks written here protect both.

It opens the database (registry, conversations, users, audit log, settings), wires the engine, and holds the
signed-in session (`guard`). Every method that changes state checks the session's permission first.
"""

from __future__ import annotations

import os
from pathlib import Path

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
    GenerationRequest,
    InferenceEngine,
    LoadedModelInfo,
    ModelSpec,
    RequestHandle,
    SamplingParams,
)
from engine.batching_settings import BatchingSettings
from engine.weights.loader import ProgressCallback


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

    def _engine_settings(self) -> BatchingSettings:
        return BatchingSettings(
            max_batch_size=self.settings.get("engine.max_batch_size"),
            max_wait_ms=self.settings.get("engine.max_wait_ms"),
            threads=self.settings.get("engine.threads"),
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

    def load_model(self, spec: ModelSpec, progress: ProgressCallback | None = None) -> LoadedModelInfo:
        """Load a path that is not registered (nothing is verified). Blocking: the GUI calls it from a worker."""
        self.guard.require("model:load", f"load {Path(spec.path).name}")
        return self._audited_load(spec.path, spec.precision, spec.device, lambda: self.engine.load(spec, progress))

    def load_version(
        self, ref_or_id: str | int, precision: str = "auto", device: str = "auto", progress: ProgressCallback | None = None
    ) -> LoadedModelInfo:
        """Load a registered version after re-checking its files; refused (ChecksumMismatch) if any changed."""
        self.guard.require("model:load", f"load {ref_or_id}")
        return self._audited_load(
            str(ref_or_id), precision, device,
            lambda: load_registered_version(self.engine, self._registry, ref_or_id, precision, device, progress,
                                            loaded_by=self.guard.user),
        )

    def compile_mode(self) -> str:
        """The compile mode for the next load: an override set for one command, else LLM_CONSOLE_COMPILE,
        else the `engine.compile` setting."""
        return self.compile_override or os.environ.get("LLM_CONSOLE_COMPILE") or self.settings.get("engine.compile")

    def _audited_load(self, target: str, precision: str, device: str, load) -> LoadedModelInfo:
        self.engine.compile_decode = self.compile_mode()
        try:
            info = load()
        except Exception as error:
            self.guard.record("model.load", target, "failed", precision=precision, device=device, error=str(error))
            raise
        self.guard.record("model.load", info.name, precision=info.precision, device=info.device, path=info.path,
                          decoder=self.engine.snapshot().decoder)
        return info

    def load(self, target: ModelSpec | VersionLoadSpec, progress: ProgressCallback | None = None) -> LoadedModelInfo:
        if isinstance(target, VersionLoadSpec):
            return self.load_version(target.ref, target.precision, target.device, progress)
        return self.load_model(target, progress)

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
                  report=print, repeat: int = 1, prompt_lengths: list[int] | None = None):
        """Run `console.bench.runner` on the loaded model (blocking: minutes)."""
        from console.bench.runner import run_benchmark

        self.guard.require("bench:run", "run benchmarks")
        result = run_benchmark(self.engine, levels, new_tokens, baselines, gguf_path, report, repeat, prompt_lengths)
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
