"""The bundle's entry point: the same `llm-console` command as pyproject.toml's script (ui.main:main)."""

import os
import sys

# The installed app loads models from files only: Hugging Face's libraries must not try the network (a private
# workstation, often offline); a user who wants them online can still set HF_HUB_OFFLINE=0.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from ui.main import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
