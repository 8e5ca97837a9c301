"""The application without a screen: services, storage, the CLI. Uses `engine/`, never `ui/`."""
