"""aiohttp.web servers awm-tui runs: the evaluation server and the simulated model (`sim-llm`)."""
