"""The key ceremony: config, runner, transcript, verification (see CEREMONY.md)."""
