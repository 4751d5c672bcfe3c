"""Data status from the frame ledger: per site, bank and local day, what arrived, what is
missing and why (docs/data-status.md)."""
