"""Health monitoring, error detection, the Prometheus exporter and Grafana dashboards.

May import everything but ``cluster``.
"""
