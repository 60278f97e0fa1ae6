"""Configuration: the environment and flags -> checked Settings."""
