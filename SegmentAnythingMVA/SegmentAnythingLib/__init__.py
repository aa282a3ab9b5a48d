"""Segment Anything effect library: ``algorithms`` holds the Qt-free engine."""
