"""Figures drawn from bench records (matplotlib, imported only when a plot is made)."""
