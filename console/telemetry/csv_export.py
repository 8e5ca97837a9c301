"""Write the buffered telemetry series to a CSV file: one row per sample, one column per series (units in the
names), empty cells where a sample lacks a value."""

from __future__ import annotations

import csv
import math
from datetime import datetime, timezone
from pathlib import Path

from console.telemetry.errors import TelemetryExportFailed
from console.telemetry.history import TelemetryHistory


def export_csv(history: TelemetryHistory, path: Path | str, seconds: float | None = None) -> int:
    """Write the last `seconds` (everything buffered when None); returns the number of rows written."""
    path = Path(path)
    times, series = history.window(seconds)
    names = sorted(series)
    try:
        with path.open("w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(["time_utc", "timestamp_s", *names])
            for row, timestamp in enumerate(times):
                when = datetime.fromtimestamp(float(timestamp), timezone.utc).isoformat(timespec="milliseconds")
                cells = [_cell(series[name][row]) for name in names]
                writer.writerow([when, f"{timestamp:.3f}", *cells])
    except OSError as error:
        raise TelemetryExportFailed(f"Cannot write {path}: {error.strerror or error}. Choose another folder.") from error
    return len(times)


def _cell(value: float) -> str:
    if math.isnan(value):
        return ""
    return str(int(value)) if float(value).is_integer() else f"{value:.6g}"
