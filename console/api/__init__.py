"""The OpenAI-compatible local API: keys bound to users (`keys`), their usage (`usage`), request bodies
(`schemas`), the routes (`app`), the HTTP server (`server`) and the service the window and `serve` drive
(`service`). It submits into the same engine as the window, through the same guarded services."""
