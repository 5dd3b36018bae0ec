"""The kernel: types, errors, registries, paths, hashing, atomic files and worker setup.

Every other layer imports it; it imports nothing of the project.
"""
