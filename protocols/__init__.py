"""All computation over secret shares (async, no I/O): domains, sharing, sessions, protocols."""
