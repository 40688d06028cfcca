"""Policies that decide clive's next action: one small module each."""
