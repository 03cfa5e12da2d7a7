"""Sidecar injection for Kubernetes: a mutating admission webhook that adds the tracehouse
sidecar to pods annotated `tracehouse.dev/inject: "true"` (patch.py), served over HTTPS
(server.py, `tracehouse inject-webhook`). The chart renders what is injected."""
