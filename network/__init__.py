"""Moving bytes between parties: the Channel interface and its transports (no MPC math)."""
