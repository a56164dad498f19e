"""Integrations: other frameworks' training code tuned by optisweep as function workloads."""
