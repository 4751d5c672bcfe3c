"""ESS simulator: a Modbus TCP server whose banks behave like LFP battery banks.

`model.registers_at(bank, t, seed)` is what a fault-free bank serves during second t;
`faults` injects failures; `server` runs the Modbus TCP server(s).
"""
