"""Smart Regions effect library: ``algorithms`` holds the Qt-free supervoxel engine."""
