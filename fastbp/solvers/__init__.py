"""Solvers: each optimizer's state between epochs (``state``) and the Levenberg-Marquardt step."""
