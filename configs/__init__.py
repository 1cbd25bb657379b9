"""YAML configs, installed with the library as ``nirvision.configs`` (see setup.py)."""
