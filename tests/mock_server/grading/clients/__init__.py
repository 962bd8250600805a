"""Clients written for the grading tests: the reference client's driver, a naive client and a
client in shell and curl. Each follows the contract of `mock_server.grading.runner`."""
