"""Qt widgets (one panel per file) and the adapters that turn engine callbacks into Qt signals."""
