"""Safety events: alarm episodes derived from the stored rows (docs/events.md).

`states` classifies values (raise, clear, hold, unknown) and summarises a batch; `episodes` is
the pure derivation of episodes from one alarm's frames; `window` maintains the `events`
table incrementally over the window a batch can affect; `store` reads and writes it in
PostgreSQL; `notify` logs a raised episode; `cli` is `ess events`.
"""
