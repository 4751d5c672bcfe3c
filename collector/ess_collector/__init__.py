"""ESS collector: Modbus poller, spool, Pub/Sub publisher, and the ESS simulator."""
