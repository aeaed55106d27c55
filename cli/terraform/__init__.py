"""Driving the terraform CLI: runs with live progress from its `-json` event stream."""
