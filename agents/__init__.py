"""Node side of PLBA: the telemetry agent, the executor's gRPC server and the runtime drivers.

Never imports Faust or River: the node process stays light.
"""
