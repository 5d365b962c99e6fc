"""Reports for risk-ops leads and ML engineers: drift/outcome monitoring and root-cause analysis.

Importing the package does nothing; matplotlib, scikit-learn and MLflow are imported by the modules that
use them. Entry points: ``reports.monitor`` (``run_monitor``, ``monitor_from_dataset``,
``monitor_from_stores``, ``drift_gauges``) and ``reports.rca`` (``run_rca``, ``rca_from_dataset``,
``rca_from_stores``).
"""
