"""Restream: cameras out to the tools people already run (Frigate, NVRs, VLC, ffmpeg,
Home Assistant) as RTSP, HLS and snapshot URLs. An app-side consumer of the app SDK:
each camera is one :class:`~iotvideo.app.player.MonitorPlayer` in passthrough, pulled
once however many clients read it. See docs/restream.md."""

from iotvideo.app.restream.feed import CameraFeed
from iotvideo.app.restream.server import Restream, RestreamOptions

__all__ = ["CameraFeed", "Restream", "RestreamOptions"]
