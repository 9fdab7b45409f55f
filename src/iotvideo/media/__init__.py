"""Shared audio/video building blocks (sources, fan-out, muxing, WebRTC glue)."""
