"""An RTSP camera for tests: GStreamer's RTSP server streaming H.264 of a test pattern.

Run with Debian's Python (``/usr/bin/python3``, which has GStreamer's bindings):
``rtsp_server.py PORT WIDTH HEIGHT [FPS]`` (15 by default). Prints ``ready`` once it
listens on 127.0.0.1.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

port, width, height = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
fps = int(sys.argv[4]) if len(sys.argv) > 4 else 15
Gst.init(None)
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(port)
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch(
    "( videotestsrc is-live=true pattern=ball ! "
    f"video/x-raw,width={width},height={height},framerate={fps}/1 ! "
    f"x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} ! "
    "video/x-h264,profile=baseline ! rtph264pay name=pay0 pt=96 config-interval=1 )"
)
factory.set_shared(True)
server.get_mount_points().add_factory("/cam", factory)
if server.attach(None) == 0:
    sys.exit("cannot listen")
print("ready", flush=True)
GLib.MainLoop().run()
