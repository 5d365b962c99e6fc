"""Copies of serving/service.py with one change each, switched by environment variables, to measure a
proposed change before it goes into the product's service."""
