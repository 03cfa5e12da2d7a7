"""Grafana dashboards as code: `python -m tracehouse.grafana` writes `deploy/grafana/dashboards/*.json`.

The dashboards are built with grafana-foundation-sdk (typed builders for Grafana's dashboard
schema) and committed as JSON, which is what Grafana's file provisioning loads. A test
regenerates them and fails when the committed files drift from the code.
"""
