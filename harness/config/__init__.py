"""Configuration: the schemas of every command, composing configs, the registries and external plugins."""
